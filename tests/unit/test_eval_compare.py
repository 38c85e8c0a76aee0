"""`genlab eval` and `genlab compare` on a tiny model folder: predictions, lineage, improvements."""

import json
from pathlib import Path

import pytest

from genlab.models.tiny import save_tiny_model
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=2))


@pytest.fixture
def short_data(tmp_path: Path) -> str:
    rows = [
        {"dialogue": f"#Person1#: Where is parcel {i}? #Person2#: It left the depot today.", "summary": f"Parcel {i} is on its way."}
        for i in range(8)
    ]
    path = tmp_path / "short.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def evaluate(*args: str) -> dict:
    result = run_cli("eval", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_eval_keeps_predictions_that_reproduce_the_scores(tiny_folder: str, short_data: str) -> None:
    from rouge_score import rouge_scorer

    out = evaluate("--model", tiny_folder, "--data", short_data, "--limit", "5", "--max-new-tokens", "8")
    assert out["n"] == 5 and set(out["metrics"]) >= {"rouge1", "rouge2", "rougeL", "rougeLsum", "tokens_per_second"}
    rows = [json.loads(line) for line in Path(out["predictions"]).read_text().splitlines()]
    assert len(rows) == 5 and all({"input", "reference", "prediction"} <= set(r) for r in rows)
    # Re-scored with rouge-score directly (stemming on, mean of F-measures) gives the recorded figure.
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    rescored = sum(scorer.score(r["reference"], r["prediction"])["rouge1"].fmeasure for r in rows) / len(rows)
    assert out["metrics"]["rouge1"] == pytest.approx(rescored)
    run = json.loads(run_cli("runs", "show", out["run_id"], "--json").stdout)
    assert run["status"] == "completed" and run["metrics"]["rouge1"] == pytest.approx(out["metrics"]["rouge1"])
    assert {a["kind"] for a in run["inputs"]} == {"dataset", "model"}


def test_compare_reports_percentage_point_improvements(tiny_folder: str, short_data: str) -> None:
    zero = evaluate("--model", tiny_folder, "--data", short_data, "--limit", "4", "--max-new-tokens", "8")
    few = evaluate("--model", tiny_folder, "--data", short_data, "--limit", "4", "--shots", "2", "--max-new-tokens", "8")
    result = run_cli("compare", zero["run_id"], few["run_id"], "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    for metric in ("rouge1", "rougeL"):
        base, other = comparison["values"][metric]
        assert comparison["improvements"][metric] == [pytest.approx(0.0), pytest.approx((other - base) * 100)]
    seconds = comparison["values"]["seconds"]
    assert comparison["improvements"]["seconds"][1] == pytest.approx(seconds[1] - seconds[0])  # not a score: plain
    assert len(comparison["samples"]) == 4 and len(comparison["samples"][0]["predictions"]) == 2
    report = Path(comparison["report"]).read_text()
    assert "<table>" in report and "data:image/png;base64," in report and zero["run_id"] in report
    shown = json.loads(run_cli("runs", "show", comparison["run_id"], "--json").stdout)
    assert shown["kind"] == "compare" and shown["outputs"][0]["kind"] == "report"
    table = run_cli("compare", zero["run_id"], few["run_id"])
    assert table.returncode == 0 and " pp)" in table.stdout


def test_eval_with_an_adapter_changes_the_model_and_records_it(tiny_folder: str, short_data: str, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from genlab.models.load import load_model

    torch.manual_seed(0)
    base = load_model(tiny_folder)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = tmp_path / "adapter"
    get_peft_model(base.model, config).save_pretrained(adapter_dir)

    plain = evaluate("--model", tiny_folder, "--data", short_data, "--limit", "3", "--max-new-tokens", "8")
    adapted = evaluate("--model", tiny_folder, "--adapter", str(adapter_dir), "--data", short_data, "--limit", "3", "--max-new-tokens", "8")
    read = lambda out: [json.loads(x)["prediction"] for x in Path(out["predictions"]).read_text().splitlines()]  # noqa: E731
    assert read(plain) != read(adapted)
    run = json.loads(run_cli("runs", "show", adapted["run_id"], "--json").stdout)
    assert "adapter" in {a["kind"] for a in run["inputs"]}


def test_eval_bad_inputs_are_one_sentence(tiny_folder: str, tmp_path: Path) -> None:
    bad_metric = run_cli("eval", "--model", tiny_folder, "--metrics", "rouge,bleurt")
    assert bad_metric.returncode == 2 and "bleurt" in bad_metric.stderr and "rouge" in bad_metric.stderr
    not_an_adapter = run_cli("eval", "--model", tiny_folder, "--adapter", str(tmp_path), "--limit", "1")
    assert not_an_adapter.returncode == 2 and "not a peft adapter folder" in not_an_adapter.stderr
    one_run = run_cli("compare", "eval-nothing")
    assert one_run.returncode == 2 and "at least two run ids" in one_run.stderr


def test_eval_multiple_choice_runs_the_builtin_benchmark(tiny_folder: str) -> None:
    out = evaluate("--model", tiny_folder, "--data", "everyday-facts", "--task", "multiple-choice", "--limit", "6")
    assert out["n"] == 6
    assert {"accuracy", "acc_norm", "ece", "robustness_typos", "robustness_lowercase"} <= set(out["metrics"])
    rows = [json.loads(line) for line in Path(out["predictions"]).read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:  # the predictions format of every eval: input, reference, prediction
        assert row["reference"] == row["choices"][row["answer"]]
        assert row["prediction"] == row["choices"][row["predicted"]]
        assert row["correct"] == (row["predicted"] == row["answer"])
        assert sum(row["probabilities"]) == pytest.approx(1.0)
    assert out["metrics"]["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 6)
    run = json.loads(run_cli("runs", "show", out["run_id"], "--json").stdout)
    assert {a["kind"] for a in run["inputs"]} == {"dataset", "model"}


@pytest.mark.parametrize(
    ("metric", "score"),
    [("rouge1", True), ("bleu", True), ("accuracy", True), ("ece", True), ("toxicity_mean", True),
     ("bleu_length_ratio", False), ("bleu_brevity_penalty", False), ("seconds", False), ("tokens_per_second", False)],
)  # fmt: skip
def test_only_zero_to_one_scores_are_compared_in_percentage_points(metric: str, score: bool) -> None:
    from genlab.evaluation.compare import is_score

    assert is_score(metric) is score
