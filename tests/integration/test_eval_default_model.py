"""The evaluation stage on the default model and real DialogSum data, as the issue's "done when" asks."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_eval_summaries_with_rouge_bleu_toxicity_and_compare(dialogsum_dev: Path) -> None:
    from rouge_score import rouge_scorer

    def evaluate(*extra: str) -> dict:
        result = run_cli(
            "eval", "--model", "smollm2-135m-instruct", "--data", str(dialogsum_dev), "--task", "summarize",
            "--metrics", "rouge,bleu,toxicity", "--limit", "6", "--max-new-tokens", "40", *extra, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    zero = evaluate()
    assert zero["n"] == 6
    metrics = zero["metrics"]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "toxicity_mean"):
        assert 0.0 <= metrics[key] <= 1.0, key
    rows = [json.loads(line) for line in Path(zero["predictions"]).read_text().splitlines()]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        rescored = sum(scorer.score(r["reference"], r["prediction"])[key].fmeasure for r in rows) / len(rows)
        assert metrics[key] == pytest.approx(rescored), key

    few = evaluate("--shots", "1")
    compared = run_cli("compare", zero["run_id"], few["run_id"], "--json")
    assert compared.returncode == 0, compared.stderr
    comparison = json.loads(compared.stdout)
    delta = (few["metrics"]["rouge1"] - zero["metrics"]["rouge1"]) * 100
    assert comparison["improvements"]["rouge1"][1] == pytest.approx(delta)
    assert Path(comparison["report"]).is_file()
