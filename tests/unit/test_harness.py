"""lm-evaluation-harness inside genlab, on a tiny random model: the builtin task scored by lm-eval and by
genlab's own runner gives the same answers, registry tasks are refused offline in one sentence, and a
local task YAML reads its data file from its own folder."""

import json
from pathlib import Path

import pytest

from genlab.evaluation.benchmarks import load_task, run_benchmark
from genlab.evaluation.compare import compare_runs
from genlab.evaluation.harness import HarnessError, run_harness, task_specs
from genlab.evaluation.run import evaluate_harness
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model

LIMIT = 8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_model(str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=2)))


def test_harness_and_genlab_runner_agree_on_the_builtin_task(tiny) -> None:
    ours = run_benchmark(load_task("everyday-facts"), tiny, limit=LIMIT)
    result = evaluate_harness(tiny, "everyday-facts", limit=LIMIT)
    assert result.n == LIMIT
    assert result.metrics["everyday-facts/acc"] == pytest.approx(ours.accuracy)
    assert result.metrics["everyday-facts/acc_norm"] == pytest.approx(ours.acc_norm)
    assert result.metrics["everyday-facts/acc_stderr"] > 0  # lm-eval's own stderr is kept
    rows = [json.loads(line) for line in Path(result.predictions).read_text().splitlines()]
    # Question by question, the same choice is predicted.
    assert [r["prediction"] for r in rows] == [row["choices"][row["predicted"]] for row in ours.rows]
    low, high = result.intervals["everyday-facts/acc"]
    assert low <= result.metrics["everyday-facts/acc"] <= high
    # The run lands in compare, with lm-eval's accuracy compared in points and its samples kept.
    comparison = compare_runs([result.run_id, result.run_id], report=False)
    assert comparison.paired["everyday-facts/acc"][1]["verdict"] == "not distinguishable from noise"
    samples = (Path(result.predictions).parent / "harness-samples.jsonl").read_text().splitlines()
    assert len(samples) == LIMIT and json.loads(samples[0])["task"] == "everyday-facts"


def test_registry_task_offline_points_to_harness_include() -> None:
    with pytest.raises(HarnessError, match="--harness-include") as error:
        task_specs(["arc_easy"])
    assert "\n" not in str(error.value) and "hub" in str(error.value)


def test_a_local_task_reads_its_data_next_to_its_yaml(tiny, tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "yes-no.jsonl").write_text(
        "".join(json.dumps({"q": f"Is {n} even?", "a": n % 2}) + "\n" for n in range(4))
    )
    (folder / "yes-no.yaml").write_text(
        "task: yes-no\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: yes-no.jsonl\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['yes', 'no']\n"
        "doc_to_target: a\nmetric_list:\n  - metric: acc\n"
    )
    outcome = run_harness(tiny, ["yes-no"], include=[folder])
    assert len(outcome.rows) == 4 and 0.0 <= outcome.metrics["yes-no/acc"] <= 1.0
    with pytest.raises(HarnessError, match="not a folder"):
        task_specs(["yes-no"], include=[tmp_path / "missing"])
