"""Reasoning and acting on any provider: chain-of-thought, PAL (programs in the sandbox), ReAct agents.

- :func:`answer_with_cot` (:mod:`.cot`): worked exemplars, the answer after "The answer is".
- :func:`answer_with_pal` (:mod:`.pal`): the model writes ``solution()``; :mod:`genlab.apps.sandbox` runs it.
- :class:`ReActAgent` (:mod:`.react`): Thought / Action / Observation over Search, Lookup, Calculate,
  Finish and typed user tools (:mod:`.tools`), over a :class:`LocalCorpus` or a RAG index (:mod:`.corpus`).

Each returns an :class:`AgentResult` and records its transcript as a lineage run of kind "agent".
"""

from genlab.apps.agents.corpus import Document, IndexCorpus, LocalCorpus
from genlab.apps.agents.cot import answer_with_cot, extract_answer
from genlab.apps.agents.pal import answer_with_pal
from genlab.apps.agents.react import ReActAgent, answer_with_react
from genlab.apps.agents.result import AgentResult, Step
from genlab.apps.agents.tools import Tool, ToolArgumentError

__all__ = [
    "AgentResult", "Document", "IndexCorpus", "LocalCorpus", "ReActAgent", "Step", "Tool", "ToolArgumentError",
    "answer_with_cot", "answer_with_pal", "answer_with_react", "extract_answer",
]
