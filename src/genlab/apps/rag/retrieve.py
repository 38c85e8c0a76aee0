"""Retrieval: top-k by vector, maximal marginal relevance, and hybrid (vector + BM25), with filters.

Vector, BM25 and hybrid searches are the store's (LanceDB: exact cosine scan, native BM25 index,
reciprocal-rank fusion of the two, Cormack et al. 2009: ``score(d) = sum_r 1 / (60 + rank_r(d))``).
Hybrid is the default (``DEFAULT_MODE``).

Written here: MMR (Carbonell and Goldstein, "The Use of MMR, Diversity-Based Reranking for
Reordering Documents and Producing Summaries", SIGIR 1998), which picks, among ``fetch_k`` vector
candidates C, one chunk at a time::

    next = argmax_{d in C \\ S} [ lambda * sim(q, d) - (1 - lambda) * max_{s in S} sim(d, s) ]

where S holds the chunks picked so far and sim is the cosine similarity; ``lambda = 1`` is plain
top-k, lower values trade relevance for diversity (fewer near-duplicate overlapping chunks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from genlab.apps.providers.base import Embedder
from genlab.apps.rag.store import Hit, VectorStore, where_clause
from genlab.errors import InvalidValueError

Mode = Literal["vector", "mmr", "hybrid", "text"]
MODES = ("vector", "mmr", "hybrid", "text")
# Hybrid by default: on bench/rag.py (10.5k chunks of 20 tokens, 300 questions) vector search alone
# found the answer chunk in the top 5 for 0.84 of the questions (numpy's exact scan the same), hybrid
# for 0.94 -- BM25 catches the exact words short chunks share with a question -- at p50 27 ms vs 19 ms.
DEFAULT_MODE = "hybrid"


def mmr_select(query: np.ndarray, candidates: np.ndarray, k: int, lam: float = 0.5) -> list[int]:
    """Indices of ``k`` rows of ``candidates`` (n, dim), unit vectors, in MMR order for unit ``query`` (dim,)."""
    if not 0.0 <= lam <= 1.0:
        raise InvalidValueError(f"mmr_lambda={lam} is not allowed: it must be between 0 and 1.")
    n = candidates.shape[0]
    relevance = candidates @ query  # (n,)
    similarity = candidates @ candidates.T  # (n, n)
    picked: list[int] = []
    redundancy = np.full(n, -np.inf)  # max similarity to anything picked so far
    for _ in range(min(k, n)):
        score = lam * relevance - (1.0 - lam) * np.where(np.isinf(redundancy), 0.0, redundancy)
        score[picked] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        redundancy = np.maximum(redundancy, similarity[best])
    return picked


def retrieve(
    store: VectorStore,
    embedder: Embedder,
    query: str,
    *,
    k: int = 5,
    mode: str = DEFAULT_MODE,
    where: Mapping[str, Any] | str | None = None,
    fetch_k: int | None = None,
    mmr_lambda: float = 0.5,
) -> list[Hit]:
    """The ``k`` chunks most relevant to ``query``, best first."""
    if k < 1:
        raise InvalidValueError(f"k={k} is not allowed: retrieve at least 1 chunk.")
    if mode not in MODES:
        raise InvalidValueError(f"mode={mode!r} is not allowed: use one of {', '.join(MODES)}.")
    sql = where_clause(where)
    if mode == "text":
        return store.text_search(query, k, sql)
    vector = embedder.embed([query])[0]
    if mode == "vector":
        return store.vector_search(vector, k, sql)
    if mode == "hybrid":
        return store.hybrid_search(query, vector, k, sql)
    candidates = store.vector_search(vector, fetch_k or max(4 * k, 20), sql, with_vectors=True)
    if not candidates:
        return []
    matrix = np.stack([hit.vector for hit in candidates])
    return [candidates[i] for i in mmr_select(vector, matrix, k, mmr_lambda)]
