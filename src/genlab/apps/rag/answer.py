"""Answer a question from an index: retrieve, fit the sources into the context window, cite them.

The prompt (``templates/answer.jinja``, strict Jinja) numbers each retrieved chunk and quotes it
inside ``<source id=N>`` ... ``</source>``, telling the model the sources are data, not instructions;
any ``<source`` / ``</source`` inside a chunk is defused so a document cannot close its quote and
speak as the prompt. Sources are added best first while the prompt plus ``max_tokens`` of answer
fits the model's context window (counted with the provider's own tokenizer); one that does not fit
is left out (the first is cut to fit rather than answering with none). The answer returns the
sources it was given, each marked ``cited`` when the answer names its number.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.apps.providers.base import Provider
from genlab.apps.rag.index import Index, open_index
from genlab.apps.rag.retrieve import DEFAULT_MODE
from genlab.apps.rag.store import Hit
from genlab.errors import PromptTooLongError

TEMPLATE = Path(__file__).parent / "templates" / "answer.jinja"
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass
class Source:
    number: int  # the [n] the answer cites
    path: str
    chunk: int
    score: float
    text: str
    cited: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    question: str
    answer: str
    sources: list[Source]
    index: str
    model: str
    mode: str
    prompt_tokens: int
    context_window: int
    left_out: int  # retrieved chunks that did not fit the context window
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [
            {"id": s.number, "path": s.path, "chunk": s.chunk, "score": round(s.score, 6), "cited": s.cited,
             "text": s.text, **({"page": s.metadata["page"]} if "page" in s.metadata else {})}  # fmt: skip
            for s in self.sources
        ]
        return data


@functools.cache
def _template() -> Any:
    from genlab.prompting.templates import PromptTemplate

    return PromptTemplate("rag-answer", TEMPLATE.read_text(encoding="utf-8"), origin="builtin")


def quote_source(text: str) -> str:
    """The chunk as quoted data: it cannot open or close a ``<source>`` element of the prompt."""
    return re.sub(r"<(/?)(source)", r"‹\1\2", text, flags=re.IGNORECASE)


def build_prompt(question: str, hits: list[Hit], provider: Provider, *, max_tokens: int = 256) -> tuple[str, list[Source], int]:
    """The prompt, the sources it holds (numbered from 1) and its token count, within the context window."""
    template = _template()

    def render(sources: list[Source]) -> str:
        quoted = [{"number": s.number, "path": s.path.replace('"', "'"), "text": quote_source(s.text)} for s in sources]
        return template.render(question=question, sources=quoted)

    budget = provider.context_window - max_tokens
    bare = provider.count_tokens(render([]))
    if bare > budget:
        raise PromptTooLongError(
            f"the question alone takes {bare} prompt tokens; with max_tokens={max_tokens} it exceeds the model's "
            f"context window of {provider.context_window} tokens."
        )
    kept: list[Source] = []
    for hit in hits:
        source = Source(len(kept) + 1, hit.path, hit.chunk, float(hit.score), hit.text, metadata=dict(hit.metadata))
        if provider.count_tokens(render([*kept, source])) <= budget:
            kept.append(source)
        elif not kept:
            source.text = _cut_to_fit(source, render, provider, budget)
            if source.text:
                kept.append(source)
    prompt = render(kept)
    return prompt, kept, provider.count_tokens(prompt)


def _cut_to_fit(source: Source, render: Any, provider: Provider, budget: int) -> str:
    """The longest prefix of the source's text (by binary search on characters) that keeps the prompt in budget."""
    low, high, text = 0, len(source.text), source.text
    while low < high:
        middle = (low + high + 1) // 2
        trial = Source(source.number, source.path, source.chunk, source.score, text[:middle])
        if provider.count_tokens(render([trial])) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip()


def cited_numbers(answer: str) -> set[int]:
    return {int(n) for group in _CITATION.findall(answer) for n in re.split(r"\s*,\s*", group)}


def answer_question(
    index: str | Index,
    question: str,
    provider: Provider,
    *,
    k: int = 5,
    mode: str = DEFAULT_MODE,
    where: Mapping[str, Any] | str | None = None,
    max_tokens: int = 256,
    record: bool = True,
) -> Answer:
    """Retrieve ``k`` chunks, prompt ``provider`` with them and return its answer with its sources.

    Recorded in lineage as a ``rag-query`` run (the index read, the answer written) unless ``record=False``.
    """
    index = open_index(index) if isinstance(index, str) else index
    if not question.strip():
        from genlab.errors import InvalidValueError

        raise InvalidValueError("the question is empty: ask something.")
    if not record:
        return _answer(index, question, provider, k=k, mode=mode, where=where, max_tokens=max_tokens)[0]
    from genlab.atomic import atomic_write_json
    from genlab.lineage import record_run

    config = {"index": index.name, "question": question, "model": provider.name, "k": k, "mode": mode,
              "where": where, "max_tokens": max_tokens, "embedder": index.manifest["embedder"]}  # fmt: skip
    with record_run("rag-query", config) as run:
        run.use(index.path, "index", {"name": index.name})
        result, timings = _answer(index, question, provider, k=k, mode=mode, where=where, max_tokens=max_tokens)
        result.run_id = run.id
        path = atomic_write_json(run.dir / "answer.json", result.to_dict())
        run.log_artifact(path, "rag-answer")
        run.log_metrics({"sources": len(result.sources), "cited": sum(s.cited for s in result.sources),
                         "left_out": result.left_out, "prompt_tokens": result.prompt_tokens, **timings})  # fmt: skip
    return result


def _answer(
    index: Index, question: str, provider: Provider, *, k: int, mode: str, where: Any, max_tokens: int
) -> tuple[Answer, dict[str, float]]:
    started = time.perf_counter()
    hits = index.search(question, k, mode=mode, where=where)
    retrieved = time.perf_counter()
    prompt, sources, prompt_tokens = build_prompt(question, hits, provider, max_tokens=max_tokens)
    text = provider.complete(prompt, max_tokens=max_tokens).strip()
    cited = cited_numbers(text)
    for source in sources:
        source.cited = source.number in cited
    timings = {"retrieval_ms": 1000 * (retrieved - started), "generation_ms": 1000 * (time.perf_counter() - retrieved)}
    answer = Answer(question, text, sources, index.name, provider.name, mode, prompt_tokens,
                    provider.context_window, len(hits) - len(sources))  # fmt: skip
    return answer, timings
