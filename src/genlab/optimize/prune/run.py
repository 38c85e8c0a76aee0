"""Magnitude pruning, measured against the original: ``genlab optimize prune``.

Three methods, one module each:

- ``unstructured`` (:mod:`genlab.optimize.prune.unstructured`): zero the smallest-magnitude weights
  of every Linear layer but the output head, ranked over the whole model (``scope=global``) or per
  layer (``scope=layer``). The zeros are stored densely, so without sparse kernels the model is
  exactly as large and as fast as before: this shows what a sparsity costs in quality, not a saving.
- ``neurons`` and ``heads`` (:mod:`genlab.optimize.prune.structured`): remove whole MLP neurons or
  attention heads (whole key/value groups of a grouped-query model by default), so the saved model
  has a smaller ``intermediate_size`` or fewer heads -- it is smaller on disk and in memory and
  generates more tokens/s. A transformers config holds one size for all layers, so every layer
  loses the same number of units (``scope=layer``). Llama-style decoders only (llama, mistral,
  qwen2); other architectures are refused.

An optional LoRA recovery fine-tune (:mod:`genlab.optimize.prune.recover`) trains ``recover_steps``
batches and merges the adapter, keeping the unstructured masks. The result is saved as an ordinary
transformers folder with a ``genlab_optimized.json`` manifest, both models are measured in fresh
processes (:func:`genlab.optimize.measure.measure`), and the run is recorded in lineage (kind
``optimize``).

Measured on the default model (SmolLM2-135M-Instruct, fp32, ROUGE-1 of greedy summaries of the 20
builtin dialogues, ``bench/prune.py``; the 2 cores were shared with ~6 other jobs, so tokens/s are
~1/15 of an idle machine's and their ratio is noise):

    neurons 0.3 (intermediate 1536 -> 1075 in all 30 layers, 17.8 % of the parameters removed):
        538.1 -> 442.5 MB on disk (1.22x smaller), 134.5M -> 110.6M parameters,
        ROUGE-1 0.2033 -> 0.0028 without recovery: a 135M model does not survive losing 30 % of its
        MLP neurons by magnitude alone.
    unstructured 0.5, global (53.1M of 106.2M Linear weights zeroed; 39.7 % of all parameters):
        538.1 MB either way (dense zeros), ROUGE-1 0.2033 -> 0.0213; global ranking spreads the
        zeros unevenly (layer 0's v_proj ends 97.9 % sparse, its q_proj 48.8 %).

With recovery, measured on an idle machine: unstructured 0.4, global (31.8 % of all parameters
zero), ROUGE-1 of the first 50 DialogSum dev dialogues, recovery on the other 400 (387 fit the
length limit; 60 steps of 4, LoRA r=8, loss 3.02 -> 1.59, about 8 minutes on 2 cores):

    original 0.1333;  pruned 0.0258 without recovery;  pruned + recovered 0.2746

The recovered model scores above the original because the recovery fine-tune also teaches the task
(the unpruned model after genlab's LoRA recipe scores about 0.40 on DialogSum); the zeros survive the
merge (the sparsity after recovery is measured again and reported).

Peak memory is not reported here: the child's ``ru_maxrss`` inherits the RSS the parent held when it
forked (Linux keeps the pre-exec high-water mark), so both rows showed the caller's peak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.lineage import LineageStore, record_run
from genlab.optimize.measure import EvalSpec
from genlab.optimize.prune.recipe import PruneConfig, PruneRecipe
from genlab.optimize.report import OptimizationReport


@dataclass
class Pruned:
    model: Any  # the pruned model (a new, smaller one for structured methods)
    details: dict[str, Any]  # the sparsity report or the parameters removed
    masks: dict[str, Any] = field(default_factory=dict)  # unstructured: kept weights, to re-apply after recovery
    plan: dict[int, list[int]] = field(default_factory=dict)  # structured: kept units per layer


def _unstructured(model: Any, settings: PruneConfig) -> Pruned:
    from genlab.optimize.prune.unstructured import prune_unstructured, sparsity_report

    masks = prune_unstructured(model, settings.sparsity, settings.scope or "global")
    return Pruned(model, sparsity_report(model), masks=masks)


def _neurons(model: Any, settings: PruneConfig) -> Pruned:
    from genlab.optimize.prune.structured import check_supported, prune_neurons

    check_supported(model, "neurons")
    before = model.config.intermediate_size
    smaller, plan = prune_neurons(model, settings.sparsity)
    details = {"intermediate_size_before": before, "intermediate_size_after": smaller.config.intermediate_size}
    return Pruned(smaller, {**details, **_removed(model, smaller)}, plan=plan)


def _heads(model: Any, settings: PruneConfig) -> Pruned:
    from genlab.optimize.prune.structured import check_supported, prune_heads

    check_supported(model, "heads")
    before = (model.config.num_attention_heads, model.config.num_key_value_heads)
    smaller, plan = prune_heads(model, settings.sparsity, settings.heads_unit)
    details = {
        "heads_unit": settings.heads_unit, "heads_before": before[0], "kv_heads_before": before[1],
        "heads_after": smaller.config.num_attention_heads, "kv_heads_after": smaller.config.num_key_value_heads,
    }  # fmt: skip
    return Pruned(smaller, {**details, **_removed(model, smaller)}, plan=plan)


def _removed(model: Any, smaller: Any) -> dict[str, Any]:
    from genlab.optimize.prune.structured import count_parameters

    before, after = count_parameters(model), count_parameters(smaller)
    return {
        "parameters_before": before, "parameters_after": after, "parameters_removed": before - after,
        "parameters_removed_fraction": (before - after) / before,
    }  # fmt: skip


METHODS: dict[str, Callable[[Any, PruneConfig], Pruned]] = {
    "unstructured": _unstructured,
    "neurons": _neurons,
    "heads": _heads,
}


def prune_model(model: Any, settings: PruneConfig) -> Pruned:
    """Prune a transformers model in memory (unstructured: in place; structured: a new, smaller model)."""
    import torch

    with torch.no_grad():
        pruned = METHODS[settings.method](model, settings)
    pruned.details = {"method": settings.method, "sparsity_asked": settings.sparsity, "scope": settings.scope, **pruned.details}
    return pruned


def recover_pruned(loaded: Any, pruned: Pruned, settings: PruneConfig, spec: EvalSpec, progress: bool = True) -> None:
    """The LoRA recovery fine-tune on ``pruned.model`` (merged; unstructured masks re-applied), in place."""
    from genlab.optimize.prune.recover import recover

    model, losses = recover(
        replace(loaded, model=pruned.model), data=str(settings.recover_data), steps=settings.recover_steps,
        input_field=spec.input_field, target_field=spec.target_field, template=spec.template,
        learning_rate=settings.recover_learning_rate, batch_size=settings.recover_batch_size,
        rank=settings.recover_rank, seed=settings.seed, masks=pruned.masks or None, progress=progress,
    )  # fmt: skip
    pruned.model = model
    pruned.details.update(losses)
    if pruned.masks:  # the sparsity after recovery, measured again
        from genlab.optimize.prune.unstructured import sparsity_report

        pruned.details.update(sparsity_report(model))


def default_output(model: str, settings: PruneConfig) -> Path:
    from genlab.home import genlab_home
    from genlab.training.saving import free_folder

    name = f"{Path(model).name}-prune-{settings.method}-{settings.sparsity:g}"
    return free_folder(genlab_home() / "optimized", name)


def save_pruned(pruned: Pruned, tokenizer: Any, folder: Path, manifest: dict[str, Any]) -> Path:
    from genlab.optimize.artifact import optimized_folder

    with optimized_folder(folder, manifest) as tmp:
        pruned.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def prune(recipe: PruneRecipe, *, store: LineageStore, progress: bool = True) -> OptimizationReport:
    """Prune ``recipe.model``, optionally recover, save, measure both models, record the run into ``store``; see the
    module docstring. ``recipe.measure=False`` skips the two measuring processes (the report then holds zeros)."""
    from genlab.models.load import load_model
    from genlab.optimize.measure import measure_pair

    model, settings, spec = recipe.model, recipe.prune, recipe.evaluation
    if recipe.measure:
        spec.check_data()
    config = {"model": model, "prune": settings.model_dump(), "eval": spec.model_dump()}
    with record_run("optimize", config, store=store) as run:
        loaded = load_model(model)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": loaded.name})
        pruned = prune_model(loaded.model, settings)
        if settings.recover_steps:
            recover_pruned(loaded, pruned, settings, spec, progress)
        folder = Path(recipe.output) if recipe.output is not None else default_output(model, settings)
        manifest = {
            "method": f"prune-{settings.method}", "base_model": model, "sparsity": settings.sparsity,
            "scope": settings.scope, "recover_steps": settings.recover_steps, "run_id": run.id,
        }  # fmt: skip
        if settings.method == "heads":
            manifest["heads_unit"] = settings.heads_unit
        save_pruned(pruned, loaded.tokenizer, folder, manifest)
        details = pruned.details
        del loaded, pruned  # both models out of memory before the measuring processes start
        original, result = measure_pair(model, str(folder), spec, enabled=recipe.measure)
        report = OptimizationReport(f"prune-{settings.method}", run.id, str(folder), original, result, details)
        run.log_artifact(folder, "model", {"method": report.method, "base": model})
        run.log_metrics(report.metrics())
        run.log_metrics({f"prune_{k}": float(v) for k, v in details.items() if isinstance(v, (int, float))})
    return report
