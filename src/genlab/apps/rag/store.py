"""Where chunks and their vectors live: a small :class:`VectorStore` interface and its LanceDB implementation.

LanceDB (embedded, on disk, no server) does the storing, the vector search (exact cosine scan; an
ANN index can be added for large tables), the BM25 full-text search (Lance's native inverted index)
and the hybrid query (vector + BM25 fused by reciprocal rank, its ``RRFReranker``). Written here is
only the mapping between genlab's chunks and LanceDB rows, and the filter syntax.

Crash safety: every LanceDB write is a new table version -- the data files are written first and
then the version's manifest is committed in one atomic step, so readers (and a restart after a
crash) see either the previous version or the new one, never a half-written table. An ingest makes
all its changes (new chunks in, the chunks of changed and removed files out) in one ``merge_insert``,
so it is one commit: a crash mid-ingest leaves the index exactly as it was before that ingest.
Data files of an uncommitted write are garbage that ``optimize()`` removes later.

Another store fits by implementing :class:`VectorStore` (files, replace_files, the three searches).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from genlab.errors import InvalidValueError

# LanceDB's hybrid query asks its own sub-queries for columns in a way its Rust core warns about on
# stderr at every query; errors still show. Read when lancedb loads, so set before it is imported.
os.environ.setdefault("LANCEDB_LOG", "error")

TABLE = "chunks"
FILTER_COLUMNS = {"path", "format", "title", "page", "chunk", "file_sha"}
_COLUMNS = ["id", "path", "file_sha", "chunk", "text", "title", "format", "page", "start_token", "n_tokens"]


@dataclass
class Hit:
    """One retrieved chunk. ``text`` is data from a document: quote it, never follow it."""

    text: str
    path: str
    chunk: int
    score: float  # higher is more relevant: cosine similarity (vector, mmr), BM25 (text), fused rank (hybrid)
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "chunk": self.chunk, "score": round(float(self.score), 6),
                "text": self.text, "metadata": self.metadata}  # fmt: skip


class VectorStore(Protocol):
    def count(self) -> int: ...

    def files(self) -> dict[str, str]:
        """Every file the store holds chunks of, with the SHA-256 of its content when ingested."""
        ...

    def replace_files(self, rows: Sequence[Mapping[str, Any]], paths: Iterable[str]) -> None:
        """In one atomic step: drop every chunk of ``paths``, then add ``rows``."""
        ...

    def vector_search(
        self, vector: np.ndarray, k: int, where: str | None = None, *, with_vectors: bool = False
    ) -> list[Hit]: ...

    def text_search(self, query: str, k: int, where: str | None = None) -> list[Hit]: ...

    def hybrid_search(self, query: str, vector: np.ndarray, k: int, where: str | None = None) -> list[Hit]: ...


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def where_clause(filters: Mapping[str, Any] | str | None) -> str | None:
    """SQL for LanceDB from ``{"format": "pdf", "path": "/docs/*.md", "page": [1, 2]}`` (a string passes as is).

    Keys are ANDed; a list means any of; a string with ``*`` matches like a glob.
    """
    if filters is None or isinstance(filters, str):
        return filters or None
    parts = []
    for key, value in filters.items():
        if key not in FILTER_COLUMNS:
            allowed = ", ".join(sorted(FILTER_COLUMNS))
            raise InvalidValueError(f"filter {key}={value!r} is not allowed: filter on one of {allowed}.")
        if isinstance(value, (list, tuple, set)):
            parts.append(f"{key} IN ({', '.join(sql_literal(v) for v in value)})")
        elif isinstance(value, str) and "*" in value:
            pattern = value.replace("%", "\\%").replace("_", "\\_").replace("*", "%")
            parts.append(f"{key} LIKE {sql_literal(pattern)}")
        else:
            parts.append(f"{key} = {sql_literal(value)}")
    return " AND ".join(parts) or None


class LanceStore:
    """Chunks in one LanceDB table, ``chunks``, in the folder ``path``."""

    def __init__(self, path: str | Path, dim: int) -> None:
        import lancedb

        self.path, self.dim = Path(path), dim
        self.db = lancedb.connect(str(self.path))
        self._table: Any = None

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([
            ("id", pa.string()), ("path", pa.string()), ("file_sha", pa.string()), ("chunk", pa.int32()),
            ("text", pa.string()), ("title", pa.string()), ("format", pa.string()), ("page", pa.int32()),
            ("start_token", pa.int32()), ("n_tokens", pa.int32()), ("vector", pa.list_(pa.float32(), self.dim)),
        ])  # fmt: skip

    def exists(self) -> bool:
        return TABLE in self.db.list_tables().tables

    @property
    def table(self) -> Any:
        if self._table is None:
            if self.exists():
                self._table = self.db.open_table(TABLE)
            else:
                self._table = self.db.create_table(TABLE, schema=self._schema())
        return self._table

    def count(self) -> int:
        return int(self.table.count_rows()) if self.exists() else 0

    def files(self) -> dict[str, str]:
        if not self.exists():
            return {}
        scanned = self.table.search().select(["path", "file_sha"]).limit(None).to_arrow()
        return dict(zip(scanned.column("path").to_pylist(), scanned.column("file_sha").to_pylist(), strict=True))

    def replace_files(self, rows: Sequence[Mapping[str, Any]], paths: Iterable[str]) -> None:
        import pyarrow as pa

        paths = sorted(set(paths))
        data = pa.Table.from_pylist([dict(row) for row in rows], schema=self._schema())
        if not paths and not rows:
            return
        merge = self.table.merge_insert("id").when_not_matched_insert_all()
        if paths:
            merge = merge.when_not_matched_by_source_delete(f"path IN ({', '.join(sql_literal(p) for p in paths)})")
        merge.execute(data)

    def refresh_indexes(self, *, ann_threshold: int = 100_000) -> None:
        """Rebuild the BM25 index (and, past ``ann_threshold`` rows, an ANN vector index), then compact.

        Below the threshold the vector search is an exact scan, which LanceDB answers for 10k x 384
        in tens of milliseconds; an IVF-HNSW index would only cost recall there.
        """
        from lancedb.index import FTS

        table = self.table
        table.create_index("text", config=FTS(), replace=True)
        if table.count_rows() >= ann_threshold:
            table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ", replace=True)
        table.optimize(cleanup_older_than=timedelta(days=1))

    def _has_fts(self) -> bool:
        return any(index.index_type == "FTS" for index in self.table.list_indices())

    def _hits(self, rows: list[dict[str, Any]], score: Any) -> list[Hit]:
        hits = []
        for row in rows:
            metadata = {"id": row["id"], "title": row["title"], "format": row["format"],
                        "start_token": row["start_token"], "n_tokens": row["n_tokens"], "file_sha": row["file_sha"]}  # fmt: skip
            if row["page"] >= 0:
                metadata["page"] = row["page"]
            vector = np.asarray(row["vector"], dtype=np.float32) if "vector" in row else None
            hits.append(Hit(row["text"], row["path"], int(row["chunk"]), float(score(row)), metadata, vector))
        return hits

    def vector_search(
        self, vector: np.ndarray, k: int, where: str | None = None, *, with_vectors: bool = False
    ) -> list[Hit]:
        if not self.exists():
            return []
        query = self.table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
        query = query.distance_type("cosine").limit(k)
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_COLUMNS, *(["vector"] if with_vectors else []), "_distance"]).to_list()
        return self._hits(rows, lambda row: 1.0 - row["_distance"])

    def text_search(self, query: str, k: int, where: str | None = None) -> list[Hit]:
        if not self.exists() or not query.strip() or not self._has_fts():
            return []
        search = self.table.search(query, query_type="fts", fts_columns="text").limit(k)
        if where:
            search = search.where(where, prefilter=True)
        return self._hits(search.select([*_COLUMNS, "_score"]).to_list(), lambda row: row["_score"])

    def hybrid_search(self, query: str, vector: np.ndarray, k: int, where: str | None = None) -> list[Hit]:
        if not query.strip() or not self._has_fts():
            return self.vector_search(vector, k, where)
        from lancedb.rerankers import RRFReranker

        search = (
            self.table.search(query_type="hybrid", vector_column_name="vector", fts_columns="text")
            .vector(np.asarray(vector, dtype=np.float32)).text(query).distance_type("cosine").limit(k)
        )  # fmt: skip
        if where:
            search = search.where(where, prefilter=True)
        rows = search.rerank(RRFReranker()).select(_COLUMNS).to_list()
        return self._hits(rows[:k], lambda row: row["_relevance_score"])
