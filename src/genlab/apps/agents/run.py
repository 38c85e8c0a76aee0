"""One entry point for the CLI: ``run_agent("react", question, model=..., index=..., corpus=...)``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from genlab.apps.agents.corpus import Corpus, IndexCorpus, LocalCorpus
from genlab.apps.agents.cot import answer_with_cot
from genlab.apps.agents.pal import PAL_LIMITS, answer_with_pal
from genlab.apps.agents.react import CALCULATE_LIMITS, ReActAgent
from genlab.apps.agents.result import AgentResult
from genlab.apps.providers import Provider, ScriptedProvider, get_provider
from genlab.errors import GenlabError, InvalidValueError

MODES = ("cot", "pal", "react")
SCRIPTED_PREFIX = "scripted:"  # scripted:replies.json -> a fake model answering from a JSON list (tests, demos)


def provider_for(spec: str) -> Provider:
    """``scripted:FILE`` (a JSON list of replies), else whatever :func:`get_provider` makes of ``spec``."""
    if spec.startswith(SCRIPTED_PREFIX):
        path = Path(spec.removeprefix(SCRIPTED_PREFIX)).expanduser()
        try:
            replies = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise GenlabError(f"cannot read the scripted replies {path}: {error}.") from None
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise GenlabError(f"{path} must hold a JSON list of strings (the scripted replies).")
        return ScriptedProvider(replies, name=f"scripted:{path.name}")
    return get_provider(spec)


def run_agent(
    mode: str,
    question: str,
    *,
    model: str,
    index: str | None = None,
    corpus: str | None = None,
    max_steps: int = 8,
    max_tokens: int | None = None,
    unsafe_sandbox: bool = False,
) -> AgentResult:
    """``unsafe_sandbox``: run model code even where the kernel refuses a sandbox layer (the CLI warns)."""
    if mode not in MODES:
        raise InvalidValueError(f"agent mode {mode!r} is not allowed: use one of {', '.join(MODES)}.")
    if not question.strip():
        raise InvalidValueError("the question is empty: ask something.")
    if index and corpus:
        raise InvalidValueError("give --index or --corpus, not both: Search reads one collection.")
    if mode == "cot" and unsafe_sandbox:
        raise InvalidValueError("--unsafe-sandbox is for pal and react: cot runs no code.")
    if mode != "react" and (index or corpus):
        raise InvalidValueError(f"--index and --corpus are for react; {mode} does not search.")
    documents: Corpus | None = IndexCorpus(index) if index else LocalCorpus.from_folder(corpus) if corpus else None
    provider = provider_for(model)
    tokens = {"max_tokens": max_tokens} if max_tokens else {}
    if mode == "cot":
        return answer_with_cot(question, provider, **tokens)
    if mode == "pal":
        return answer_with_pal(question, provider, limits=replace(PAL_LIMITS, allow_unsafe=unsafe_sandbox), **tokens)
    limits = replace(CALCULATE_LIMITS, allow_unsafe=unsafe_sandbox)
    return ReActAgent(provider, corpus=documents, max_steps=max_steps, limits=limits, **tokens).run(question)
