"""`genlab feedback import` and `genlab feedback collect` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.lineage import LineageStore
from genlab.models.tiny import tiny_model
from tests.conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "example-rankings.jsonl"


def run_cli_with_input(stdin: str, *args: str) -> subprocess.CompletedProcess:
    """Like ``run_cli``, with ``stdin`` piped in as a person's typed answers."""
    return subprocess.run(
        [sys.executable, "-m", "genlab", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
        check=False,
    )


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("tiny") / "causal"
    loaded = tiny_model("causal", seed=5)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return str(folder)


def test_import_json_summary_and_pairs_file(tmp_path: Path) -> None:
    output = tmp_path / "pairs.jsonl"
    result = run_cli("feedback", "import", str(EXAMPLE), "--output", str(output), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # The example file's counts, worked out by hand in test_feedback.py.
    assert summary == {
        "run_id": summary["run_id"], "output": str(output), "prompts": 7, "pairs": 18, "ties_skipped": 1,
        "unranked_skipped": 2,
    }  # fmt: skip
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 18 and all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    with LineageStore() as store:
        run = store.get_run(summary["run_id"])
    assert (run.kind, run.status) == ("feedback", "completed")


def test_import_of_a_malformed_file_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    rankings = tmp_path / "rankings.jsonl"
    good = {"prompt": "p", "completions": ["x", "y"], "ranks": [1, 2]}
    bad = {"prompt": "p", "completions": ["x", "y"], "ranks": [1, 0]}
    rankings.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    output = tmp_path / "pairs.jsonl"
    result = run_cli("feedback", "import", str(rankings), "--output", str(output))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2" in lines[0] and "rank 0" in lines[0]
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_collect_ranks_piped_answers_and_import_reads_them(tiny_folder: str, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Summarise: the parcel arrived broken.\nSay hello.\nName a colour.\n")
    rankings = tmp_path / "rankings.jsonl"
    # First prompt: a tie at the top; second: skipped; third: the person stops.
    result = run_cli_with_input(
        "2=1 3\ns\nq\n",
        "feedback", "collect", "--model", tiny_folder, "--prompts", str(prompts), "-k", "3",
        "--output", str(rankings), "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in rankings.read_text(encoding="utf-8").splitlines()]
    assert row["prompt"] == "Summarise: the parcel arrived broken." and row["ranks"] == [1, 1, 3]
    assert len(set(row["completions"])) == 3  # sampled with a seed, so the three differ
    assert "[3] " + row["completions"][2] in result.stdout  # shown numbered to the person

    pairs = run_cli("feedback", "import", str(rankings), "--output", str(tmp_path / "pairs.jsonl"), "--json")
    assert pairs.returncode == 0, pairs.stderr
    assert {k: json.loads(pairs.stdout)[k] for k in ("prompts", "pairs", "ties_skipped")} == {
        "prompts": 1, "pairs": 2, "ties_skipped": 1,
    }  # fmt: skip


def test_collect_with_greedy_decoding_is_a_user_error(tiny_folder: str, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hello.\n")
    result = run_cli_with_input(
        "", "feedback", "collect", "--model", tiny_folder, "--prompts", str(prompts), "--temperature", "0"
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "temperature=0 is not allowed" in result.stderr
