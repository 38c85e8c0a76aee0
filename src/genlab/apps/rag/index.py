"""Named indexes under ``genlab_home()/"indexes"/NAME``: open, search, and ingest incrementally.

An index folder holds ``genlab-index.json`` (which embedder and chunking built it, written atomically
when the index is made) and the LanceDB table (see :mod:`.store` for why a crash cannot corrupt it).
Re-ingesting is incremental by content hash: files whose SHA-256 is unchanged are skipped, changed
files have all their chunks replaced, and files that were under the ingested path but are gone now
lose their chunks -- in one commit, under a file lock so two ingests never interleave.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.apps.providers import Embedder, get_embedder
from genlab.apps.rag.chunk import check_chunking, chunk_text
from genlab.apps.rag.ingest import IngestError, file_sha256, find_files, read_document
from genlab.apps.rag.retrieve import DEFAULT_MODE, retrieve
from genlab.apps.rag.store import Hit, LanceStore
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


@dataclass
class IngestReport:
    index: str
    files: int  # files found under the ingested path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    empty: list[str] = field(default_factory=list)  # files with no text (e.g. scanned PDFs)
    chunks_added: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def ingest(self, path: str | Path, *, progress: Callable[[str], None] | None = None) -> IngestReport:
        """Bring the index up to date with the files under ``path`` (see the module docstring)."""
        from filelock import FileLock

        started = time.perf_counter()
        root = Path(path).expanduser()
        files = find_files(root)
        report = IngestReport(self.name, len(files))
        with FileLock(str(self.path / ".ingest.lock")):
            known = self.store.files()
            current = {str(f): file_sha256(f) for f in files}
            scope = str(root.resolve())
            under_root = [p for p in known if p == scope or p.startswith(scope.rstrip("/") + "/")]
            report.removed = sorted(p for p in under_root if p not in current)
            changed = {p: sha for p, sha in current.items() if known.get(p) != sha}
            report.unchanged = len(current) - len(changed)
            rows: list[dict[str, Any]] = []
            for number, (file, sha) in enumerate(sorted(changed.items()), 1):
                if progress:
                    progress(f"reading {number}/{len(changed)}: {file}")
                new_rows = self._rows_for(file, sha)
                if not new_rows:
                    report.empty.append(file)
                    continue
                (report.updated if file in known else report.added).append(file)
                rows.extend(new_rows)
            if rows:
                if progress:
                    progress(f"embedding {len(rows)} chunks")
                vectors = self.embedder.embed([row["text"] for row in rows])
                for row, vector in zip(rows, vectors, strict=True):
                    row["vector"] = vector
            touched = set(changed) | set(report.removed)
            if touched:
                self.store.replace_files(rows, touched)  # one commit: see genlab.apps.rag.store
                if progress:
                    progress("indexing")
                self.store.refresh_indexes()
            report.chunks_added = len(rows)
            report.chunks_total = self.store.count()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _rows_for(self, file: str, sha: str) -> list[dict[str, Any]]:
        document = read_document(file, sha)
        size, overlap = int(self.manifest["chunk_size"]), int(self.manifest["overlap"])
        chunks = chunk_text(document.text, self.embedder.token_offsets, size=size, overlap=overlap)
        return [
            {"id": f"{sha[:16]}:{file}:{c.index}", "path": file, "file_sha": sha, "chunk": c.index, "text": c.text,
             "title": document.title, "format": document.format, "page": document.page_at(c.start_char) or -1,
             "start_token": c.start_token, "n_tokens": c.n_tokens}  # fmt: skip
            for c in chunks
            if c.text.strip()
        ]


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
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest a file or folder into the index ``index`` (made if new), recorded as a ``rag-ingest`` run."""
    root = Path(path).expanduser()
    find_files(root)  # a missing path or an empty folder fails before the index or the run is made
    is_new = _read_manifest(indexes_dir() / check_index_name(index)) is None
    target = create_or_open_index(index, embedder=embedder, chunk_size=chunk_size, overlap=overlap)
    try:
        return _ingest_recorded(root, target, progress)
    except BaseException:
        if is_new:  # a first ingest that failed (say, an unreadable PDF) leaves no empty index behind
            shutil.rmtree(target.path, ignore_errors=True)
        raise


def _ingest_recorded(root: Path, target: Index, progress: Callable[[str], None] | None) -> IngestReport:
    from genlab.lineage import record_run

    index = target.name
    config = {"path": str(root.resolve()), "index": index, **{k: target.manifest[k] for k in ("embedder", "chunk_size", "overlap")}}
    with record_run("rag-ingest", config) as run:
        run.use(root, "dataset", {"role": "documents"})
        report = target.ingest(root, progress=progress)
        report.run_id = run.id
        run.log_metrics({
            "files": report.files, "files_added": len(report.added), "files_updated": len(report.updated),
            "files_removed": len(report.removed), "files_unchanged": report.unchanged,
            "chunks_added": report.chunks_added, "chunks_total": report.chunks_total, "seconds": report.seconds,
        })  # fmt: skip
        run.log_artifact(target.path, "index", {"name": index, "version": target.store.table.version})
    return report


__all__ = ["Hit", "Index", "IndexNotFoundError", "IngestError", "IngestReport", "create_or_open_index",
           "indexes_dir", "ingest_path", "list_indexes", "open_index"]  # fmt: skip
