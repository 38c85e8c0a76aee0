"""`genlab serve` on the real default model and the MiniLM embedder, through the openai client."""

from __future__ import annotations

import openai
import pytest

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from tests.unit.test_serve_support import running_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    config = ServeConfig(model=MODEL, jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0)
    with running_server(create_app(config)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)


def test_chat_answers_the_question_and_streams_the_same_words(client) -> None:
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0)
    answer = reply.choices[0].message.content
    assert "Paris" in answer
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0, stream=True)
        if chunk.choices
    )
    assert streamed == answer
    assert reply.usage.prompt_tokens > 10 and reply.usage.completion_tokens >= 1


def test_minilm_embeddings_rank_a_paraphrase_above_an_unrelated_text(client) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL, "all-minilm-l6-v2"]
    texts = ["The parcel arrived damaged.", "My package was broken when it came.", "The museum opens at nine."]
    vectors = [item.embedding for item in client.embeddings.create(model="all-minilm-l6-v2", input=texts).data]
    assert all(len(v) == 384 for v in vectors)
    dot = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    assert dot[0] > dot[1] + 0.2
