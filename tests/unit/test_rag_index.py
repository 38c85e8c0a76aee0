"""Indexes: incremental re-ingest by content hash, one-commit writes, retrieval modes and filters, lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genlab.apps.providers import HashingEmbedder
from genlab.apps.rag import IndexNotFoundError, ingest_path, open_index
from genlab.apps.rag.index import create_or_open_index, list_indexes
from genlab.apps.rag.retrieve import mmr_select
from genlab.apps.rag.store import where_clause
from genlab.errors import GenlabError, InvalidValueError
from genlab.lineage import LineageStore

DOCS = {
    "refunds.md": "# Refunds\n\nCustomers may return goods within thirty days for a full refund to their card.",
    "shipping.txt": "Parcels ship worldwide. Delivery takes five working days by courier.",
    "hours/office.txt": "The office opens at nine in the morning and closes at five in the evening.",
    "hours/support.html": "<html><body><p>Support answers the phone on weekdays, Monday to Friday.</p></body></html>",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def make(docs: Path, name: str = "kb", **options) -> object:
    return ingest_path(docs, name, embedder=HashingEmbedder(), chunk_size=12, overlap=3, **options)


def chunk_ids(name: str = "kb") -> list[str]:
    return sorted(open_index(name).store.table.to_arrow().column("id").to_pylist())


def test_ingest_then_search_finds_the_right_file(docs: Path, genlab_home: Path) -> None:
    report = make(docs)
    assert len(report.added) == 4 and report.chunks_total == report.chunks_added > 4
    assert (genlab_home / "indexes" / "kb" / "genlab-index.json").is_file() and list_indexes() == ["kb"]
    hits = open_index("kb").search("when does the office open in the morning", k=3)
    assert hits[0].path.endswith("office.txt") and hits[0].chunk == 0
    assert hits[0].score == pytest.approx(max(h.score for h in hits)) and 0 < hits[0].score <= 1
    assert {"title", "format", "id"} <= set(hits[0].metadata)


def test_reingest_is_incremental_nothing_duplicated_and_removed_files_removed(docs: Path) -> None:
    make(docs)
    before = chunk_ids()
    again = make(docs)
    assert again.unchanged == 4 and again.chunks_added == 0 and chunk_ids() == before

    (docs / "shipping.txt").write_text("Parcels now ship only within Europe, in two days.", encoding="utf-8")
    (docs / "hours" / "support.html").unlink()
    (docs / "new.txt").write_text("Gift cards never expire.", encoding="utf-8")
    changed = make(docs)
    assert [Path(p).name for p in changed.updated] == ["shipping.txt"]
    assert [Path(p).name for p in changed.removed] == ["support.html"]
    assert [Path(p).name for p in changed.added] == ["new.txt"] and changed.unchanged == 2

    index = open_index("kb")
    texts = index.store.table.to_arrow().column("text").to_pylist()
    assert not any("worldwide" in t or "weekdays" in t for t in texts)  # old versions gone
    assert len(chunk_ids()) == len(set(chunk_ids())) == changed.chunks_total
    assert sorted(Path(p).name for p in index.files()) == ["new.txt", "office.txt", "refunds.md", "shipping.txt"]


def test_ingesting_a_subfolder_only_removes_files_under_it(docs: Path) -> None:
    make(docs)
    (docs / "hours" / "office.txt").unlink()
    report = make(docs / "hours")
    assert [Path(p).name for p in report.removed] == ["office.txt"]
    assert len(open_index("kb").files()) == 3  # refunds.md and shipping.txt were outside the ingested folder


class FailingEmbedder(HashingEmbedder):
    def embed(self, texts):
        raise RuntimeError("the machine died mid-ingest")


def test_a_crash_mid_ingest_leaves_the_index_as_it_was(docs: Path) -> None:
    make(docs)
    before, version = chunk_ids(), open_index("kb").store.table.version
    (docs / "refunds.md").write_text("Refunds are no longer offered.", encoding="utf-8")
    (docs / "shipping.txt").unlink()
    with pytest.raises(RuntimeError, match="died"):
        open_index("kb", embedder=FailingEmbedder()).ingest(docs)
    index = open_index("kb")
    assert chunk_ids() == before and index.store.table.version == version
    assert make(docs).updated  # and the next ingest does the work


def test_readers_see_an_ingest_only_when_it_is_published(docs: Path) -> None:
    make(docs)
    before = chunk_ids()
    index = open_index("kb")
    seen_by_readers = []
    for name in ("add", "delete"):  # after every write of the ingest, a new reader looks at the index
        write = getattr(index.store, name)
        setattr(index.store, name, lambda arg, write=write: write(arg) or seen_by_readers.append(chunk_ids()))
    (docs / "refunds.md").write_text("Refunds are no longer offered.", encoding="utf-8")
    (docs / "shipping.txt").unlink()
    index.ingest(docs)
    assert len(seen_by_readers) == 2  # the new chunks; then the old refunds.md and shipping.txt, in one delete
    assert all(ids == before for ids in seen_by_readers)  # nothing visible until published
    assert chunk_ids() != before and not any("shipping" in i for i in chunk_ids())


def test_modes_filters_and_bm25(docs: Path) -> None:
    make(docs)
    index = open_index("kb")
    for mode in ("vector", "mmr", "hybrid", "text"):
        hits = index.search("refund to their card", k=2, mode=mode)
        assert hits and hits[0].path.endswith("refunds.md"), mode
    only_html = index.search("office opens", k=5, where={"format": "html"})
    assert only_html and {h.metadata["format"] for h in only_html} == {"html"}
    under_hours = index.search("refund", k=5, where={"path": str(docs / "hours") + "/*"})
    assert {Path(h.path).parent.name for h in under_hours} == {"hours"}
    assert index.search("courier", k=1, mode="text")[0].path.endswith("shipping.txt")  # a word only BM25 needs
    with pytest.raises(InvalidValueError, match="filter colour='red' is not allowed"):
        index.search("x", where={"colour": "red"})
    with pytest.raises(InvalidValueError, match="mode='fuzzy' is not allowed"):
        index.search("x", mode="fuzzy")


def test_where_clause_quotes_values() -> None:
    assert where_clause({"path": "/a/it's.md", "page": [1, 2]}) == "path = '/a/it''s.md' AND page IN (1, 2)"
    assert where_clause({"path": "/docs/*"}) == "path LIKE '/docs/%'"
    assert where_clause(None) is None and where_clause("chunk = 0") == "chunk = 0"


def test_mmr_prefers_a_diverse_second_pick() -> None:
    # Hand-made unit vectors: a and a_dup are near-identical, b is less relevant but different.
    query = np.array([1.0, 0.0, 0.0])
    a = np.array([0.9, 0.436, 0.0])
    a_dup = np.array([0.89, 0.456, 0.0])
    b = np.array([0.8, 0.0, 0.6])
    candidates = np.stack([a, a_dup, b]) / np.linalg.norm(np.stack([a, a_dup, b]), axis=1, keepdims=True)
    assert mmr_select(query, candidates, 2, lam=1.0) == [0, 1]  # lambda 1: plain top-k by relevance
    # lambda 0.5: a_dup scores 0.5*0.89 - 0.5*0.9999 < b's 0.5*0.8 - 0.5*0.72, so b comes second.
    assert mmr_select(query, candidates, 2, lam=0.5) == [0, 2]


def test_unknown_index_bad_names_and_mismatched_settings_are_one_sentence(docs: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index named 'nope' \\(there are no indexes yet\\)"):
        open_index("nope")
    with pytest.raises(InvalidValueError, match="index name '../x' is not allowed"):
        open_index("../x")
    make(docs)
    with pytest.raises(InvalidValueError, match="built with chunk_size=12, not 50"):
        create_or_open_index("kb", chunk_size=50)
    with pytest.raises(InvalidValueError, match="built with the embedder 'hashing-256', not 'hashing-64'"):
        open_index("kb", embedder=HashingEmbedder(64, name="hashing-64"))


def test_a_failed_first_ingest_leaves_no_index(tmp_path: Path, genlab_home: Path) -> None:
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 truncated nonsense")
    with pytest.raises(GenlabError, match="cannot read PDF .*bad.pdf"):
        ingest_path(tmp_path, "broken", embedder=HashingEmbedder())
    assert list_indexes() == []


def test_ingest_is_recorded_in_lineage(docs: Path) -> None:
    report = make(docs)
    with LineageStore() as store:
        run = store.get_run(report.run_id)
        assert run.kind == "rag-ingest" and run.status == "completed"
        assert store.metrics(report.run_id)["chunks_total"] == report.chunks_total
        assert [a.kind for a in store.artifacts_of(report.run_id, "output")] == ["index"]
        assert [a.kind for a in store.artifacts_of(report.run_id, "input")] == ["dataset"]
