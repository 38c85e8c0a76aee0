"""Ingest at the size of real folders: unreadable files skipped, large files streamed in batches with
flat memory and progress, a killed ingest resumed with nothing duplicated, and never half a file seen."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from genlab.apps.providers import HashingEmbedder, word_offsets
from genlab.apps.rag import ingest_path, open_index
from genlab.apps.rag.chunk import chunk_stream, chunk_text
from genlab.apps.rag.index import create_or_open_index, list_indexes
from genlab.apps.rag.ingest import IngestError, open_document
from tests.conftest import run_cli
from tests.unit.test_rag_ingest import make_pdf

WORDS = ("refund", "parcel", "courier", "invoice", "warranty", "office", "support", "delivery", "card", "days")


def write_text(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Deterministic prose: sentences of words from WORDS, a line break every few sentences."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < megabytes * 1_000_000:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 15))).capitalize() + "."
        sentence += "\n" if rng.random() < 0.2 else " "
        parts.append(sentence)
        size += len(sentence)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path


def ids_of(name: str, path_part: str = "") -> list[str]:
    ids = open_index(name).store.table.to_arrow().column("id").to_pylist()
    return sorted(i for i in ids if path_part in i)


@pytest.fixture
def folder_with_bad_files(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.md").write_text("# Refunds\n\nCustomers may return goods within thirty days.", encoding="utf-8")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)  # NUL bytes and invalid UTF-8
    (root / "wide.txt").write_bytes("Parcels ship worldwide.".encode("utf-32"))  # with its byte-order mark
    (root / "wide-le.txt").write_bytes("Parcels ship worldwide.".encode("utf-32-le"))  # valid UTF-8, full of NULs
    (root / "late.txt").write_bytes(b"fine words " * 50_000 + b"\xff")  # bad only at the very end
    pdf = make_pdf(tmp_path / "ok.pdf", ["text"]).read_bytes()
    (root / "broken.pdf").write_bytes(pdf[: len(pdf) // 3])
    return root


def test_unreadable_files_are_skipped_with_a_reason_and_counted(folder_with_bad_files: Path) -> None:
    events = []
    report = ingest_path(folder_with_bad_files, "kb", embedder=HashingEmbedder(), chunk_size=12, overlap=3,
                         batch_size=4, progress=events.append)  # fmt: skip
    skipped = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    assert sorted(skipped) == ["binary.txt", "broken.pdf", "late.txt", "wide-le.txt", "wide.txt"]
    assert "NUL bytes" in skipped["wide-le.txt"] and "is not UTF-8 text" in skipped["late.txt"]
    assert "cannot read PDF" in skipped["broken.pdf"]
    assert [Path(p).name for p in report.added] == ["good.md"]
    assert {Path(p).name for p in open_index("kb").files()} == {"good.md"}  # nothing of the skipped files
    assert [Path(e.path).name for e in events if e.stage == "skipped"] == sorted(skipped)


def test_strict_stops_at_the_first_unreadable_file_and_changes_nothing(folder_with_bad_files: Path) -> None:
    with pytest.raises(IngestError, match=r"binary.txt is not UTF-8 text"):
        ingest_path(folder_with_bad_files, "kb", embedder=HashingEmbedder(), strict=True)
    assert list_indexes() == []


def test_a_folder_with_no_readable_file_is_an_error(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_bytes(b"\x00\x01\x02")
    with pytest.raises(IngestError, match=r"none of the 2 files under .* could be read \(the first: .*a.txt is not"):
        ingest_path(tmp_path, "kb", embedder=HashingEmbedder())


def test_the_cli_warns_for_each_skipped_file_counts_them_and_strict_fails(folder_with_bad_files: Path) -> None:
    listed = run_cli("rag", "ingest", str(folder_with_bad_files), "--index", "kb", "--embedder", "hashing", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["skipped"]) == 5
    assert listed.stderr.count("warning: skipped") == 5 and "binary.txt" in listed.stderr
    (folder_with_bad_files / "good.md").write_text("# Refunds\n\nNo refunds any more.", encoding="utf-8")
    shown = run_cli("rag", "ingest", str(folder_with_bad_files), "--index", "kb")
    assert shown.returncode == 0 and "skipped (unreadable)" in shown.stdout and "│ 5 " in shown.stdout.replace("┃", "│")
    strict = run_cli("rag", "ingest", str(folder_with_bad_files), "--index", "kb", "--strict")
    assert strict.returncode != 0 and "binary.txt is not UTF-8 text" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_streamed_chunks_are_the_chunks_of_the_whole_text() -> None:
    rng = random.Random(0)
    pieces_of_words = ["alpha", "beta", "gamma.", "delta\n", "eps!", "zeta", "eta?", "theta\n\n", "kappa,"]
    for _ in range(200):
        text = "".join(rng.choice(pieces_of_words) + rng.choice([" ", "  ", "\t", ""]) for _ in range(rng.randrange(600)))
        size = rng.randrange(1, 40)
        overlap = rng.randrange(size)
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randrange(30))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        streamed = chunk_stream(pieces, word_offsets, size=size, overlap=overlap, window_chars=rng.randrange(1, 200))
        assert list(streamed) == chunk_text(text, word_offsets, size=size, overlap=overlap)


def test_a_large_file_is_read_in_blocks(tmp_path: Path) -> None:
    document = open_document(write_text(tmp_path / "big.md", 1.0))
    pieces = document.pieces()
    first = next(pieces)
    assert len(first) <= 1 << 18 and 0 < document.bytes_read < document.size  # not all of it at once
    assert first + "".join(pieces) == (tmp_path / "big.md").read_text(encoding="utf-8")
    assert document.bytes_read == document.size


def peak_python_memory(path: Path, name: str) -> int:
    index = create_or_open_index(name, embedder=HashingEmbedder(64, name="hashing-64"), chunk_size=50, overlap=10)
    tracemalloc.start()
    try:
        report = index.ingest(path, batch_size=64)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert report.chunks_total > 1000


def test_ingest_memory_stays_flat_with_file_size(tmp_path: Path) -> None:
    small = peak_python_memory(write_text(tmp_path / "small" / "a.txt", 0.5), "small")
    large = peak_python_memory(write_text(tmp_path / "large" / "a.txt", 2.0), "large")
    # Holding the text (2 MB), its ~400k token spans (~40 MB as tuples) or all chunks would add megabytes to
    # the peak of Python allocations; a stream holds a window of text and one batch, whatever the file size.
    assert large - small < 0.25 * small, (small, large)


def test_progress_reports_bytes_and_chunks_as_batches_commit(tmp_path: Path) -> None:
    file = write_text(tmp_path / "docs" / "a.txt", 0.3)
    write_text(tmp_path / "docs" / "b.txt", 0.1, seed=1)
    events = []
    report = ingest_path(tmp_path / "docs", "kb", embedder=HashingEmbedder(), chunk_size=50, overlap=10,
                         batch_size=32, progress=events.append)  # fmt: skip
    batches = [e for e in events if e.stage == "batch"]
    assert len(batches) >= report.chunks_added // 32 > 10
    done = [e.bytes_done for e in batches]
    assert done == sorted(done) and done[-1] == events[-1].bytes_total == report.bytes_read
    assert events[-1].bytes_total == file.stat().st_size + (tmp_path / "docs" / "b.txt").stat().st_size
    assert [e.chunks for e in batches] == sorted(e.chunks for e in batches) and batches[-1].chunks == report.chunks_added
    assert [e.stage for e in events].count("file") == 2 and events[-1].stage == "publishing"


class DyingEmbedder(HashingEmbedder):
    """Dies (as a kill would) on its ``dies_at``-th batch."""

    def __init__(self, dies_at: int) -> None:
        super().__init__()
        self.calls, self.dies_at = 0, dies_at

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.dies_at:
            raise KeyboardInterrupt
        return super().embed(texts)


def test_an_interrupted_ingest_resumes_at_the_last_batch_and_shows_no_half_file(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_text(docs / "big.txt", 0.2)
    ingest_path(docs, "reference", embedder=HashingEmbedder(), chunk_size=20, overlap=4, batch_size=16)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "note.txt").write_text("An earlier note about invoices.", encoding="utf-8")
    ingest_path(tmp_path / "old", "kb", embedder=HashingEmbedder(), chunk_size=20, overlap=4)
    before = ids_of("kb")
    with pytest.raises(KeyboardInterrupt):
        open_index("kb", embedder=DyingEmbedder(dies_at=6)).ingest(docs, batch_size=16)
    index = open_index("kb")
    assert ids_of("kb") == before and set(index.files()) == {str(tmp_path / "old" / "note.txt")}
    assert all("big.txt" not in hit.path for hit in index.search("refund parcel courier", k=5))
    assert sum(index.store.pending().values()) > 0  # five batches wait, unpublished

    report = open_index("kb").ingest(docs, batch_size=16)
    assert report.chunks_resumed == 5 * 16  # not embedded again
    assert report.chunks_added + report.chunks_resumed == len(ids_of("reference"))
    assert ids_of("kb", "big.txt") == ids_of("reference")  # the same chunks, none twice
    assert open_index("kb").count() == len(before) + len(ids_of("reference"))


def test_a_killed_cli_ingest_resumes_with_nothing_duplicated(tmp_path: Path, genlab_home: Path) -> None:
    docs = tmp_path / "docs"
    write_text(docs / "big.txt", 0.2)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "note.txt").write_text("An earlier note about invoices.", encoding="utf-8")
    settings = ["--embedder", "hashing", "--chunk-size", "20", "--overlap", "4", "--batch-size", "8"]
    assert run_cli("rag", "ingest", str(tmp_path / "old"), "--index", "kb", *settings).returncode == 0
    before = ids_of("kb")
    versions = genlab_home / "indexes" / "kb" / "chunks.lance" / "_versions"
    published = len(list(versions.iterdir()))
    child = subprocess.Popen([sys.executable, "-m", "genlab", "rag", "ingest", str(docs), "--index", "kb", *settings],
                             env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(versions.iterdir())) < published + 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    during = open_index("kb").search("refund parcel courier", k=5)  # while it writes
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert all("big.txt" not in hit.path for hit in during)
    assert ids_of("kb") == before  # after the kill: none of the half-written file
    assert all("big.txt" not in hit.path for hit in open_index("kb").search("refund parcel courier", k=5))

    resumed = run_cli("rag", "ingest", str(docs), "--index", "kb", *settings, "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["chunks_resumed"] >= 3 * 8 and report["chunks_resumed"] % 8 == 0
    ingest_path(docs, "reference", embedder=HashingEmbedder(), chunk_size=20, overlap=4)  # uninterrupted
    assert ids_of("kb", "big.txt") == ids_of("reference")
    assert report["chunks_added"] + report["chunks_resumed"] == len(ids_of("reference"))
    assert open_index("kb").count() == len(before) + len(ids_of("reference"))
