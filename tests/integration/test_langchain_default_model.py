"""The README's LangChain loop against `genlab serve` with the real default model and a LoRA adapter on it.

The adapter (:func:`tests.integration.adapter_support.small_lora`) is a real peft LoRA with a small
update, so the 135M model still reads the question. What is checked is what a LangChain user relies on: a forced tool call
parses into ``tool_calls`` with arguments that fit the tool, the ``ToolMessage`` round trip ends in a
plain answer, and ``with_structured_output`` returns the Pydantic object, on the base and the adapter.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from tests.integration.adapter_support import small_lora
from tests.unit.test_serve_support import running_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"


@tool
def get_weather(city: str) -> str:
    """The weather now in a city."""
    return json.dumps({"city": city, "temperature_c": 21, "sky": "clear"})


class City(BaseModel):
    name: str
    country: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    folder = small_lora(MODEL, tmp_path_factory.mktemp("adapters") / "small-lora")
    config = ServeConfig(model=MODEL, adapters={"small-lora": str(folder)},
                         jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0)  # fmt: skip
    with running_server(create_app(config)) as url:
        yield url


@pytest.mark.parametrize("model_id", [MODEL, "small-lora"])
def test_the_readme_tool_loop_and_structured_output(server: str, model_id: str) -> None:
    llm = ChatOpenAI(model=model_id, base_url=server + "/v1", api_key="none", temperature=0, max_tokens=60, timeout=300)
    messages = [HumanMessage("What is the weather in Paris?")]
    reply = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(messages)
    assert len(reply.tool_calls) >= 1 and reply.tool_calls[0]["name"] == "get_weather"
    assert "paris" in reply.tool_calls[0]["args"]["city"].lower()  # the model filled the argument from the question
    messages += [reply] + [ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]) for call in reply.tool_calls]
    final = llm.bind_tools([get_weather]).invoke(messages)
    assert isinstance(final.content, str) and final.content.strip()

    city = llm.with_structured_output(City, method="json_schema").invoke("Name a city in France.")
    assert isinstance(city, City) and city.name.strip() and city.country.strip()
