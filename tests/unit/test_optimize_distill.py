"""Distillation on tiny random models: the student's layers, the loss, training, refusal, saving, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from genlab.errors import InvalidValueError
from genlab.lineage import LineageStore
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model, tiny_tokenizer
from genlab.optimize.distill.loss import (
    DistillationTrainer,
    distillation_loss,
    target_logits,
)
from genlab.optimize.distill.recipe import DistillRecipe, work_dir
from genlab.optimize.distill.run import distill
from genlab.optimize.distill.student import layers_to_keep, shrink_teacher
from genlab.tuning.features import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


def deeper(kind: str, tokenizer: Any, layers: int) -> Any:
    """A tiny model with ``layers`` layers per stack (tiny_model has 2), so dropping some is visible."""
    config = tiny_model(kind, tokenizer=tokenizer).model.config  # type: ignore[arg-type]
    if kind == "causal":
        config.num_hidden_layers = layers
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config)
    config.num_layers = config.num_decoder_layers = layers
    torch.manual_seed(0)
    return AutoModelForSeq2SeqLM.from_config(config)


@pytest.fixture(scope="module")
def teacher_folders(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    folders = {}
    for kind in ("causal", "seq2seq"):
        folder = tmp_path_factory.mktemp(f"teacher-{kind}")
        deeper(kind, tokenizer, 4).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[kind] = folder
    return folders


def recipe(teacher: Path, **sections: Any) -> DistillRecipe:
    raw: dict[str, Any] = {
        "teacher": str(teacher),
        "data": {"path": "builtin", "limit": 16, "validation_size": 4, "max_length": 512},
        "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "save_every": 2, "eval_every": 4,
                     "log_every": 1, "seed": 7},
        "evaluation": {"limit": 2, "max_new_tokens": 4, "batch_size": 2, "speed_prompts": 1, "speed_tokens": 2},
    }  # fmt: skip
    for key, value in sections.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[key] = value
    return DistillRecipe.model_validate(raw)


def test_layers_kept_are_spread_evenly_with_the_first_and_last() -> None:
    assert layers_to_keep(30, 15) == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29]
    assert layers_to_keep(4, 2) == [0, 3]
    assert layers_to_keep(5, 3) == [0, 2, 4]
    assert layers_to_keep(2, 1) == [0]
    with pytest.raises(InvalidValueError, match="student_layers=5"):
        layers_to_keep(4, 5)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_student_copies_the_kept_teacher_layers(kind: str, tokenizer: Any) -> None:
    teacher = deeper(kind, tokenizer, 4)
    student = shrink_teacher(teacher, 2)
    stacks = {"causal": ["model.layers"], "seq2seq": ["encoder.block", "decoder.block"]}[kind]
    assert student.layers_kept == {stack: [0, 3] for stack in stacks}
    teacher_state, student_state = teacher.state_dict(), student.model.state_dict()
    checked_layers = 0
    for key, tensor in student_state.items():
        source = key
        for stack in stacks:
            if key.startswith(stack + "."):
                index, rest = key[len(stack) + 1 :].split(".", 1)
                source = f"{stack}.{[0, 3][int(index)]}.{rest}"
                checked_layers += 1
        assert torch.equal(tensor, teacher_state[source]), key
    assert checked_layers > 0
    if kind == "causal":
        assert student.model.config.num_hidden_layers == 2
        assert [layer.self_attn.layer_idx for layer in student.model.model.layers] == [0, 1]  # KV-cache slots
        # the copied layer 3 really differs from the dropped layers 1 and 2
        assert not torch.equal(teacher.model.layers[3].mlp.up_proj.weight, teacher.model.layers[1].mlp.up_proj.weight)
    else:
        assert (student.model.config.num_layers, student.model.config.num_decoder_layers) == (2, 2)
    assert sum(p.numel() for p in student.model.parameters()) < sum(p.numel() for p in teacher.parameters())


def test_loss_is_t_squared_kl_plus_alpha_cross_entropy() -> None:
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]])
    labels = torch.tensor([1, 2])
    temperature, alpha = 2.0, 0.3

    def softmax(row: list[float], t: float) -> list[float]:
        exps = [math.exp(x / t) for x in row]
        return [e / sum(exps) for e in exps]

    # By hand, from the equation in genlab.optimize.distill.loss (python floats, no torch).
    kl = [
        sum(p * math.log(p / q) for p, q in zip(softmax(t_row, temperature), softmax(s_row, temperature), strict=True))
        for t_row, s_row in zip(teacher.tolist(), student.tolist(), strict=True)
    ]
    ce = [-math.log(softmax(row, 1.0)[y]) for row, y in zip(student.tolist(), labels.tolist(), strict=True)]
    expected_soft = temperature**2 * sum(kl) / 2
    expected_hard = sum(ce) / 2

    loss, soft, hard = distillation_loss(student, teacher, labels, temperature=temperature, alpha=alpha)
    assert soft.item() == pytest.approx(expected_soft, rel=1e-5)
    assert hard.item() == pytest.approx(expected_hard, rel=1e-5)
    assert loss.item() == pytest.approx(expected_soft + alpha * expected_hard, rel=1e-5)
    same, soft_same, _ = distillation_loss(teacher, teacher, labels, temperature=temperature, alpha=alpha)
    assert soft_same.item() == pytest.approx(0.0, abs=1e-6)  # a student equal to its teacher has no soft loss


def features_of(loaded: Any, rows: int = 4) -> list[dict[str, list[int]]]:
    from genlab.data.loaders import load_examples
    from genlab.tuning.data import build_instruction_features

    return build_instruction_features(load_examples("builtin", limit=rows), loaded, max_length=512).features


def batch_of(loaded: Any, rows: int = 4) -> dict[str, torch.Tensor]:
    from genlab.tuning.data import training_collator

    return training_collator(loaded.tokenizer)(features_of(loaded, rows))


def test_target_logits_match_the_full_forward_pass(tokenizer: Any) -> None:
    loaded = tiny_model("causal", tokenizer=tokenizer)
    batch = batch_of(loaded)
    logits, labels = target_logits(loaded.model, batch)
    full = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["labels"][:, 1:] != IGNORE_INDEX
    assert logits.shape == (int(mask.sum()), len(tokenizer))
    torch.testing.assert_close(logits, full[:, :-1][mask], rtol=1e-5, atol=1e-5)
    assert torch.equal(labels, batch["labels"][:, 1:][mask])


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_a_few_steps_lower_the_loss_and_leave_the_teacher_alone(kind: str, tokenizer: Any, tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import TrainingArguments

    teacher = tiny_model(kind, tokenizer=tokenizer)  # type: ignore[arg-type]
    student = shrink_teacher(teacher.model, 1).model
    from genlab.tuning.data import training_collator

    batch = batch_of(teacher)
    dataset = Dataset.from_list(features_of(teacher))  # the same four rows, padded by the collator each step
    before_teacher = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    before_student = {k: v.clone() for k, v in student.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2, report_to="none",
        use_cpu=True, save_strategy="no", remove_unused_columns=False, disable_tqdm=True, seed=0, logging_steps=1,
    )  # fmt: skip
    trainer = DistillationTrainer(
        model=student, args=args, train_dataset=dataset, data_collator=training_collator(tokenizer),
        teacher=teacher.model, temperature=2.0, alpha=0.5,
    )  # fmt: skip

    def loss_now() -> float:
        student.eval()
        with torch.no_grad():
            return float(trainer.compute_loss(student, batch))

    first = loss_now()
    trainer.train()
    assert loss_now() < first
    for name, tensor in teacher.model.state_dict().items():
        assert torch.equal(tensor, before_teacher[name]), name
    changed = [name for name, p in student.named_parameters() if not torch.equal(p.detach(), before_student[name])]
    assert len(changed) == len(list(student.named_parameters()))  # every student parameter trained
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and {"soft_loss", "hard_loss"} <= set(logged[0])


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_saved_student_loads_generates_and_is_recorded(kind: str, teacher_folders: dict[str, Path]) -> None:
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.optimize.artifact import read_manifest

    result = distill(recipe(teacher_folders[kind], student={"layers": 2}), store=LineageStore(), progress=False, measure_models=False)

    manifest = read_manifest(result.folder)
    assert manifest is not None and manifest["method"] == "distill" and manifest["run_id"] == result.run_id
    assert manifest["teacher"] == str(teacher_folders[kind])
    assert all(kept == [0, 3] for kept in manifest["layers_kept"].values())
    assert manifest["settings"]["loss"] == {"temperature": 2.0, "alpha": 0.5}
    loaded = load_model(result.folder)
    assert loaded.is_encoder_decoder == (kind == "seq2seq")
    layer_count = loaded.model.config.num_layers if kind == "seq2seq" else loaded.model.config.num_hidden_layers
    assert layer_count == 2
    completion = GenerationEngine(loaded).generate(["Hello there."], GenerationSettings(max_new_tokens=3))[0]
    assert completion.new_tokens > 0
    assert result.details["steps"] == 4 and result.details["final_loss"] > 0
    assert not work_dir(recipe(teacher_folders[kind]).run_name()).exists()  # checkpoints removed on success
    with LineageStore() as store:
        run = store.get_run(result.run_id)
        assert run.kind == "optimize" and run.status == "completed"
        assert {a.kind for a in store.artifacts_of(result.run_id, "input")} == {"model", "dataset"}
        assert any(a.kind == "model" for a in store.artifacts_of(result.run_id, "output"))
        assert [step for step, _ in store.metric_history(result.run_id, "train_loss")][:2] == [1, 2]


def test_a_student_with_another_tokenizer_is_refused(teacher_folders: dict[str, Path], tmp_path: Path) -> None:
    other = tiny_model("causal", tokenizer=tiny_tokenizer(vocab_size=400))
    other.model.save_pretrained(tmp_path / "other")
    other.tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(InvalidValueError, match="does not share the teacher's tokenizer") as caught:
        distill(recipe(teacher_folders["causal"], student={"model": str(tmp_path / "other")}), store=LineageStore(), progress=False)
    assert "\n" not in str(caught.value)
    with pytest.raises(InvalidValueError, match="same kind"):
        distill(recipe(teacher_folders["causal"], student={"model": str(teacher_folders["seq2seq"])}), store=LineageStore(), progress=False)


def test_a_smaller_model_sharing_the_tokenizer_is_trained(teacher_folders: dict[str, Path], tmp_path: Path) -> None:
    tiny = tiny_model("causal", tokenizer=tiny_tokenizer(), seed=3)  # 2 layers, the teacher's vocabulary
    tiny.model.save_pretrained(tmp_path / "small")
    tiny.tokenizer.save_pretrained(tmp_path / "small")
    result = distill(recipe(teacher_folders["causal"], student={"model": str(tmp_path / "small")}), store=LineageStore(), progress=False, measure_models=False)
    assert result.details["student_parameters"] < result.details["teacher_parameters"]
    assert load_model(result.folder).model.config.num_hidden_layers == 2


def test_cli_json_reports_teacher_and_student(teacher_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import genlab.optimize.measure as measure_module
    from genlab.cli import app

    measured: list[str] = []

    def in_process(model: str, spec: Any, **_: Any) -> Any:  # the child's work, without the fresh process
        measured.append(model)
        return measure_module.measure_here(model, spec)

    monkeypatch.setattr(measure_module, "measure", in_process)
    outcome = CliRunner().invoke(app, [
        "optimize", "distill", "--model", str(teacher_folders["causal"]), "--student-layers", "2", "--data", "builtin",
        "--limit", "16", "--held-out", "4", "--steps", "2", "--batch-size", "4", "--eval-limit", "2", "--json",
        "evaluation.max_new_tokens=4", "evaluation.speed_prompts=1", "evaluation.speed_tokens=2",
    ])  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["method"] == "distill"
    assert measured == [str(teacher_folders["causal"]), report["artifact"]]
    assert report["details"]["layers_kept"] == {"model.layers": [0, 3]} and report["details"]["steps"] == 2
    assert report["result"]["parameters"] < report["original"]["parameters"]
    assert report["size_ratio"] > 1 and "rouge1" in report["result"]["quality"]
    assert report["details"]["eval_data"].endswith("validation.jsonl")  # the held-out rows


def test_cli_refuses_both_student_options(teacher_folders: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from genlab.cli import app

    outcome = CliRunner().invoke(app, [
        "optimize", "distill", "--model", str(teacher_folders["causal"]), "--student-layers", "2", "--student", "x",
    ])  # fmt: skip
    assert outcome.exit_code != 0
    assert "not both" in str(outcome.exception)


def test_the_shipped_recipe_is_valid() -> None:
    from genlab.config import load_recipe

    shipped = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "distill.yaml", DistillRecipe)
    assert shipped.student.layers == 15 and shipped.teacher == "smollm2-135m-instruct"
    assert shipped.data.validation_size == 50  # the held-out dialogues quality is measured on
