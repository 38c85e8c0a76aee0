"""Select: the model, its card, and what serving it and each planned adaptation will cost in memory.

The estimates come from :mod:`genlab.models.estimate` for the architecture read from the model
itself (parameters counted from its weights, dims from its config) -- one for serving at the batch
the optimise step measures, and one per adapt candidate with that candidate's method, batch size,
sequence length (its ``max_length``), LoRA, prompt-tuning and checkpointing settings -- so the report
can put each estimate of the whole process beside the peak memory measured when the step ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.optimize.measure import EvalSpec
from genlab.pipeline.step import StepContext, StepOutcome
from genlab.pipeline.workspace import StepFile
from genlab.registry import get_method

SERVING_BATCH = EvalSpec().batch_size  # the optimise step measures serving at its eval batch (8)


class SelectStage:
    kind = "select"

    def settings(self, ctx: StepContext) -> Any:
        return {"select": ctx.recipe.select.model_dump(), "plans": planned_adaptations(ctx)}

    def inputs(self, ctx: StepContext) -> dict[str, StepFile]:
        path = model_location(ctx.recipe.select.model)
        return {"model": StepFile(path, "model", f"model {ctx.recipe.select.model}")} if path is not None else {}

    def run(self, ctx: StepContext, run: Any) -> StepOutcome:
        from genlab.errors import ModelNotFoundError
        from genlab.models.catalog import get_card
        from genlab.models.estimate import EstimateRequest, estimate
        from genlab.models.load import load_model
        from genlab.models.shape import shape_from_config

        select = ctx.recipe.select
        ctx.progress(f"loading {select.model}")
        loaded = load_model(select.model)
        try:
            card = get_card(select.model).model_dump()
        except ModelNotFoundError:  # a local folder or file: no catalog card, the facts come from the model
            card = None
        params = loaded.num_parameters
        shape = shape_from_config(loaded.model.config)
        serving = {"mode": "infer", "batch_size": SERVING_BATCH, "seq_len": select.infer_seq_len}
        requests = {"infer": serving} | planned_adaptations(ctx)
        estimates = {}
        for label, plan in requests.items():
            if plan is None:
                continue  # a method no estimate mode fits
            request = EstimateRequest(params=params, dtype=select.dtype, shape=shape, **plan)
            estimates[label] = estimate(request).to_dict()
        sha256 = run.store.content_hash(loaded.path) if loaded.path is not None else None
        summary = {
            "model": select.model, "model_path": str(loaded.path) if loaded.path is not None else None,
            "model_sha256": sha256, "params": params, "context_window": loaded.context_window,
            "encoder_decoder": loaded.is_encoder_decoder, "shape": shape.model_dump() if shape else None,
            "card": card, "estimates": estimates,
        }  # fmt: skip
        run.log_metrics({"params": float(params), **{f"estimated_{k}_gb": _total_gb(v) for k, v in estimates.items()}})
        selection = atomic_write_json(ctx.folder / "selection.json", summary)
        return StepOutcome(outputs={"selection": StepFile(selection, "selection", "selection")}, summary=summary)


def planned_adaptations(ctx: StepContext) -> dict[str, dict[str, Any] | None]:
    """One estimate request per adapt candidate (``adapt.NAME`` -> settings), None where none fits."""
    plans: dict[str, dict[str, Any] | None] = {}
    for name in ctx.recipe.adapt:
        recipe = ctx.recipe.finetune_recipe(name)
        mode = get_method(recipe.method, "adapt").memory_mode
        if mode is None:
            plans[f"adapt.{name}"] = None
            continue
        targets = recipe.lora.target_modules
        plans[f"adapt.{name}"] = {
            "mode": mode, "batch_size": recipe.training.batch_size, "seq_len": recipe.data.max_length,
            "gradient_checkpointing": recipe.training.gradient_checkpointing,
            "lora_rank": recipe.lora.r, "lora_targets": "all-linear" if targets == "all-linear" else "attention",
            "lora_dropout": recipe.lora.dropout, "virtual_tokens": recipe.prompt_tuning.num_virtual_tokens,
        }  # fmt: skip
    return plans


def _total_gb(estimate: dict[str, Any]) -> float:
    return estimate["infer_total_gb"] if estimate["mode"] == "infer" else estimate["train_total_gb"]


def model_location(name: str) -> Path | None:
    """The local folder or file of a model name (a pack is converted first), or None for a hub id."""
    from genlab.models.load import resolve_model_source
    from genlab.models.packs import PACKS, ensure_converted

    source = resolve_model_source(name)
    if source.kind == "pack":
        return ensure_converted(PACKS[source.location])
    if source.kind in ("folder", "gguf"):
        return Path(source.location)
    return None
