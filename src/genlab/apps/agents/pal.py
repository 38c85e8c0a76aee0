"""PAL: the model writes a Python program for the question; the sandbox runs it; what it prints is the answer.

Gao et al., 2022, "PAL: Program-aided Language Models" (https://arxiv.org/abs/2211.10435). The
exemplars (``templates/pal.jinja``) define ``solution()`` and return the answer, as in the paper's
GSM8K prompt. genlab appends ``print(solution())`` when the program defines ``solution`` and prints
nothing itself, runs it through :mod:`genlab.apps.sandbox`, and takes the last printed line as the
answer. The program and its output are kept in the result (and the lineage transcript).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genlab.apps.agents.prompts import agent_template, cut_at_stop
from genlab.apps.agents.result import AgentResult, Step, record_agent_run
from genlab.apps.providers.base import Provider
from genlab.apps.sandbox import SandboxLimits, run_code

# The program's sandbox. allow_unsafe=True is --unsafe-sandbox's doing (genlab agent pal).
PAL_LIMITS = SandboxLimits(wall_seconds=10, cpu_seconds=5)
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def extract_program(text: str) -> str:
    """The Python in the model's output: a fenced block if there is one, else the text itself."""
    fenced = _FENCE.search(text)
    code = fenced.group(1) if fenced else text
    return code.strip("\n").rstrip() + "\n"


def runnable_program(code: str) -> str:
    """``code`` plus ``print(solution())`` when it defines solution() and has no print of its own."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the sandbox reports the syntax error with its line
    defines = any(isinstance(n, ast.FunctionDef) and n.name == "solution" for n in tree.body)
    prints = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print" for n in ast.walk(tree))
    calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "solution" for n in ast.walk(tree))
    if defines and not prints and not calls:
        return code + "print(solution())\n"
    return code


def answer_with_pal(
    question: str,
    provider: Provider,
    *,
    examples: Sequence[Any] = (),
    template: str | Path | None = None,
    limits: SandboxLimits | None = None,
    max_tokens: int = 256,
    record: bool = True,
) -> AgentResult:
    """Have ``provider`` write a program for ``question`` and run it in the sandbox."""
    prompt_template = agent_template("pal", template)
    prompt = prompt_template.render(input=question.strip(), examples=list(examples))
    written = cut_at_stop(provider.complete(prompt, max_tokens=max_tokens, stop=prompt_template.stop), prompt_template.stop)
    program = runnable_program(extract_program(written))
    run = run_code(program, limits or PAL_LIMITS)
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    answer = lines[-1] if run.ok and lines else None
    error = None if answer else (f"the program failed in the sandbox: {run.error}" if not run.ok else "the program printed nothing.")
    result = AgentResult(
        mode="pal", question=question, answer=answer, error=error, prompt=prompt, model=provider.name,
        program=program, program_output=run.stdout,
        steps=[Step(model_output=written, action="Run", argument=program, observation=run.stdout if run.ok else str(run.error),
                    refused=run.kind == "refused")],
    )  # fmt: skip
    return record_agent_run(result, {"max_tokens": max_tokens, "sandbox": run.record()}) if record else result
