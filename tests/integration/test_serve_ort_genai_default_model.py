"""``--backend onnxruntime-genai`` on the default model (int8, its default) against genlab's fp32 engine, greedy.

Int8 weights change the model: the answers are not expected to equal fp32's token for token (the
agreement is printed for the record; ROUGE-1 beside fp32 is the bench's, ``bench/backends.py``). What
int8 does promise, and this asserts: every answer is text, stops at a stop sequence when asked,
counts its tokens exactly (the HF tokenizer's count of the prompt, one per generated token), ends
with ``length`` only at max_tokens, and four requests decoded together answer as each alone.
"""

from __future__ import annotations

import pytest

from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.load import load_model
from genlab.serving.backends.ort_genai_backend import OrtGenaiBackend

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"
NEW_TOKENS = 24
QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "How many legs does a spider have?",
    "Why is the sky blue?",
]


@pytest.fixture(scope="module")
def backend():
    served = OrtGenaiBackend(MODEL, max_batch=4, threads=2, model_id=MODEL)
    yield served
    served.close()


def test_int8_answers_beside_fp32(backend: OrtGenaiBackend) -> None:
    prompts = [backend.format_chat([{"role": "user", "content": q}]) for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=NEW_TOKENS)
    alone = [backend.submit(MODEL, p, settings, formatted=True).result(timeout=300) for p in prompts]
    handles = [backend.submit(MODEL, p, settings, formatted=True) for p in prompts]
    together = [h.result(timeout=300) for h in handles]
    assert [r.choices[0].token_ids for r in together] == [r.choices[0].token_ids for r in alone]

    loaded = load_model(MODEL)
    engine = GenerationEngine(loaded, batch_size=1)
    fp32 = [r.choices[0] for r in engine.generate(prompts, settings, preformatted=True)]
    same_first = [a.choices[0].token_ids[:8] == tuple(b.token_ids[:8]) for a, b in zip(alone, fp32)]
    print(f"\nint8 vs fp32: first 8 tokens equal on {sum(same_first)} of {len(prompts)}; "
          f"whole answers equal on {sum(a.text == b.text for a, b in zip(alone, fp32))}")  # fmt: skip
    for prompt, result in zip(prompts, alone):
        choice = result.choices[0]
        assert choice.text.strip(), f"an empty answer to {prompt!r}"
        assert result.prompt_tokens == backend.count_tokens(prompt, formatted=True)
        assert choice.completion_tokens == len(choice.token_ids) <= NEW_TOKENS
        assert (choice.finish_reason == "length") == (choice.completion_tokens == NEW_TOKENS)


def test_a_stop_sequence_cuts_the_answer(backend: OrtGenaiBackend) -> None:
    prompt = backend.format_chat([{"role": "user", "content": QUESTIONS[0]}])
    whole = backend.submit(MODEL, prompt, GenerationSettings(max_new_tokens=NEW_TOKENS), formatted=True).result(timeout=300).text
    words = whole.split()
    assert len(words) >= 3, whole
    stop = " " + words[2]
    cut = backend.submit(MODEL, prompt, GenerationSettings(max_new_tokens=NEW_TOKENS, stop=[stop]), formatted=True).result(timeout=300)
    assert cut.text == whole[: whole.find(stop)] and cut.finish_reason == "stop"
