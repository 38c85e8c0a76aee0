"""The fine-tuning trainer end to end on tiny random models: every method, exact resumption, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from genlab.lineage import LineageStore
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from genlab.registry import get_method
from genlab.training.checkpoints import CheckpointError
from genlab.tuning.recipe import FinetuneRecipe, work_dir
from tests.unit.training_support import CrashAt


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from genlab.models.tiny import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    folders = {}
    for kind in ("causal", "seq2seq"):
        folder = tmp_path_factory.mktemp(f"tiny-{kind}")
        loaded = tiny_model(kind, tokenizer=tokenizer)  # type: ignore[arg-type]
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        folders[kind] = folder
    return folders


def recipe(model: Path, **changes: Any) -> FinetuneRecipe:
    base: dict[str, Any] = {
        "name": "tiny",
        "model": str(model),
        "method": "lora",
        "data": {"path": "builtin", "validation_size": 8, "max_length": 512},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        "training": {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-2, "eval_every": 2, "save_every": 2,
                     "log_every": 1, "seed": 7},
        "evaluation": {"enabled": False},
    }  # fmt: skip
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            base.setdefault(section, {})[field] = value
        else:
            base[key] = value
    return FinetuneRecipe.model_validate(base)


def finetune(recipe: FinetuneRecipe, **options: Any) -> SimpleNamespace:
    """The recipe's method from the registry, as `genlab finetune` runs it; its details as attributes."""
    with LineageStore() as store:
        result = get_method(recipe.method).run(recipe, store=store, **options)
    return SimpleNamespace(**result.details, metrics=result.metrics, loss_history=result.loss_history)


def adapter_tensors(folder: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


class CtrlCAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_lora_run_saves_a_fingerprinted_adapter_and_records_lineage(tiny_folders: dict[str, Path]) -> None:
    result = finetune(recipe(tiny_folders["causal"]), progress=False)

    assert 0 < result.trainable_params < result.total_params
    assert result.trainable_percent == pytest.approx(100 * result.trainable_params / result.total_params)
    assert result.metrics["steps"] == 6 and result.metrics["peak_memory_mb"] > 0
    assert {"loss", "eval_loss"} <= {key for entry in result.loss_history for key in entry}
    record = json.loads((Path(result.adapter_path) / "genlab_adapter.json").read_text())
    assert record["method"] == "lora" and record["run_id"] == result.run_id
    assert record["base_fingerprint"].startswith("sha256:")
    assert not work_dir(recipe(tiny_folders["causal"])).joinpath("checkpoints").exists()  # removed on success
    with LineageStore() as store:
        run = store.get_run(result.run_id)
        assert run.status == "completed"
        outputs = store.artifacts_of(result.run_id, "output")
        assert any(a.kind == "adapter" for a in outputs)
        assert {a.kind for a in store.artifacts_of(result.run_id, "input")} >= {"model"}
        losses = store.metric_history(result.run_id, "train_loss")
        assert [step for step, _ in losses][:2] == [1, 2]


def test_training_lowers_the_training_loss(tiny_folders: dict[str, Path]) -> None:
    result = finetune(recipe(tiny_folders["causal"], training__max_steps=12, training__learning_rate=3e-2), progress=False)
    losses = [entry["loss"] for entry in result.loss_history if "loss" in entry]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_resume_after_a_crash_ends_with_the_uninterrupted_weights(tiny_folders: dict[str, Path]) -> None:
    straight = finetune(recipe(tiny_folders["causal"], name="straight"), progress=False)

    crashed = recipe(tiny_folders["causal"], name="crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(crashed, callbacks=[CrashAt(3)], progress=False)
    assert (work_dir(crashed) / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(CheckpointError, match="--resume"):
        finetune(crashed, progress=False)  # a fresh run never starts over unfinished checkpoints
    # A kill during the next checkpoint's write: its folder is there, trainer_state.json (written last) is not.
    cut_short = work_dir(crashed) / "checkpoints" / "checkpoint-4"
    shutil.copytree(work_dir(crashed) / "checkpoints" / "checkpoint-2", cut_short)
    (cut_short / "trainer_state.json").unlink()
    resumed = finetune(crashed, resume=True, progress=False)
    assert not cut_short.exists()

    assert_same_tensors(adapter_tensors(straight.adapter_path), adapter_tensors(resumed.adapter_path))


def test_resume_without_a_checkpoint_is_refused(tiny_folders: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        finetune(recipe(tiny_folders["causal"], name="never-ran"), resume=True, progress=False)


def test_full_fine_tuning_saves_a_loadable_model_with_changed_weights(tiny_folders: dict[str, Path]) -> None:
    result = finetune(recipe(tiny_folders["causal"], method="full", training__learning_rate=1e-3), progress=False)

    assert result.trainable_params == result.total_params
    tuned, base = load_model(result.adapter_path), load_model(str(tiny_folders["causal"]))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tuned.model.state_dict()[name], base.model.state_dict()[name])
    assert json.loads((Path(result.adapter_path) / "genlab_model.json").read_text())["method"] == "full"


def test_selective_fine_tuning_changes_only_the_chosen_layer(tiny_folders: dict[str, Path]) -> None:
    result = finetune(recipe(tiny_folders["causal"], method="selective", selective={"layers": [-1]}), progress=False)

    assert 0 < result.trainable_percent < 100
    tuned = load_model(result.adapter_path).model.state_dict()
    base = load_model(str(tiny_folders["causal"])).model.state_dict()
    last = "model.layers.1.mlp.down_proj.weight"
    first = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(tuned[last], base[last])
    assert torch.equal(tuned[first], base[first])


def test_prompt_tuning_trains_only_the_soft_prompt(tiny_folders: dict[str, Path]) -> None:
    result = finetune(
        recipe(tiny_folders["causal"], method="prompt_tuning", prompt_tuning={"num_virtual_tokens": 5}), progress=False
    )
    base = load_model(str(tiny_folders["causal"]))
    hidden = base.model.config.hidden_size

    assert result.trainable_params == 5 * hidden
    with_prompt = merge_adapter(base, result.adapter_path)
    assert tuple(with_prompt.soft_prompt.shape) == (5, hidden)


def test_continued_pretraining_packs_raw_text(tiny_folders: dict[str, Path]) -> None:
    result = finetune(
        recipe(
            tiny_folders["causal"], method="continued_pretraining", data={"path": "builtin", "text_field": "dialogue",
            "validation_size": 8, "block_size": 64}, training__max_steps=3,
        ),
        progress=False,
    )  # fmt: skip
    assert result.trainable_params == result.total_params
    assert result.metrics["train_rows"] > 0 and "eval_loss" in result.metrics


def test_seq2seq_lora_with_scores_before_and_after(tiny_folders: dict[str, Path]) -> None:
    result = finetune(
        recipe(
            tiny_folders["seq2seq"], training__max_steps=2, evaluation={"enabled": True, "baseline": True, "limit": 3,
            "max_new_tokens": 8},
        ),
        progress=False,
    )  # fmt: skip
    assert result.baseline_run_id and result.eval_run_id
    assert "val_rouge1" in result.metrics
    assert Path(result.report).is_file() and "data:image/png;base64," in Path(result.report).read_text()
    with LineageStore() as store:
        assert store.get_run(result.eval_run_id).status == "completed"


def test_continued_pretraining_with_too_little_held_out_text_trains_without_validation(
    tiny_folders: dict[str, Path],
) -> None:
    result = finetune(
        recipe(
            tiny_folders["causal"], method="continued_pretraining", data={"path": "builtin", "text_field": "dialogue",
            "validation_size": 1, "block_size": 500}, training__max_steps=2,
        ),
        progress=False,
    )  # fmt: skip
    assert result.metrics["train_rows"] > 0 and "eval_loss" not in result.metrics


def test_forgetting_check_scores_a_second_task_before_and_after(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    settings = recipe(
        tiny_folders["causal"], method="full", training__max_steps=3, training__learning_rate=1e-2,
        evaluation={"enabled": True, "limit": 2, "max_new_tokens": 4, "forgetting_task": "everyday-facts",
                    "forgetting_limit": 6},
    )  # fmt: skip
    with LineageStore(tmp_path / "given.sqlite") as given:  # every run goes into the store the method is given
        method_result = get_method("full").run(settings, store=given, progress=False)
        evaluations = [run for run in given.list_runs(limit=100) if run.kind == "eval"]
        assert len(evaluations) == 3  # the tuned model on the validation rows, the second task before and after
    with LineageStore() as default:
        assert default.list_runs(limit=100) == []
    result = SimpleNamespace(**method_result.details, metrics=method_result.metrics)
    metrics = result.metrics
    assert 0 <= metrics["forgetting_accuracy_before"] <= 1 and 0 <= metrics["forgetting_accuracy_after"] <= 1
    assert metrics["forgetting_accuracy_change_pp"] == pytest.approx(
        100 * (metrics["forgetting_accuracy_after"] - metrics["forgetting_accuracy_before"])
    )
    assert "catastrophic-forgetting" in Path(result.report).read_text()
    with LineageStore(tmp_path / "given.sqlite") as store:
        linked = store._conn.execute(
            "SELECT relation FROM links WHERE parent_id = ? AND relation LIKE 'forgetting%'", (result.run_id,)
        ).fetchall()
    assert sorted(row[0] for row in linked) == ["forgetting_after", "forgetting_before"]


def test_lora_with_gradient_checkpointing_still_trains_the_adapter(tiny_folders: dict[str, Path]) -> None:
    result = finetune(
        recipe(tiny_folders["causal"], training__gradient_checkpointing=True, training__max_steps=2), progress=False
    )
    lora_b = [tensor for name, tensor in adapter_tensors(result.adapter_path).items() if "lora_B" in name]
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)  # B starts at zero: gradients reached it
