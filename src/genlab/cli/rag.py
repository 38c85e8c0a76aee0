"""`genlab rag ingest|query|list`: retrieval-augmented generation over a local index (genlab.apps.rag)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from genlab.cli.output import console, err_console, print_json, print_pairs, print_table

if TYPE_CHECKING:
    from genlab.apps.rag.update import IngestProgress

app = typer.Typer(help="Retrieval-augmented generation: ingest documents into an index, ask questions with citations.",
                  no_args_is_help=True)  # fmt: skip

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _parse_filters(filters: list[str] | None) -> dict[str, object] | None:
    from genlab.errors import InvalidValueError

    parsed: dict[str, object] = {}
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidValueError(f"--where {item!r} is not allowed: write key=value, e.g. format=pdf.")
        parsed[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value
    return parsed or None


class IngestProgressBar:
    """A bar of bytes read over the files to ingest, on stderr; a warning line for each skipped file."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[chunks]} chunks"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=out, transient=True)  # fmt: skip
        self.task = self.bar.add_task("reading", total=None, chunks=0)

    def __enter__(self) -> IngestProgressBar:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, event: IngestProgress) -> None:
        if event.stage == "skipped":
            self.bar.console.print(f"[yellow]warning:[/] skipped an unreadable file: {event.message}", highlight=False, soft_wrap=True)
        where = "indexing" if event.stage == "publishing" else f"file {event.file_number}/{event.files}"
        self.bar.update(self.task, description=where, completed=event.bytes_done, total=event.bytes_total or None,
                        chunks=event.chunks)  # fmt: skip


@app.command("ingest")
def ingest_command(
    path: Annotated[str, typer.Argument(help="A text, Markdown, HTML or PDF file, or a folder of them.")],
    index: Annotated[str, typer.Option("--index", "-i", help="The index to add to (made if new).")],
    embedder: Annotated[str | None, typer.Option(help="Embedder for a new index: a pack, a sentence-transformers folder, openai:MODEL.")] = None,
    chunk_size: Annotated[int | None, typer.Option("--chunk-size", help="Tokens per chunk (new index; default 200).")] = None,
    overlap: Annotated[int | None, typer.Option(help="Tokens shared by neighbouring chunks (new index; default chunk/5).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first unreadable file instead of skipping it.")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Chunks embedded and committed together (default 256); an interrupted ingest resumes after the last batch.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents into an index; re-ingesting only re-embeds changed files and drops removed ones.

    Large files are streamed in batches, an interrupted ingest resumes where it stopped, and a query
    sees a file only once it is complete.
    """
    from genlab.apps.rag.index import ingest_path

    with IngestProgressBar(err_console) as bar:
        report = ingest_path(path, index, embedder=embedder, chunk_size=chunk_size, overlap=overlap, strict=strict,
                             batch_size=batch_size, progress=bar.update)  # fmt: skip
    if as_json:
        print_json(report.to_dict())
        return
    print_pairs(f"ingested {path} into index {index}", [
        ("files", report.files), ("added", len(report.added)), ("updated", len(report.updated)),
        ("removed", len(report.removed)), ("unchanged", report.unchanged), ("without text", len(report.empty)),
        ("skipped (unreadable)", len(report.skipped)), ("chunks added", report.chunks_added),
        ("chunks resumed", report.chunks_resumed), ("chunks in index", report.chunks_total), ("seconds", report.seconds),
    ])  # fmt: skip
    console.print(f"recorded as run [bold]{report.run_id}[/]")


@app.command("query")
def query_command(
    index: Annotated[str, typer.Argument(help="The index to ask.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Generator: pack, folder, GGUF, hub id, or openai:MODEL.")] = "smollm2-135m-instruct",
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Chunks to retrieve.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid (vector + BM25), vector, mmr or text (BM25).")] = "hybrid",
    where: Annotated[list[str] | None, typer.Option("--where", help="Filter key=value on path, format, title, page (repeatable; * globs).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most tokens in the answer.")] = 256,
    retrieve_only: Annotated[bool, typer.Option("--retrieve-only", help="Show the retrieved chunks; no model.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from an index, citing the retrieved chunks; the run is recorded in lineage."""
    from genlab.apps.rag.index import open_index

    target = open_index(index)
    filters = _parse_filters(where)
    if retrieve_only:
        hits = target.search(question, k, mode=mode, where=filters)
        if as_json:
            print_json({"question": question, "index": index, "mode": mode, "sources": [h.to_dict() for h in hits]})
            return
        print_table(f"{len(hits)} chunks for: {question}", ["#", "score", "source", "text"],
                    [(n, f"{h.score:.4f}", f"{h.path} #{h.chunk}", h.text[:200]) for n, h in enumerate(hits, 1)])  # fmt: skip
        return
    from genlab.apps.providers import get_provider
    from genlab.apps.rag.answer import answer_question

    with err_console.status(f"answering from {index} with {model}"):
        result = answer_question(target, question, get_provider(model), k=k, mode=mode, where=filters, max_tokens=max_tokens)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(result.answer or "(empty answer)")
    print_table("sources", ["#", "cited", "score", "source"],
                [(s.number, "yes" if s.cited else "", f"{s.score:.4f}", f"{s.path} #{s.chunk}") for s in result.sources])  # fmt: skip
    console.print(f"recorded as run [bold]{result.run_id}[/]")


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """The indexes in $GENLAB_HOME/indexes, with their embedder and size."""
    from genlab.apps.rag.index import list_indexes, open_index

    rows = []
    for name in list_indexes():
        target = open_index(name)
        rows.append({"name": name, "embedder": target.manifest["embedder"], "chunk_size": target.manifest["chunk_size"],
                     "files": len(target.files()), "chunks": target.count(), "path": str(target.path)})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    print_table("indexes", ["name", "embedder", "chunk size", "files", "chunks"],
                [(r["name"], r["embedder"], r["chunk_size"], r["files"], r["chunks"]) for r in rows])  # fmt: skip
