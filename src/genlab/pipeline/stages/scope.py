"""Scope: the use case, task, metric of record and target -- and the task's data, split once for every stage.

The rows are split (seeded, :func:`genlab.data.splits.split_examples`) into ``train.jsonl``, which
adaptation and alignment learn from and few-shot prompts draw examples from, and ``held-out.jsonl``,
which the prompt baseline, every candidate's evaluation and the optimisation's measurements score.
No stage ever trains on a held-out row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile


class ScopeStage:
    kind = "scope"

    def settings(self, ctx: StepContext) -> Any:
        return {"scope": ctx.recipe.scope.model_dump(), "data": ctx.recipe.data.model_dump()}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        source = data_source(ctx)
        return {"data": StepFile(source, "dataset", f"data {ctx.recipe.data.path}")} if source is not None else {}

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        from genlab.data.loaders import load_examples
        from genlab.data.splits import split_examples
        from genlab.tuning.assemble import resolve_data_path

        data = ctx.recipe.data
        ctx.progress(f"reading {data.path}")
        rows = load_examples(
            resolve_data_path(data.path, ctx.recipe_dir), input_field=data.input_field,
            target_field=data.target_field, limit=data.limit,
        )  # fmt: skip
        size = int(data.held_out) if data.held_out >= 1 else data.held_out
        train, held_out = split_examples(rows, test_size=size, seed=data.split_seed)
        train_file = write_rows(ctx.folder / "train.jsonl", train, data.input_field, data.target_field)
        held_out_file = write_rows(ctx.folder / "held-out.jsonl", held_out, data.input_field, data.target_field)
        scope = {**ctx.recipe.scope.model_dump(), "rows": len(rows), "train_rows": len(train), "held_out_rows": len(held_out)}
        scope_file = atomic_write_json(ctx.folder / "scope.json", scope)
        return StepOutcome(
            outputs={
                "train": StepFile(train_file, "dataset", f"train split ({len(train)} rows)"),
                "held_out": StepFile(held_out_file, "dataset", f"held-out split ({len(held_out)} rows)"),
                "scope": StepFile(scope_file, "scope", "scope"),
            },
            summary=scope,
        )


def data_source(ctx: StepContext) -> Path | None:
    """The local file behind the recipe's data (a builtin set's JSONL or a file), or None for a hub id."""
    from genlab.data.builtin import source_file
    from genlab.tuning.assemble import resolve_data_path

    return source_file(resolve_data_path(ctx.recipe.data.path, ctx.recipe_dir))


def write_rows(path: Path, rows: list[Any], input_field: str, target_field: str) -> Path:
    """Examples as JSONL with the recipe's field names (so every library loader reads them alike)."""
    lines = [json.dumps({"id": row.id, input_field: row.input, target_field: row.target}) + "\n" for row in rows]
    return atomic_write_text(path, "".join(lines))
