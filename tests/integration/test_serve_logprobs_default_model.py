"""Log-probabilities, echo and token-id inputs on the real default model and the MiniLM embedder."""

from __future__ import annotations

import math

import openai
import pytest

from genlab.apps.providers import get_embedder
from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from tests.unit.test_serve_support import running_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    config = ServeConfig(model=MODEL, jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0, record_lineage=False)
    with running_server(create_app(config)) as url:
        yield url, openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)


def test_the_capital_of_france_is_a_likely_token(served) -> None:
    _, client = served
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0, logprobs=True, top_logprobs=5)
    content = reply.choices[0].logprobs.content
    assert "Paris" in reply.choices[0].message.content
    paris = next(entry for entry in content if "Paris" in entry.token)
    assert math.exp(paris.logprob) > 0.5  # the instruct model is sure of it
    assert paris.top_logprobs[0].token == paris.token


def test_echo_scores_a_likely_sentence_above_a_scrambled_one(served) -> None:
    _, client = served

    def score(text: str) -> float:
        reply = client.completions.create(model=MODEL, prompt=text, max_tokens=0, echo=True, logprobs=0)
        return sum(value for value in reply.choices[0].logprobs.token_logprobs if value is not None)

    assert score("The cat sat on the mat.") > score("Mat the on sat cat the.") + 5


def test_embeddings_of_token_ids_equal_those_of_their_text(served) -> None:
    _, client = served
    tokenizer = get_embedder(EMBEDDER).model.tokenizer  # the embedder's own tokenizer: ids are in its vocabulary
    text = "The parcel arrived damaged."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    by_text = client.embeddings.create(model=EMBEDDER, input=[text]).data[0].embedding
    by_ids = client.embeddings.create(model=EMBEDDER, input=[ids]).data[0].embedding
    assert max(abs(a - b) for a, b in zip(by_text, by_ids, strict=True)) < 1e-5
