"""DDP on CPU: `torchrun --nproc_per_node 2` runs a recipe with gradients synchronised across ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from genlab.lineage import LineageStore

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_ranks_end_with_the_same_weights_and_one_record(tmp_path: Path, genlab_home: Path) -> None:
    from genlab.models.tiny import tiny_model

    model_dir = tmp_path / "tiny"
    loaded = tiny_model("causal")
    loaded.model.save_pretrained(model_dir)
    loaded.tokenizer.save_pretrained(model_dir)
    recipe = {
        "name": "tiny-ddp", "model": str(model_dir), "method": "lora",
        "data": {"path": "builtin", "validation_size": 8, "max_length": 512},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        "training": {"max_steps": 4, "batch_size": 2, "learning_rate": 1e-2, "eval_every": 2, "save_every": 2, "seed": 3},
        "evaluation": {"enabled": False},
    }  # fmt: skip
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe))
    torchrun = Path(sys.executable).with_name("torchrun")
    completed = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()), str(WORKER), str(recipe_file), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank-{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # Each rank trained on different batches: only synchronised gradients leave them with equal weights.
    assert ranks[0]["trainable_sha256"] == ranks[1]["trainable_sha256"]
    with LineageStore() as store:
        runs = store.list_runs(kind="finetune")
    assert len(runs) == 1 and runs[0].status == "completed"  # rank 0 alone records and saves
    assert (genlab_home / "adapters" / "tiny-ddp" / "adapter_model.safetensors").is_file()
