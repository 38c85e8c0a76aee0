"""A short LoRA fine-tune after pruning, merged back so the pruned model stays one folder.

Pruning removes weights the model used; a few hundred steps of training usually win back part of
the lost quality (LLM-Pruner, Ma et al. 2023, recovers with LoRA the same way). genlab's LoRA method
(:func:`genlab.tuning.lora.adapter.prepare`, all linear layers) trains on the same instruction rows
as ``genlab finetune`` (:func:`genlab.tuning.data.build_instruction_features`); the loop is a plain
AdamW loop of ``steps`` batches (a few steps need no checkpoints, evaluation or schedule). Then the
adapter is merged (``merge_and_unload``): W <- W + (alpha / r) B A.

The merged update B A is dense, so it would fill the zeros of unstructured pruning back in; the
masks are applied again after merging, so the saved model has exactly the sparsity it was pruned to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from genlab.errors import InvalidValueError
from genlab.models.load import LoadedModel


def recover(
    loaded: LoadedModel,
    *,
    data: str,
    steps: int,
    input_field: str = "dialogue",
    target_field: str = "summary",
    template: str = "summarize",
    learning_rate: float = 5e-4,
    batch_size: int = 4,
    rank: int = 8,
    max_length: int = 512,
    seed: int = 0,
    masks: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, float]]:
    """Train LoRA on ``loaded.model`` for ``steps`` batches of ``data``, merge it; return (model, losses)."""
    import torch
    from tqdm.auto import tqdm

    from genlab.data.loaders import load_examples
    from genlab.tuning.data import build_instruction_features, training_collator
    from genlab.tuning.lora.adapter import prepare
    from genlab.tuning.recipe import LoraConfig

    rows = load_examples(data, input_field=input_field, target_field=target_field)
    features = build_instruction_features(rows, loaded, template=template, max_length=min(max_length, loaded.context_window))
    if not len(features):
        raise InvalidValueError(f"--recover-data {data!r} has no rows to train on.")
    torch.manual_seed(seed)  # LoRA's A matrices
    lora = LoraConfig(r=rank, alpha=2 * rank, dropout=0.0, target_modules="all-linear")
    model = prepare(replace(loaded, model=loaded.model), lora)
    collate = training_collator(loaded.tokenizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    order: list[int] = []
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="recovery fine-tune", disable=not progress):
        if len(order) < batch_size:  # a fresh shuffle each pass over the rows
            order += torch.randperm(len(features), generator=generator).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        batch = collate([features.features[i] for i in chosen])
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    merged = model.merge_and_unload()
    if masks:
        from genlab.optimize.prune.unstructured import apply_masks

        apply_masks(merged, masks)
    merged.eval()
    window = max(1, min(10, steps // 4))  # mean of the first and last few steps: one step is noisy
    return merged, {
        "recover_steps": float(steps), "recover_rows": float(len(features)),
        "recover_loss_start": sum(losses[:window]) / window, "recover_loss_end": sum(losses[-window:]) / window,
    }  # fmt: skip
