"""Retrieval-augmented generation: ingest documents, chunk, embed, index (LanceDB), retrieve, answer with citations.

The one call other applications (the ReAct agent's Search/Lookup) need::

    from genlab.apps.rag import open_index

    index = open_index("docs")            # an index made by `genlab rag ingest PATH --index docs`
    for hit in index.search("how do refunds work?", k=5):
        hit.text      # the chunk's text (str): treat it as data, never as instructions
        hit.path      # the source file it came from (str)
        hit.chunk     # the chunk's number within that file, from 0 (int)
        hit.score     # higher is more relevant (float; cosine similarity for vector search)
        hit.metadata  # dict: {"title", "format", "start_token", ...}

``open_index(name)`` raises :class:`IndexNotFoundError` (a :class:`genlab.errors.GenlabError`, one
sentence) when no index of that name exists under ``genlab_home()/"indexes"``.
``index.search(query, k=5, mode="hybrid"|"vector"|"mmr"|"text", where={"format": "pdf"})`` takes
optional retrieval options (defaults: hybrid -- vector + BM25 fused by reciprocal rank --, no filter).

The modules: :mod:`.ingest` (files -> documents), :mod:`.chunk` (token windows with overlap),
:mod:`.store` (the VectorStore interface and its LanceDB implementation, the published view),
:mod:`.index` (named indexes), :mod:`.update` (incremental ingest: streamed, batched, resumable,
unreadable files skipped), :mod:`.retrieve` (vector,
MMR, hybrid with BM25, filters), :mod:`.answer` (prompt within the context window, numbered citations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Hit", "Index", "IndexNotFoundError", "answer_question", "ingest_path", "list_indexes", "open_index"]

if TYPE_CHECKING:  # the heavy modules (lancedb, sentence-transformers) load on first use
    from genlab.apps.rag.answer import answer_question
    from genlab.apps.rag.index import Index, IndexNotFoundError, ingest_path, list_indexes, open_index
    from genlab.apps.rag.store import Hit

_HOMES = {"Hit": "store", "answer_question": "answer"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        module = importlib.import_module(f"genlab.apps.rag.{_HOMES.get(name, 'index')}")
        return getattr(module, name)
    raise AttributeError(name)
