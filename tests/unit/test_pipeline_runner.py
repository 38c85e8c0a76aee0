"""The lifecycle runner on a tiny random model: lineage per step, reuse by cache key, failure and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genlab.errors import GenlabError
from genlab.lineage import LineageStore
from genlab.pipeline import LifecycleStepError, run_lifecycle
from genlab.pipeline.recipe import validate_lifecycle_recipe
from genlab.pipeline.workspace import Workspace, cache_key
from tests.unit.training_support import CrashAt


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genlab.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-causal"))


def tiny_recipe(model: Path, **changes: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "tiny-life",
        "scope": {"use_case": "a test", "metric": "rouge1", "target": 0.5},
        "data": {"path": "builtin", "held_out": 6, "limit": 30},
        "select": {"model": str(model)},
        "prompt": {"shots": [0, 1], "max_new_tokens": 6},
        "adapt": {"lora": {"method": "lora", "lora": {"r": 4, "alpha": 8}, "data": {"validation_size": 4},
                           "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "eval_every": 2,
                                        "save_every": 2, "log_every": 1}}},
        "evaluate": {"metrics": ["rouge"], "max_new_tokens": 6},
        "optimise": {"measure": False},
        "deploy": {"port": 8123},
    }  # fmt: skip
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = {**(raw.get(section) or {}), name: value}
        else:
            raw[key] = value
    return validate_lifecycle_recipe(raw, None)


def statuses(result: Any) -> dict[str, str]:
    return {step.step: step.status for step in result.steps}


def step_runs(store: LineageStore) -> list[Any]:
    return [run for run in store.list_runs(limit=500) if run.kind.startswith("lifecycle.")]


def test_cache_key_depends_on_settings_and_input_content_only() -> None:
    key = cache_key("adapt.lora", {"a": 1, "b": [1, 2]}, {"train": "h1", "model": "h2"})
    assert key == cache_key("adapt.lora", {"b": [1, 2], "a": 1}, {"model": "h2", "train": "h1"})  # order is irrelevant
    assert key != cache_key("adapt.lora", {"a": 2, "b": [1, 2]}, {"train": "h1", "model": "h2"})
    assert key != cache_key("adapt.lora", {"a": 1, "b": [1, 2]}, {"train": "h3", "model": "h2"})
    assert key != cache_key("adapt.full", {"a": 1, "b": [1, 2]}, {"train": "h1", "model": "h2"})


def test_every_step_is_a_lineage_run_and_a_rerun_reuses_them_all(tiny_folder: Path) -> None:
    recipe = tiny_recipe(tiny_folder)
    first = run_lifecycle(recipe, write_html=False)
    assert statuses(first) == dict.fromkeys(["scope", "select", "prompt", "adapt.lora", "evaluate", "optimise", "deploy"], "ran")
    with LineageStore() as store:
        lifecycle = store.get_run(first.run_id)
        assert lifecycle.kind == "lifecycle" and lifecycle.status == "completed"
        runs = {run.config["step"]: run for run in step_runs(store)}
        assert all(run.status == "completed" and run.config["lifecycle"] == first.run_id for run in runs.values())
        adapt_inputs = {a.kind for a in store.artifacts_of(runs["adapt.lora"].id, "input")}
        adapt_outputs = store.artifacts_of(runs["adapt.lora"].id, "output")
        assert adapt_inputs == {"dataset", "model"} and [a.kind for a in adapt_outputs] == ["adapter"]
        # the adapter the adapt step wrote is what evaluate and optimise read
        assert adapt_outputs[0].id in {a.id for a in store.artifacts_of(runs["evaluate"].id, "input")}
        finetune_run = first.step("adapt.lora").state["sub_runs"]["finetune"]
        assert store.get_run(finetune_run).kind == "finetune"
        assert store.metric_history(finetune_run, "train_loss")  # the curve the report draws
        count = len(step_runs(store))

    evaluate = first.step("evaluate").state["summary"]
    assert set(evaluate["candidates"]) == {"base", "lora"} and evaluate["best"] in ("base", "lora")
    assert evaluate["target_met"] == (evaluate["best_score"] >= 0.5)
    serve = json.loads(Path(first.step("deploy").state["outputs"]["serve"]["path"]).read_text())
    assert serve["model"] == first.step("optimise").state["outputs"]["model"]["path"]
    assert serve["command"].startswith("genlab serve --model ") and serve["command"].endswith("--port 8123")

    second = run_lifecycle(recipe, write_html=False)
    assert set(statuses(second).values()) == {"reused"}
    assert second.run_id != first.run_id
    assert [s.run_id for s in second.steps] == [s.run_id for s in first.steps]
    with LineageStore() as store:
        assert len(step_runs(store)) == count  # nothing ran again
        assert store.get_run(second.run_id).status == "completed"


def test_a_changed_setting_reruns_its_step_and_what_depends_on_it(tiny_folder: Path) -> None:
    first = run_lifecycle(tiny_recipe(tiny_folder), write_html=False)
    changed = run_lifecycle(tiny_recipe(tiny_folder, deploy__port=9000), write_html=False)
    assert statuses(changed) == {**dict.fromkeys(statuses(first), "reused"), "deploy": "ran"}
    retrained = run_lifecycle(
        tiny_recipe(tiny_folder, deploy__port=9000, adapt={"lora": {"method": "lora", "lora": {"r": 2, "alpha": 4},
                    "data": {"validation_size": 4}, "training": {"max_steps": 2, "batch_size": 4}}}),
        write_html=False,
    )  # fmt: skip
    ran = {name for name, status in statuses(retrained).items() if status == "ran"}
    # select estimates the planned LoRA's memory, so a new rank re-estimates; the data and the baseline stay
    assert {"select", "adapt.lora", "evaluate"} <= ran and {"scope", "prompt"}.isdisjoint(ran)


def test_changed_data_or_a_removed_output_reruns_the_step(tiny_folder: Path, tmp_path: Path) -> None:
    from genlab.data.builtin import builtin_dialogues

    data = tmp_path / "dialogues.jsonl"
    rows = builtin_dialogues()[:20]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tiny_recipe(tiny_folder, data={"path": str(data), "held_out": 5}, prompt=None, evaluate=None,
                         optimise=None, deploy=None)  # fmt: skip
    first = run_lifecycle(recipe, write_html=False)
    rows[3] = {**rows[3], "summary": "A different reference summary."}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    after_edit = run_lifecycle(recipe, write_html=False)
    assert statuses(after_edit) == {"scope": "ran", "select": "reused", "adapt.lora": "ran"}
    adapter = Path(after_edit.step("adapt.lora").state["outputs"]["output"]["path"])
    assert adapter != Path(first.step("adapt.lora").state["outputs"]["output"]["path"])
    import shutil

    shutil.rmtree(adapter)
    assert statuses(run_lifecycle(recipe, write_html=False))["adapt.lora"] == "ran"


def test_a_failing_step_marks_its_run_failed_stops_and_a_rerun_resumes_inside_training(tiny_folder: Path) -> None:
    recipe = tiny_recipe(tiny_folder)
    with pytest.raises(LifecycleStepError) as caught:
        run_lifecycle(recipe, trainer_callbacks=[CrashAt(3)], write_html=False)
    message = str(caught.value)
    assert message.startswith("step adapt.lora failed (run lifecycle.adapt-") and "RuntimeError: simulated crash" in message
    assert "\n" not in message and caught.value.exit_code == 1
    with LineageStore() as store:
        failed = [run for run in step_runs(store) if run.config["step"] == "adapt.lora"]
        assert [run.status for run in failed] == ["failed"] and "simulated crash" in failed[0].error
        lifecycle = store.list_runs(kind="lifecycle")[0]
        assert lifecycle.status == "failed" and "step adapt.lora failed" in lifecycle.error
        manifest = next(a for a in store.artifacts_of(lifecycle.id, "output") if a.kind == "lifecycle-manifest")
        steps = {s["step"]: s["status"] for s in json.loads(Path(manifest.path).read_text())["steps"]}
        assert steps == {"scope": "ran", "select": "ran", "prompt": "ran", "adapt.lora": "failed", "evaluate": "not run",
                         "optimise": "not run", "deploy": "not run"}  # fmt: skip
        assert not any(run.kind == "eval" for run in store.list_runs(limit=500))

    resumed = run_lifecycle(recipe, write_html=False)
    assert statuses(resumed) == {"scope": "reused", "select": "reused", "prompt": "reused", "adapt.lora": "ran",
                                 "evaluate": "ran", "optimise": "ran", "deploy": "ran"}  # fmt: skip
    adapt = resumed.step("adapt.lora").state
    assert adapt["summary"]["resumed"] is True
    with LineageStore() as store:
        finetune = store.get_run(adapt["sub_runs"]["finetune"])
        assert finetune.config["resume_from"].endswith("checkpoint-2")  # the last checkpoint before the crash


def test_checkpoints_left_by_other_settings_are_not_resumed(tiny_folder: Path) -> None:
    with pytest.raises(LifecycleStepError):
        run_lifecycle(tiny_recipe(tiny_folder), trainer_callbacks=[CrashAt(3)], write_html=False)
    other = tiny_recipe(tiny_folder, adapt={"lora": {"method": "lora", "lora": {"r": 2, "alpha": 4},
                        "data": {"validation_size": 4}, "training": {"max_steps": 2, "batch_size": 4}}})  # fmt: skip
    result = run_lifecycle(other, write_html=False)
    assert result.step("adapt.lora").state["summary"]["resumed"] is False


def test_a_user_error_in_a_step_keeps_its_sentence_and_exit_code(tiny_folder: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(tiny_folder, data={"path": str(tmp_path / "missing.jsonl")})
    with pytest.raises(LifecycleStepError) as caught:
        run_lifecycle(recipe, write_html=False)
    assert str(caught.value).startswith("step scope failed") and "missing.jsonl" in str(caught.value)
    assert caught.value.exit_code == GenlabError.exit_code


def test_one_recipe_cannot_be_run_twice_at_once() -> None:
    workspace = Workspace("busy")
    with workspace.locked():
        with pytest.raises(GenlabError, match="is being run by pid"):
            with Workspace("busy").locked():
                pass
    with workspace.locked():  # released: free again
        pass
