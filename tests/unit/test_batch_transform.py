"""`genlab batch` on a tiny random model: order, ids, resuming after Ctrl-C / kill -9 / a torn line, bad rows."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from genlab.errors import InvalidValueError
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.lineage import LineageStore
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model
from genlab.prompting.chat import format_chat
from genlab.serving.batch_input import DuplicateCustomIdError
from genlab.serving.batch_output import BatchOutputError
from genlab.serving.batch_transform import BatchConfig, run_batch
from tests.conftest import run_cli

ROWS = 22  # good rows; with batch_size 2 and 4 rows per write: 6 chunks, the last one short
MAX_TOKENS = 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal model saved as a folder, its attention scaled up so that each prompt gets its own
    answer (at the default init every prompt decodes to the same few tokens, and a row written
    under the wrong id would go unnoticed)."""
    loaded = tiny_model("causal", seed=7)
    with torch.no_grad():
        for name, weight in loaded.model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                weight.mul_(30)
    folder = tmp_path_factory.mktemp("tiny-batch-model")
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def input_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(ROWS):
        if i % 7 == 3:
            rows.append({"custom_id": f"chat-{i}", "messages": [{"role": "user", "content": f"Tell me about {i} cats."}]})
        elif i % 5 == 4:
            rows.append({"prompt": f"A row without an id, number {i}."})  # known by its line number
        else:
            rows.append({"custom_id": f"row-{i}", "prompt": f"#Person1#: Question {i}: what is {i * 3} plus {i}?"})
    rows[1]["max_tokens"] = 3  # a row's own setting wins
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def config(model_dir: Path, input: Path, output: Path, **changes: Any) -> BatchConfig:
    settings = {"batch_size": 2, "rows_per_write": 4, "max_tokens": MAX_TOKENS, **changes}
    return BatchConfig(model=str(model_dir), input=input, output=output, **settings)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def reference(model_dir: Path, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The input file and the output of an uninterrupted run."""
    source = write_jsonl(tmp_path / "input.jsonl", input_rows())
    summary = run_batch(config(model_dir, source, tmp_path / "reference.jsonl"), progress=False)
    assert summary.done == summary.generated == ROWS and summary.errors == 0 and summary.resumed == 0
    return source, read_jsonl(tmp_path / "reference.jsonl")


def invoke_cli(*args: str) -> Any:
    """The command in this process (a subprocess would spend seconds importing torch again)."""
    from typer.testing import CliRunner

    from genlab.cli import app

    return CliRunner().invoke(app, list(args))


class StopAfter:
    """An on_chunk hook that interrupts the run like Ctrl-C after ``chunks`` appends."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def __call__(self, chunks_done: int, rows_done: int) -> None:
        if chunks_done == self.chunks:
            raise KeyboardInterrupt


def test_output_rows_follow_the_input_with_their_ids(model_dir: Path, reference: Any) -> None:
    _, rows = reference
    given = input_rows()
    assert [r["line"] for r in rows] == list(range(1, ROWS + 1))
    assert [r["custom_id"] for r in rows] == [g.get("custom_id") for g in given]
    assert set(rows[0]) == {"custom_id", "line", "text", "finish_reason", "prompt_tokens", "completion_tokens"}
    assert rows[1]["completion_tokens"] <= 3 and all(r["completion_tokens"] <= MAX_TOKENS for r in rows)
    assert len({r["text"] for r in rows}) > ROWS // 2  # distinct answers: a row written under another id would show

    # Each row's answer is the engine's for that row alone (greedy), formatted as the row asks.
    loaded = load_model(str(model_dir))
    engine = GenerationEngine(loaded, batch_size=1)
    for row, given_row in zip(rows, given, strict=True):
        settings = GenerationSettings(max_new_tokens=given_row.get("max_tokens", MAX_TOKENS))
        if "messages" in given_row:
            (alone,) = engine.generate([format_chat(loaded.tokenizer, given_row["messages"])], settings, preformatted=True)
        else:
            (alone,) = engine.generate([given_row["prompt"]], settings, chat=True)
        assert (row["text"], row["prompt_tokens"]) == (alone.text, alone.prompt_tokens), row["line"]


def test_ctrl_c_then_rerun_gives_the_uninterrupted_rows(model_dir: Path, reference: Any, tmp_path: Path) -> None:
    source, expected = reference
    output = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(config(model_dir, source, output), progress=False, on_chunk=StopAfter(2))
    assert read_jsonl(output) == expected[:8]  # two chunks of four rows, written durably

    summary = run_batch(config(model_dir, source, output), progress=False)
    assert (summary.resumed, summary.generated, summary.done) == (8, ROWS - 8, ROWS)
    assert read_jsonl(output) == expected  # nothing duplicated, nothing missing, same answers

    again = run_batch(config(model_dir, source, output), progress=False)  # a finished batch stays as it is
    assert (again.resumed, again.generated) == (ROWS, 0) and read_jsonl(output) == expected


def test_a_torn_last_line_is_dropped_and_redone(model_dir: Path, reference: Any, tmp_path: Path) -> None:
    source, expected = reference
    output = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(config(model_dir, source, output), progress=False, on_chunk=StopAfter(1))
    # A crash inside the next append: two whole lines of the chunk made it to disk, the third is cut.
    lines = [json.dumps(r) + "\n" for r in expected[4:7]]
    with output.open("a", encoding="utf-8") as handle:
        handle.write(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2])

    summary = run_batch(config(model_dir, source, output), progress=False)
    assert (summary.resumed, summary.generated) == (6, ROWS - 6)
    assert read_jsonl(output) == expected  # re-chunked from row 7 on, same greedy answers


def test_a_killed_process_is_finished_by_the_cli(model_dir: Path, reference: Any, tmp_path: Path) -> None:
    source, expected = reference
    output = tmp_path / "out.jsonl"
    # kill -9 from inside the run, right after its third durable append (while it would go on generating).
    script = (
        "import os, signal, sys\n"
        "from genlab.serving.batch_transform import BatchConfig, run_batch\n"
        "def kill(chunks, rows):\n"
        "    if chunks == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "run_batch(BatchConfig(model=sys.argv[1], input=sys.argv[2], output=sys.argv[3], batch_size=2,\n"
        f"          rows_per_write=4, max_tokens={MAX_TOKENS}), progress=False, on_chunk=kill)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), str(source), str(output)], capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert read_jsonl(output) == expected[:12]

    finished = invoke_cli(
        "batch", str(source), str(output), "--model", str(model_dir), "--batch-size", "2", "--rows-per-write", "4",
        "--max-tokens", str(MAX_TOKENS), "--no-progress",
    )  # fmt: skip
    assert finished.exit_code == 0, finished.stderr
    assert f"{ROWS} done (12 from an earlier run), 0 errors" in finished.stdout
    assert read_jsonl(output) == expected


def test_bad_rows_go_to_the_errors_file_with_their_line_numbers(model_dir: Path, tmp_path: Path) -> None:
    rows = [
        {"custom_id": "a", "prompt": "Hello there."},
        "{this is not json",
        {"custom_id": "b"},  # neither prompt nor messages
        {"custom_id": "c", "prompt": "Hi", "max_tokens": 0},
        {"custom_id": "d", "prompt": "word " * 600},  # longer than the tiny model's 512-token window
        "",  # blank lines are skipped, not errors
        {"custom_id": "e", "messages": [{"role": "robot", "content": "beep"}]},
        {"custom_id": "f", "prompt": "Bye.", "stop": 3},
        {"custom_id": "g", "prompt": "Good night."},
    ]
    source = write_jsonl(tmp_path / "input.jsonl", rows)
    summary = run_batch(config(model_dir, source, tmp_path / "out.jsonl"), progress=False)
    assert (summary.done, summary.errors) == (2, 6)
    assert [r["custom_id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a", "g"]
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert summary.errors_file == tmp_path / "out.errors.jsonl"
    assert [e["line"] for e in errors] == [2, 3, 4, 5, 7, 8]
    assert errors[0]["raw"] == "{this is not json" and "not JSON" in errors[0]["error"]
    assert "exactly one of 'prompt'" in errors[1]["error"]
    assert "max_tokens=0" in errors[2]["error"]
    assert "context window of 512 tokens" in errors[3]["error"] and "max_tokens is 6" in errors[3]["error"]
    assert "messages[0]" in errors[4]["error"]
    assert "stop=3" in errors[5]["error"]

    rerun = run_batch(config(model_dir, source, tmp_path / "out.jsonl"), progress=False)
    assert rerun.resumed == 2 and len(read_jsonl(tmp_path / "out.errors.jsonl")) == 6  # rewritten, not appended


def test_cli_reports_bad_rows_and_the_summary(model_dir: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "input.jsonl", [{"prompt": "Hi"}, "[1, 2]", {"prompt": "Bye"}])
    result = invoke_cli("batch", str(source), str(tmp_path / "out.jsonl"), "--model", str(model_dir), "--max-tokens", "4")
    assert result.exit_code == 0, result.stderr
    assert "line 2: the line holds a JSON list" in result.stderr
    assert "2 done, 1 errors in" in result.stdout


def test_an_output_of_another_input_or_other_settings_is_refused(model_dir: Path, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "first.jsonl", input_rows()[:5])
    output = tmp_path / "out.jsonl"
    run_batch(config(model_dir, first, output), progress=False)
    before = output.read_bytes()

    second = write_jsonl(tmp_path / "second.jsonl", input_rows()[:6])
    with pytest.raises(BatchOutputError, match="belongs to a different input"):
        run_batch(config(model_dir, second, output), progress=False)
    with pytest.raises(BatchOutputError, match="max_tokens=6, not 9"):
        run_batch(config(model_dir, first, output, max_tokens=9), progress=False)
    assert output.read_bytes() == before

    result = run_cli("batch", str(second), str(output), "--model", str(model_dir), "--max-tokens", str(MAX_TOKENS))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "belongs to a different input" in result.stderr  # one line, no traceback

    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"something": "else"}\n')
    with pytest.raises(BatchOutputError, match="no foreign.jsonl.state.json"):
        run_batch(config(model_dir, first, foreign), progress=False)


def test_duplicate_custom_ids_name_their_lines(model_dir: Path, tmp_path: Path) -> None:
    rows = [{"custom_id": "x", "prompt": "a"}, {"custom_id": "y", "prompt": "b"}, {"custom_id": "x", "prompt": "c"}]
    source = write_jsonl(tmp_path / "input.jsonl", rows)
    with pytest.raises(DuplicateCustomIdError, match="'x' on lines 1, 3"):
        run_batch(config(model_dir, source, tmp_path / "out.jsonl"), progress=False)
    assert not (tmp_path / "out.jsonl").exists()


def test_the_run_is_recorded_in_lineage(model_dir: Path, reference: Any, tmp_path: Path) -> None:
    source, _ = reference
    summary = run_batch(config(model_dir, source, tmp_path / "out.jsonl"), progress=False)
    with LineageStore() as store:
        run = store.get_run(summary.run_id)
        inputs = {a.kind: a.path for a in store.artifacts_of(run.id, "input")}
        outputs = {a.kind: a.path for a in store.artifacts_of(run.id, "output")}
        metrics = store.metrics(run.id)
    assert run.status == "completed" and run.kind == "batch"
    assert inputs == {"dataset": str(source), "model": str(model_dir)}
    assert outputs == {"batch-output": str(tmp_path / "out.jsonl")}
    assert metrics["done"] == ROWS and metrics["errors"] == 0
    assert metrics["completion_tokens"] == summary.completion_tokens > 0


def test_sampled_rows_with_a_base_seed_are_reproducible(model_dir: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "input.jsonl", [{"prompt": f"Story {i}."} for i in range(4)])
    one = tmp_path / "one.jsonl"
    two = tmp_path / "two.jsonl"
    run_batch(config(model_dir, source, one, temperature=1.5, seed=3), progress=False)
    run_batch(config(model_dir, source, two, temperature=1.5, seed=3, batch_size=4), progress=False)
    greedy = tmp_path / "greedy.jsonl"
    run_batch(config(model_dir, source, greedy), progress=False)
    assert read_jsonl(one) == read_jsonl(two)
    assert [r["text"] for r in read_jsonl(one)] != [r["text"] for r in read_jsonl(greedy)]


def test_config_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="no such input file"):
        BatchConfig(input=tmp_path / "missing.jsonl", output=tmp_path / "out.jsonl")
    source = write_jsonl(tmp_path / "input.jsonl", [{"prompt": "a"}])
    with pytest.raises(InvalidValueError, match="cannot be the input"):
        BatchConfig(input=source, output=source)
    with pytest.raises(InvalidValueError, match="batch_size=0"):
        BatchConfig(input=source, output=tmp_path / "out.jsonl", batch_size=0)



def test_an_adapter_changes_the_answers_and_is_recorded(model_dir: Path, reference: Any, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from genlab.models.adapters import base_fingerprint, merge_adapter, save_adapter

    base = load_model(str(model_dir))
    fingerprint = base_fingerprint(base)
    torch.manual_seed(0)  # init_lora_weights=False: a random, non-zero delta
    peft_model = get_peft_model(base.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = save_adapter(peft_model, tmp_path / "lora", base=base, method="lora", run_id=None, fingerprint=fingerprint)

    source, expected = reference
    output = tmp_path / "out.jsonl"
    summary = run_batch(config(model_dir, source, output, adapter=str(adapter)), progress=False)
    rows = read_jsonl(output)
    assert [r["text"] for r in rows] != [r["text"] for r in expected]
    merged = merge_adapter(load_model(str(model_dir)), adapter)
    settings = GenerationSettings(max_new_tokens=MAX_TOKENS)
    (alone,) = GenerationEngine(merged).generate([input_rows()[0]["prompt"]], settings, chat=True)
    assert rows[0]["text"] == alone.text
    with LineageStore() as store:
        assert "adapter" in {a.kind for a in store.artifacts_of(summary.run_id, "input")}
    with pytest.raises(BatchOutputError, match="adapter="):
        run_batch(config(model_dir, source, output), progress=False)  # the same output without the adapter
