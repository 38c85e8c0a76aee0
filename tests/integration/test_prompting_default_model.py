"""The prompt stage on the real default model and real DialogSum dialogues."""

import json

import pytest

from genlab.data import load_dialogsum
from genlab.generation import GenerationEngine, GenerationSettings
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine():
    from genlab.models import load_model

    return GenerationEngine(load_model("smollm2-135m-instruct"), batch_size=4)


def test_greedy_output_is_identical_across_batch_sizes_and_runs(engine, dialogsum_dev) -> None:
    dialogues = [e.input for e in load_dialogsum(path=dialogsum_dev, limit=4)]
    prompts = [f"Summarize the following conversation in one sentence.\n\n{d}\n\nSummary:" for d in dialogues]
    settings = GenerationSettings(max_new_tokens=24)
    batched = engine.generate(prompts, settings, chat=True)
    one_by_one = GenerationEngine(engine.loaded, batch_size=1).generate(prompts, settings, chat=True)
    again = engine.generate(prompts, settings, chat=True)
    texts = [c.text for c in batched]
    assert texts == [c.text for c in one_by_one] == [c.text for c in again]
    assert all(len(t.split()) >= 3 for t in texts)


def test_seeded_sampling_is_reproducible(engine) -> None:
    settings = GenerationSettings(max_new_tokens=16, temperature=0.8, top_p=0.9, seed=1234)
    prompt = "Write one sentence about a rainy day."
    first = engine.generate([prompt], settings, chat=True)[0].text
    second = engine.generate([prompt, "Name a colour."], settings, chat=True)[0].text
    assert first == second


def test_prompt_compare_on_dialogsum(dialogsum_dev) -> None:
    result = run_cli(
        "prompt", "compare", "--data", str(dialogsum_dev), "--shots", "0,1", "--limit", "3",
        "--max-new-tokens", "32", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    zero, one = comparison["results"]
    assert comparison["model"] == "smollm2-135m-instruct" and comparison["limit"] == 3
    assert zero["dropped_examples"] == one["dropped_examples"] == 0
    assert one["mean_prompt_tokens"] > zero["mean_prompt_tokens"] + 50  # a whole dialogue and summary more
    for r in (zero, one):
        assert 0.0 <= r["rouge2"] <= r["rouge1"] <= 1.0
        assert all(s["prediction"] for s in r["samples"])


def test_prompt_longer_than_the_context_window_is_refused() -> None:
    result = run_cli("generate", "--prompt", "word " * 9000, "--max-new-tokens", "16")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "context window of 8192 tokens" in message and len(message.splitlines()) == 1
