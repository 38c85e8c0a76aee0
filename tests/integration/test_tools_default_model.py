"""Tool calls and structured answers from the real default model (SmolLM2-135M-Instruct) through `genlab serve`.

Its chat template does not render tools, so the generic tool prompt is what it reads; a forced call is
constrained to the function's schema, and the model fills in the arguments from the question. After
the tool result, a 135M model tends to restate the result (often in the ``<tool_response>`` form it
just read) rather than phrase an answer: the test asks only that the answer carries the result's facts.
"""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from tests.unit.test_serve_support import running_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "the city name"}},
                       "required": ["city"]},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    config = ServeConfig(model=MODEL, jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0)
    with running_server(create_app(config)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)


def test_the_default_model_calls_the_weather_tool_for_the_city_asked_and_answers_with_the_result(client) -> None:
    question = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=question, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, max_tokens=60,
        temperature=0,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message
    call = choice.message.tool_calls[0]
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and "paris" in arguments["city"].lower()  # a sensible call
    history = [
        *question,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Paris", "temperature_c": 18, "sky": "sunny"})},
    ]
    final = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], max_tokens=60, temperature=0)
    answer = final.choices[0].message.content or ""
    assert final.choices[0].finish_reason in ("stop", "length") and answer.strip()
    assert final.choices[0].message.tool_calls is None
    assert "18" in answer or "sunny" in answer.lower()  # the facts of the result, which only the tool message held


class Capital(BaseModel):
    country: str
    capital: str


def test_the_default_model_fills_a_pydantic_schema_sensibly(client) -> None:
    reply = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France? Give the country and its capital."}],
        response_format=Capital, max_tokens=40, temperature=0,
    )  # fmt: skip
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Capital) and "paris" in parsed.capital.lower()
