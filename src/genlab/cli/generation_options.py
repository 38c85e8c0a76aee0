"""The generation-setting flags, declared once and shared by `generate`, `chat` and `prompt compare`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", help="Most tokens to generate.")]
Temperature = Annotated[float, typer.Option(help="0 = greedy; above 0 samples (e.g. 0.7).")]
TopK = Annotated[int, typer.Option("--top-k", help="Sample among the k likeliest tokens (0 = off).")]
TopP = Annotated[float, typer.Option("--top-p", help="Nucleus sampling: smallest set with this probability.")]
RepetitionPenalty = Annotated[float, typer.Option("--repetition-penalty", help="Above 1 discourages repeats.")]
Stop = Annotated[list[str] | None, typer.Option("--stop", help="Stop before this text (repeatable).")]
Seed = Annotated[int | None, typer.Option(help="Sampling seed, for reproducible samples.")]
NumReturn = Annotated[int, typer.Option("--num-return-sequences", "-n", help="Answers per prompt (sampling).")]


def settings_from_flags(**flags: Any) -> Any:
    """Build validated GenerationSettings from the flags (errors name the field and the value)."""
    from genlab.generation import GenerationSettings

    flags["stop"] = tuple(flags.get("stop") or ())
    return GenerationSettings(**flags)
