"""Named indexes under ``genlab_home()/"indexes"/NAME``: open, search, and ingest incrementally.

An index folder holds ``genlab-index.json`` (which embedder and chunking built it, written atomically
when the index is made) and the LanceDB table (see :mod:`.store` for why a crash cannot corrupt it
and why a query never sees half a file). Ingesting -- incremental by content hash, streamed in
bounded batches, resumable after a kill -- is :mod:`.update`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.apps.providers import Embedder, get_embedder
from genlab.apps.rag.chunk import check_chunking
from genlab.apps.rag.ingest import IngestError, find_files
from genlab.apps.rag.retrieve import DEFAULT_MODE, retrieve
from genlab.apps.rag.store import Hit, LanceStore
from genlab.apps.rag.update import DEFAULT_BATCH, Chunking, IngestProgress, IngestReport, Progress, update_index
from genlab.atomic import atomic_write_json
from genlab.errors import GenlabError, InvalidValueError
from genlab.home import genlab_home

MANIFEST = "genlab-index.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class IndexNotFoundError(GenlabError):
    """No index of that name."""


def indexes_dir() -> Path:
    path = genlab_home() / "indexes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_index_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidValueError(
            f"index name {name!r} is not allowed: use letters, digits, '.', '_' or '-' (up to 64, not starting with a symbol)."
        )
    return name


def list_indexes() -> list[str]:
    return sorted(p.name for p in indexes_dir().iterdir() if (p / MANIFEST).is_file())


class Index:
    """A named index: ``search`` for retrieval, ``ingest`` to add or refresh documents."""

    def __init__(self, name: str, manifest: Mapping[str, Any], embedder: Embedder | None = None) -> None:
        self.name = name
        self.path = indexes_dir() / name
        self.manifest = dict(manifest)
        self._embedder = embedder
        if embedder is not None and embedder.name != manifest["embedder"]:
            raise InvalidValueError(
                f"index {name!r} was built with the embedder {manifest['embedder']!r}, not {embedder.name!r}: "
                "use the same embedder, or a new index name."
            )
        self.store = LanceStore(self.path, int(manifest["dim"]))

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.manifest["embedder"])
        return self._embedder

    def count(self) -> int:
        return self.store.count()

    def files(self) -> dict[str, str]:
        return self.store.files()

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: str = DEFAULT_MODE,
        where: Mapping[str, Any] | str | None = None,
        fetch_k: int | None = None,
        mmr_lambda: float = 0.5,
    ) -> list[Hit]:
        """The ``k`` chunks most relevant to ``query`` (see :func:`genlab.apps.rag.retrieve.retrieve`)."""
        return retrieve(self.store, self.embedder, query, k=k, mode=mode, where=where, fetch_k=fetch_k, mmr_lambda=mmr_lambda)

    def ingest(
        self,
        path: str | Path,
        *,
        strict: bool = False,
        batch_size: int = DEFAULT_BATCH,
        publish_every: float = 60.0,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Bring the index up to date with the files under ``path`` (see :func:`.update.update_index`)."""
        if batch_size < 1:
            raise InvalidValueError(f"batch_size={batch_size} is not allowed: embed at least 1 chunk at a time.")
        chunking = Chunking(int(self.manifest["chunk_size"]), int(self.manifest["overlap"]))
        return update_index(self.name, self.store, self.embedder, chunking, path, lock=self.path / ".ingest.lock",
                            strict=strict, batch_size=batch_size, publish_every=publish_every, progress=progress)  # fmt: skip


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def open_index(name: str, *, embedder: Embedder | None = None) -> Index:
    """The index ``name``, made earlier by ``genlab rag ingest PATH --index NAME``."""
    check_index_name(name)
    manifest = _read_manifest(indexes_dir() / name)
    if manifest is None:
        known = list_indexes()
        listing = f"the indexes are: {', '.join(known)}" if known else "there are no indexes yet"
        raise IndexNotFoundError(
            f"no index named {name!r} ({listing}); make one with `genlab rag ingest PATH --index {name}`."
        )
    return Index(name, manifest, embedder)


def create_or_open_index(
    name: str, *, embedder: Embedder | str | None = None, chunk_size: int | None = None, overlap: int | None = None
) -> Index:
    """Open ``name``, or make it with this embedder and chunking. An existing index keeps its own settings;
    asking for different ones is an error rather than a silently mixed index."""
    check_index_name(name)
    folder = indexes_dir() / name
    manifest = _read_manifest(folder)
    chosen = get_embedder(embedder) if isinstance(embedder, str) or embedder is None else embedder
    if manifest is not None:
        for key, wanted in (("chunk_size", chunk_size), ("overlap", overlap)):
            if wanted is not None and wanted != manifest[key]:
                raise InvalidValueError(
                    f"index {name!r} was built with {key}={manifest[key]}, not {wanted}: keep it, or use a new index name."
                )
        return Index(name, manifest, chosen if embedder is not None else None)
    size = chunk_size if chunk_size is not None else min(200, chosen.max_tokens)
    lap = overlap if overlap is not None else max(0, size // 5)
    check_chunking(size, lap)
    if size > chosen.max_tokens:
        raise InvalidValueError(
            f"chunk_size={size} is not allowed: the embedder {chosen.name!r} reads at most {chosen.max_tokens} tokens."
        )
    manifest = {"name": name, "store": "lancedb", "embedder": chosen.name, "dim": chosen.dim,
                "chunk_size": size, "overlap": lap, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / MANIFEST, manifest)
    return Index(name, manifest, chosen)


def ingest_path(
    path: str | Path,
    index: str,
    *,
    embedder: Embedder | str | None = None,
    chunk_size: int | None = None,
    overlap: int | None = None,
    strict: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest a file or folder into the index ``index`` (made if new), recorded as a ``rag-ingest`` run.

    Unreadable files are skipped and listed in ``report.skipped`` unless ``strict``; see :mod:`.update`.
    """
    root = Path(path).expanduser()
    find_files(root)  # a missing path or an empty folder fails before the index or the run is made
    is_new = _read_manifest(indexes_dir() / check_index_name(index)) is None
    target = create_or_open_index(index, embedder=embedder, chunk_size=chunk_size, overlap=overlap)
    try:
        return _ingest_recorded(root, target, strict=strict, batch_size=batch_size or DEFAULT_BATCH, progress=progress)
    except GenlabError:
        if is_new:  # a first ingest that failed (say, --strict and an unreadable PDF) leaves no index behind
            shutil.rmtree(target.path, ignore_errors=True)
        raise  # an interruption (Ctrl-C, a crash) keeps the batches written, for the next ingest to resume


def _ingest_recorded(root: Path, target: Index, *, strict: bool, batch_size: int, progress: Progress | None) -> IngestReport:
    from genlab.lineage import record_run

    index = target.name
    config = {"path": str(root.resolve()), "index": index, **{k: target.manifest[k] for k in ("embedder", "chunk_size", "overlap")}}
    with record_run("rag-ingest", config) as run:
        run.use(root, "dataset", {"role": "documents"})
        report = target.ingest(root, strict=strict, batch_size=batch_size, progress=progress)
        report.run_id = run.id
        run.log_metrics({
            "files": report.files, "files_added": len(report.added), "files_updated": len(report.updated),
            "files_removed": len(report.removed), "files_unchanged": report.unchanged,
            "files_skipped": len(report.skipped), "chunks_added": report.chunks_added,
            "chunks_resumed": report.chunks_resumed, "bytes_read": report.bytes_read, "chunks_total": report.chunks_total, "seconds": report.seconds,
        })  # fmt: skip
        run.log_artifact(target.path, "index", {"name": index, "version": target.store.table.version})
    return report


__all__ = ["Hit", "Index", "IndexNotFoundError", "IngestError", "IngestProgress", "IngestReport", "create_or_open_index",
           "indexes_dir", "ingest_path", "list_indexes", "open_index"]  # fmt: skip
