"""`genlab generate`, `genlab chat` and `genlab prompt compare` on a tiny model folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genlab.models.tiny import save_tiny_model
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=5))


def generate(folder: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli("generate", "--model", folder, *args)


def test_generate_json_shape_and_greedy_repeatability(tiny_folder: str) -> None:
    first = generate(tiny_folder, "--prompt", "Hello there", "--max-new-tokens", "6", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert set(out) >= {"text", "tokens", "finish_reason", "settings"}
    assert 0 < out["tokens"] <= 6 and out["finish_reason"] in {"stop", "length"}
    assert out["settings"]["max_new_tokens"] == 6 and out["settings"]["temperature"] == 0.0
    again = json.loads(generate(tiny_folder, "--prompt", "Hello there", "--max-new-tokens", "6", "--json").stdout)
    assert again["text"] == out["text"]


def test_seeded_sampling_is_reproducible_across_processes(tiny_folder: str) -> None:
    def sample(seed: str) -> str:
        result = generate(tiny_folder, "--prompt", "Hi", "--temperature", "1.5", "--seed", seed, "--max-new-tokens", "10", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["text"]

    assert sample("3") == sample("3")
    assert sample("3") != sample("4")


def test_prompt_from_file_and_streaming(tiny_folder: str, tmp_path: Path) -> None:
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Summarise: the parcel arrived broken.")
    streamed = generate(tiny_folder, "--file", str(prompt_file), "--max-new-tokens", "8", "--stream")
    whole = generate(tiny_folder, "--file", str(prompt_file), "--max-new-tokens", "8")
    assert streamed.returncode == 0 and whole.returncode == 0, streamed.stderr + whole.stderr
    assert streamed.stdout.strip() == whole.stdout.strip()


def test_prompt_longer_than_context_is_one_sentence(tiny_folder: str) -> None:
    result = generate(tiny_folder, "--prompt", "word " * 700, "--max-new-tokens", "8")
    assert result.returncode == 2
    assert "context window of 512 tokens" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--temperature", "-1"], ["temperature", "-1.0"]),
        (["--top-p", "0"], ["top_p", "0.0"]),
        (["--num-return-sequences", "2"], ["needs sampling"]),
        ([], ["--prompt", "--file"]),
    ],
)
def test_bad_generation_flags(tiny_folder: str, flags: list[str], words: list[str]) -> None:
    args = flags if not flags else ["--prompt", "hi", *flags]
    result = generate(tiny_folder, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_chat_reads_turns_until_exit(tiny_folder: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genlab", "chat", "--model", tiny_folder, "--max-new-tokens", "5"],
        input="Hello!\n\nHow are you?\n/reset\nAnd now?\n/exit\n/reset\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("history cleared") == 1  # the /reset after /exit is never read


def test_chat_session_keeps_history_within_the_window() -> None:
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.generation.chat_session import ChatSession
    from genlab.models.tiny import tiny_model

    session = ChatSession(GenerationEngine(tiny_model()), GenerationSettings(max_new_tokens=4), system="Be brief.")
    "".join(session.send("Hello!"))
    "".join(session.send("How are you?"))
    assert [m["role"] for m in session.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert session.messages[3]["content"] == "How are you?"
    # A message that fills most of the window pushes the oldest turn out, never the system message.
    long_message = "word " * 120
    "".join(session.send(long_message))
    "".join(session.send(long_message))
    roles = [m["role"] for m in session.messages]
    assert roles[0] == "system" and session.messages[-2]["content"] == long_message
    assert "Hello!" not in [m["content"] for m in session.messages]
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_prompt_compare_json_and_lineage(tiny_folder: str, tmp_path: Path) -> None:
    data = tmp_path / "short.jsonl"
    rows = [{"dialogue": f"#Person1#: I lost key number {i}. #Person2#: Here it is.", "summary": f"Key {i} found."} for i in range(6)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli(
        "prompt", "compare", "--model", tiny_folder, "--data", str(data), "--shots", "0,1", "--limit", "3",
        "--max-new-tokens", "6", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert [r["shots"] for r in comparison["results"]] == [0, 1]
    zero, one = comparison["results"]
    assert one["dropped_examples"] == 0
    assert one["mean_prompt_tokens"] > zero["mean_prompt_tokens"]  # one solved example more in each prompt
    for r in comparison["results"]:
        assert 0.0 <= r["rouge1"] <= 1.0 and len(r["samples"]) == 3
    run = json.loads(run_cli("runs", "show", comparison["run_id"], "--json").stdout)
    assert run["status"] == "completed" and "rouge1@1shot" in run["metrics"]
    kinds = {a["kind"] for a in run["outputs"]}
    assert kinds == {"predictions", "comparison"}
    predictions = Path(next(a["path"] for a in run["outputs"] if a["kind"] == "predictions")).read_text().splitlines()
    assert len(predictions) == 6  # 3 examples x 2 shot counts
    assert all(json.loads(line)["id"] not in json.loads(line)["examples"] for line in predictions)


def test_prompt_compare_bad_shots() -> None:
    result = run_cli("prompt", "compare", "--shots", "one,two")
    assert result.returncode == 2 and "shots='one,two'" in result.stderr
