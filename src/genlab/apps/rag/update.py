"""Bring an index up to date with the files under a path: streamed, in bounded batches, resumable.

Incremental by content hash: files whose SHA-256 is unchanged are skipped, changed files have their
chunks replaced, and files that were under the ingested path but are gone now lose their chunks.
A file that cannot be read (binary, not UTF-8, a damaged PDF) is skipped with a warning and counted
(``strict=True`` raises instead); if no file at all can be read, that is an error.

Memory stays flat with file size: a file is read and chunked as a stream (:func:`.ingest.open_document`,
:func:`.chunk.chunk_stream`), and every ``batch_size`` chunks are embedded and written to the store
in one commit, unpublished. When files are complete -- at most every
``publish_every`` seconds, and at the end -- their old chunks are dropped and the store publishes
(:meth:`.store.LanceStore.publish`), so a query sees a file whole or not at all. Killed mid-file, the next ingest finds the batches
already committed (``store.pending()``, chunk numbers are a prefix because batches commit in order)
and embeds only the chunks after them; chunk ids are ``sha:path:number``, so nothing is duplicated.
All of it runs under a file lock, so two ingests never interleave.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from genlab.apps.providers.base import Embedder
from genlab.apps.rag.chunk import chunk_stream
from genlab.apps.rag.ingest import DocumentStream, IngestError, file_sha256, find_files, open_document
from genlab.apps.rag.store import VectorStore, sql_literal

DEFAULT_BATCH = 256  # chunks embedded and committed together: ~0.4 MB of text and 0.4 MB of vectors at 384 dims


@dataclass
class IngestReport:
    index: str
    files: int  # files found under the ingested path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    empty: list[str] = field(default_factory=list)  # files with no text (e.g. scanned PDFs)
    skipped: list[dict[str, str]] = field(default_factory=list)  # unreadable files: {"path", "reason"}
    chunks_added: int = 0  # chunks embedded by this ingest
    chunks_resumed: int = 0  # chunks an interrupted ingest had committed, kept rather than embedded again
    chunks_total: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestProgress:
    stage: str  # "file" (a file begins), "batch" (a batch committed), "skipped", "publishing"
    path: str
    file_number: int  # from 1, among the files to read
    files: int  # files to read (changed or new)
    bytes_done: int  # of the files to read, so far
    bytes_total: int
    chunks: int  # chunks embedded so far
    message: str = ""  # for "skipped": why


Progress = Callable[[IngestProgress], None]


@dataclass(frozen=True)
class Chunking:
    size: int
    overlap: int


def update_index(
    name: str,
    store: VectorStore,
    embedder: Embedder,
    chunking: Chunking,
    path: str | Path,
    *,
    lock: Path,
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH,
    publish_every: float = 60.0,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest the files under ``path`` into ``store`` (see the module docstring)."""
    started = time.perf_counter()
    root = Path(path).expanduser()
    files = find_files(root)
    report = IngestReport(name, len(files))
    with FileLock(str(lock)):
        known = store.files()
        current = {str(f): file_sha256(f) for f in files}
        scope = str(root.resolve())
        under_root = [p for p in known if p == scope or p.startswith(scope.rstrip("/") + "/")]
        report.removed = sorted(p for p in under_root if p not in current)
        changed = dict(sorted((p, sha) for p, sha in current.items() if known.get(p) != sha))
        report.unchanged = len(current) - len(changed)
        resumable = _drop_stale_pending(store, current, scope)
        writer = _FileWriter(store, embedder, chunking, batch_size, changed, report, progress)
        last_publish, retire, dirty = time.monotonic(), [], False
        for number, (file, sha) in enumerate(changed.items(), 1):
            try:
                chunks = writer.write(number, file, sha, resume_after=resumable.get((file, sha), -1))
            except IngestError as error:
                if strict or len(files) == 1:
                    raise
                writer.skip(number, file, sha, str(error), written=writer.wrote or (file, sha) in resumable)
                continue
            dirty = True
            if file in known:
                retire.append(file)
            if not chunks:
                report.empty.append(file)
            else:
                (report.updated if file in known else report.added).append(file)
            if time.monotonic() - last_publish >= publish_every:
                _publish(store, writer, retire, number, file)
                last_publish, retire, dirty = time.monotonic(), [], False
        if len(report.skipped) == len(files):
            first = report.skipped[0]["reason"].rstrip(".")
            raise IngestError(f"none of the {len(files)} files under {root} could be read (the first: {first}).")
        if dirty or report.removed:
            _publish(store, writer, retire, len(changed), "", removed=report.removed)
        report.chunks_total = store.count()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _publish(
    store: VectorStore, writer: _FileWriter, retire: list[str], number: int, file: str, removed: Sequence[str] = ()
) -> None:
    """Drop the old versions of the files just written (and the removed files) in one commit, then publish.

    Old versions are dropped only here, right before publishing, so that an interrupted ingest leaves
    the latest version holding everything the published one does (plus pending batches)."""
    gone = [f"(path = {sql_literal(f)} AND file_sha != {sql_literal(writer.sha_of[f])})" for f in retire]
    gone += [f"path = {sql_literal(p)}" for p in removed]
    if gone:
        store.delete(" OR ".join(gone))
    writer.publishing(number, file)
    store.publish()


def _drop_stale_pending(store: VectorStore, current: dict[str, str], scope: str) -> dict[tuple[str, str], int]:
    """Pending chunks of files as they are now are kept to resume from; those of older contents are dropped."""
    pending = store.pending()
    inside = scope.rstrip("/") + "/"
    stale = [(p, sha) for p, sha in pending if current.get(p) != sha and (p == scope or p.startswith(inside))]
    if stale:
        store.delete(" OR ".join(f"(path = {sql_literal(p)} AND file_sha = {sql_literal(sha)})" for p, sha in stale))
    return {pair: chunk for pair, chunk in pending.items() if pair not in stale}


class _FileWriter:
    """Streams one file at a time into the store in batches, and reports progress."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        chunking: Chunking,
        batch_size: int,
        changed: dict[str, str],
        report: IngestReport,
        progress: Progress | None,
    ) -> None:
        self.store, self.embedder, self.chunking, self.batch_size = store, embedder, chunking, batch_size
        self.report, self.progress = report, progress
        self.files = len(changed)
        self.sizes = {p: Path(p).stat().st_size for p in changed}
        self.sha_of = changed
        self.bytes_total = sum(self.sizes.values())
        self.bytes_before = 0  # of the files already done
        self.wrote = False  # whether a batch of the current file was committed

    def _tell(self, stage: str, number: int, path: str, done: int = 0, message: str = "") -> None:
        if self.progress:
            self.progress(IngestProgress(stage, path, number, self.files, self.bytes_before + done,
                                         self.bytes_total, self.report.chunks_added, message))  # fmt: skip

    def write(self, number: int, file: str, sha: str, *, resume_after: int) -> int:
        """Write the file's chunks after ``resume_after``; the number of chunks it has in all."""
        self._tell("file", number, file)
        self.wrote = False
        document = open_document(file, sha)
        batch: list[dict[str, Any]] = []
        chunks = 0
        size, overlap = self.chunking.size, self.chunking.overlap
        for chunk in chunk_stream(document.pieces(), self.embedder.token_offsets, size=size, overlap=overlap):
            if not chunk.text.strip():
                continue
            chunks += 1
            if chunk.index <= resume_after:
                self.report.chunks_resumed += 1
                continue
            batch.append(_row(document, chunk))
            if len(batch) >= self.batch_size:
                self._commit(batch, number, document)
                batch = []
        self._commit(batch, number, document)
        self.bytes_before += self.sizes[file]
        self.report.bytes_read += self.sizes[file]
        return chunks

    def _commit(self, batch: list[dict[str, Any]], number: int, document: DocumentStream) -> None:
        if not batch:
            return
        vectors = self.embedder.embed([row["text"] for row in batch])  # (len(batch), dim)
        for row, vector in zip(batch, vectors, strict=True):
            row["vector"] = vector
        self.store.add(batch)
        self.wrote = True
        self.report.chunks_added += len(batch)
        self._tell("batch", number, document.path, document.bytes_read)

    def skip(self, number: int, file: str, sha: str, reason: str, *, written: bool) -> None:
        if written:  # batches of a file that failed part-way through
            self.store.delete(f"path = {sql_literal(file)} AND file_sha = {sql_literal(sha)}")
        self.report.skipped.append({"path": file, "reason": reason})
        self.bytes_before += self.sizes[file]
        self._tell("skipped", number, file, message=reason)

    def publishing(self, number: int, file: str) -> None:
        self._tell("publishing", number, file)


def _row(document: DocumentStream, chunk: Any) -> dict[str, Any]:
    return {"id": f"{document.sha256[:16]}:{document.path}:{chunk.index}", "path": document.path,
            "file_sha": document.sha256, "chunk": chunk.index, "text": chunk.text, "title": document.title,
            "format": document.format, "page": document.page_at(chunk.start_char) or -1,
            "start_token": chunk.start_token, "n_tokens": chunk.n_tokens}  # fmt: skip
