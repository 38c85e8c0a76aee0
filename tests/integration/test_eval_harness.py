"""lm-eval inside genlab on the default model, offline: everyday-facts with and without a LoRA adapter,
the same accuracy as genlab's own runner, both runs in `genlab compare` with intervals, and the default
model judging the two runs in both orders. One model load (the judge is the same loaded model)."""

import copy
import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from genlab.evaluation.benchmarks import load_task, run_benchmark
from genlab.evaluation.compare import compare_runs
from genlab.evaluation.judge_run import judge_runs
from genlab.evaluation.run import evaluate_harness
from genlab.models.adapters import save_adapter
from genlab.models.fingerprint import base_fingerprint
from genlab.models.load import load_model

pytestmark = pytest.mark.integration
LIMIT = 8


@pytest.fixture(scope="module")
def default():
    return load_model("smollm2-135m-instruct")


def lora_on(loaded, folder: Path) -> Path:
    """A small random LoRA (r=4 on q_proj, v_proj) on a copy of the loaded model's weights."""
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(0)
    peft_model = get_peft_model(
        copy.deepcopy(loaded.model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(0.05)
    return save_adapter(peft_model, folder, base=loaded, method="lora", run_id=None, fingerprint=fingerprint)


def test_harness_on_the_default_model_with_and_without_an_adapter(default, tmp_path: Path) -> None:
    base = evaluate_harness(default, "everyday-facts", limit=LIMIT)
    ours = run_benchmark(load_task("everyday-facts"), default, limit=LIMIT)
    assert base.metrics["everyday-facts/acc"] == pytest.approx(ours.accuracy)
    assert base.metrics["everyday-facts/acc_norm"] == pytest.approx(ours.acc_norm)
    assert base.metrics["everyday-facts/acc"] >= 0.5  # the instruct model knows most everyday facts

    adapter = lora_on(default, tmp_path / "lora")
    tuned = evaluate_harness(default, "everyday-facts", adapter=str(adapter), limit=LIMIT)
    assert tuned.n == base.n == LIMIT

    def loglikelihoods(result) -> list[float]:
        lines = (Path(result.predictions).parent / "harness-samples.jsonl").read_text().splitlines()
        return [r[0] for line in lines for r in json.loads(line)["filtered_resps"]]

    # The adapter was applied: every choice's log-likelihood moved, a little.
    moved = [abs(a - b) for a, b in zip(loglikelihoods(base), loglikelihoods(tuned), strict=True)]
    assert min(moved) > 0 and max(moved) < 5

    comparison = compare_runs([base.run_id, tuned.run_id])
    assert comparison.values["everyday-facts/acc"] == [base.metrics["everyday-facts/acc"], tuned.metrics["everyday-facts/acc"]]
    assert all(bounds is not None for bounds in comparison.intervals["everyday-facts/acc"])
    assert comparison.paired["everyday-facts/acc"][1] is not None and Path(comparison.report).is_file()

    verdict = judge_runs(base.run_id, tuned.run_id, judge=default, limit=4)
    assert verdict.n == 4 and 0.0 <= verdict.metrics["order_agreement"] <= 1.0
    low, high = verdict.intervals["win_rate"]
    assert low <= verdict.metrics["win_rate"] <= high
