"""The agents' prompt templates (``templates/*.jinja``, strict Jinja) and how each answer ends."""

from __future__ import annotations

import functools
from pathlib import Path

from genlab.prompting.templates import PromptTemplate, load_template_file

TEMPLATE_DIR = Path(__file__).with_name("templates")
# Where an answer in each format ends: the start of the next exemplar (or, for ReAct, the
# observation only genlab may write). A model that ignores stop sequences is cut here too.
STOPS: dict[str, tuple[str, ...]] = {
    "cot": ("\nQ:", "\n\n\n"),
    "pal": ("\nQ:", "\n\n\n"),
    "react": ("\nObservation", "\nQuestion:"),
}


@functools.cache
def _builtin(mode: str) -> PromptTemplate:
    source = (TEMPLATE_DIR / f"{mode}.jinja").read_text(encoding="utf-8")
    return PromptTemplate(mode, source, origin="builtin", stop=STOPS[mode])


def agent_template(mode: str, path: str | Path | None = None) -> PromptTemplate:
    """The builtin template of ``mode`` (cot, pal, react), or a user's file with the same variables."""
    if path is None:
        return _builtin(mode)
    template = load_template_file(path)
    template.stop = STOPS[mode]
    return template


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """``text`` up to the first stop sequence (providers that ignore ``stop`` are cut here)."""
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
