"""The CLI as a user meets it: `python -m genlab ...` in a subprocess, output and exit codes."""

import json

import pytest

from tests.conftest import run_cli


def test_estimate_json_has_the_course_figures_for_1b_fp32_training() -> None:
    result = run_cli("estimate", "--params", "1e9", "--dtype", "fp32", "--mode", "train", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    # Course week 1: 4 GB weights + 8 GB Adam + 4 GB gradients + 8 GB activations = 24 GB (~6x).
    assert figures["weights_gb"] == pytest.approx(4)
    assert figures["optimizer_gb"] == pytest.approx(8)
    assert figures["gradients_gb"] == pytest.approx(4)
    assert figures["activations_gb"] == pytest.approx(8)
    assert figures["train_total_gb"] == pytest.approx(24)
    assert figures["per_gpu_gb"] == pytest.approx(24)
    assert figures["chinchilla_tokens"] == pytest.approx(20e9)


def test_estimate_zero3_over_64_gpus_on_the_command_line() -> None:
    result = run_cli("estimate", "--params", "1e9", "--mode", "train", "--gpus", "64", "--zero", "3", "--json")
    figures = json.loads(result.stdout)
    # Weights, gradients and Adam states (16 GB) are sharded 64 ways; activations (8 GB) are not.
    assert figures["per_gpu_gb"] == pytest.approx(16 / 64 + 8)


def test_estimate_for_a_catalog_model_uses_its_architecture() -> None:
    result = run_cli("estimate", "--model", "qwen2.5-0.5b-instruct", "--mode", "lora", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["shape_known"] and figures["kv_cache_gb"] > 0
    assert 0 < figures["trainable_percent"] < 1


def test_estimate_table_for_people() -> None:
    result = run_cli("estimate", "--params", "7e9", "--dtype", "bf16")
    assert result.returncode == 0, result.stderr
    assert "14.00 GB" in result.stdout  # 7e9 params x 2 bytes


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--params", "-5"], ["params", "-5", "positive"]),
        (["--params", "1e9", "--dtype", "fp7"], ["dtype", "fp7", "fp32", "int4"]),
        (["--params", "1e9", "--mode", "teach"], ["mode", "teach", "infer", "qlora"]),
        (["--params", "1e9", "--mode", "train", "--dtype", "int4"], ["int4", "qlora"]),
        ([], ["--params", "--model"]),
    ],
)
def test_estimate_bad_input_is_one_sentence_and_exit_2(args: list[str], expected: list[str]) -> None:
    result = run_cli("estimate", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    for word in expected:
        assert word in message


def test_unknown_model_name_gives_closest_names() -> None:
    result = run_cli("models", "show", "flan-t5-bsae")
    assert result.returncode == 2
    assert "flan-t5-base" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_models_list_json_has_packs_with_measured_params() -> None:
    result = run_cli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    cards = {card["name"]: card for card in json.loads(result.stdout)}
    default = cards["smollm2-135m-instruct"]
    assert default["params"] == 134_515_008 and default["params_source"] == "measured"
    assert default["offline"] is True and default["family"] == "decoder-only"
    assert cards["all-minilm-l6-v2"]["params"] > 20_000_000
    assert cards["flan-t5-base"]["family"] == "encoder-decoder" and cards["flan-t5-base"]["objective"] == "span corruption"
    assert all({"name", "params"} <= set(card) for card in cards.values())


def test_models_show_json_of_a_hub_card() -> None:
    result = run_cli("models", "show", "bert-base-uncased", "--json")
    card = json.loads(result.stdout)
    assert card["family"] == "encoder-only" and card["objective"] == "MLM" and card["offline"] is False


def test_pull_of_a_hub_id_offline_fails_fast_and_is_recorded_failed() -> None:
    result = run_cli("models", "pull", "someone/not-cached-model")
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE" in result.stderr and "Traceback" not in result.stderr
    runs = json.loads(run_cli("runs", "list", "--json").stdout)
    assert runs[0]["kind"] == "pull" and runs[0]["status"] == "failed"
    assert "HF_HUB_OFFLINE" in runs[0]["error"]


def test_missing_model_folder_exit_2() -> None:
    result = run_cli("models", "pull", "./no/such/folder")
    assert result.returncode == 2 and "no such model folder" in result.stderr


def test_runs_show_unknown_id() -> None:
    result = run_cli("runs", "show", "does-not-exist")
    assert result.returncode == 2 and "no run with id" in result.stderr
