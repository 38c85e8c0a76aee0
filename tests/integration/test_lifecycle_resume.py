"""`genlab run` killed with SIGKILL in the middle of adaptation, then run again: it resumes at its last checkpoint.

A tiny random model keeps it short, but it runs as a user would: two `genlab` processes, the first
killed without warning (no handler runs), so this is the one slower test of the lifecycle's resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genlab.lineage import LineageStore
from tests.conftest import run_cli

pytestmark = pytest.mark.integration
STEPS = 40


def complete_checkpoints(folder: Path) -> list[int]:
    """Steps of the checkpoints whose trainer state was written (the Trainer writes it last)."""
    return sorted(int(p.parent.name.rsplit("-", 1)[1]) for p in folder.glob("checkpoint-*/trainer_state.json"))


def test_a_run_killed_mid_adaptation_resumes_at_its_last_checkpoint(tmp_path: Path, genlab_home: Path) -> None:
    from genlab.models.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    recipe = tmp_path / "killed.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "killed",
        "scope": {"metric": "rouge1"},
        "data": {"path": "builtin", "held_out": 4, "limit": 40},
        "select": {"model": str(model)},
        "adapt": {"lora": {"method": "lora", "lora": {"r": 4, "alpha": 8}, "data": {"validation_size": 2},
                           "training": {"max_steps": STEPS, "batch_size": 2, "learning_rate": 1e-2, "eval_every": 30,
                                        "save_every": 5, "log_every": 1}}},
        "evaluate": {"metrics": ["rouge"], "max_new_tokens": 4, "limit": 2},
        "deploy": {"candidate": "lora"},
    }), encoding="utf-8")  # fmt: skip
    checkpoints = genlab_home / "finetune" / "killed-lora" / "checkpoints"
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "genlab", "run", str(recipe), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not complete_checkpoints(checkpoints) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"genlab run ended before it could be killed: {process.stderr.read().decode()[-500:]}"
    process.send_signal(signal.SIGKILL)  # mid-training, perhaps mid-checkpoint: nothing gets to clean up
    process.wait()
    process.stderr.close()
    newest_complete = complete_checkpoints(checkpoints)[-1]
    assert newest_complete < STEPS

    again = run_cli("run", str(recipe), "--no-progress", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    status = {s["step"]: s["status"] for s in result["steps"]}
    assert status == {"scope": "reused", "select": "reused", "adapt.lora": "ran", "evaluate": "ran", "deploy": "ran"}
    adapt = next(s for s in result["steps"] if s["step"] == "adapt.lora")["state"]
    assert adapt["summary"]["resumed"] is True and adapt["summary"]["metrics"]["steps"] == STEPS
    with LineageStore() as store:
        finetune = store.get_run(adapt["sub_runs"]["finetune"])
        assert finetune.config["resume_from"].endswith(f"checkpoint-{newest_complete}")
        lifecycles = store.list_runs(kind="lifecycle")
        assert [run.status for run in lifecycles] == ["completed", "failed"]
        assert "ended without finishing the run" in lifecycles[1].error  # found dead when the store reopened
        killed_step = next(r for r in store.list_runs(kind="lifecycle.adapt") if r.status == "failed")
        assert "ended without finishing the run" in killed_step.error
    assert not checkpoints.exists()  # the finished run's adapter replaced them
