"""Run under torchrun by test_finetune_ddp.py: fine-tune a recipe and write each rank's trained weights' hash."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from genlab.config import load_recipe
from genlab.lineage import LineageStore
from genlab.registry import get_method
from genlab.tuning.recipe import FinetuneRecipe


class RecordRankWeights(TrainerCallback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        import torch.distributed as dist

        digest = hashlib.sha256()
        for name, parameter in sorted(model.named_parameters()):
            if parameter.requires_grad:
                digest.update(name.encode())
                digest.update(parameter.detach().contiguous().numpy().tobytes())
        record = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "trainable_sha256": digest.hexdigest()}
        (self.folder / f"rank-{record['rank']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    recipe_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    recipe = load_recipe(recipe_path, FinetuneRecipe)
    with LineageStore() as store:
        get_method(recipe.method).run(recipe, store=store, callbacks=[RecordRankWeights(out)], progress=False)
