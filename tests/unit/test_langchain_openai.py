"""LangChain's ``ChatOpenAI`` (langchain-openai) against a real `genlab serve` on loopback.

``with_structured_output`` with its three methods, and ``bind_tools`` followed by a ``ToolMessage``
round trip. The server runs a tiny random model: the grammar makes the structured answers and the
forced calls valid whatever its weights prefer, so LangChain must parse every one of them.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field
from test_serve_support import running_server, save_long_window_tiny

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend

KEY = "langchain-key"
QUESTION = "Tell me about a city as structured data."


class City(BaseModel):
    """A city and what it is known for."""

    name: str = Field(max_length=12, description="the city's name")
    population: int = Field(ge=0, le=40_000_000)
    kind: Literal["capital", "port", "town"]
    sights: list[Annotated[str, Field(max_length=8)]] = Field(max_length=2)


@tool
def get_weather(city: Annotated[str, Field(max_length=10)], unit: Literal["celsius", "fahrenheit"]) -> str:
    """The weather now in a city."""
    return json.dumps({"city": city, "temperature": 21 if unit == "celsius" else 70, "sky": "clear"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = save_long_window_tiny(tmp_path_factory.mktemp("langchain-base"))  # a window long enough for the tool prompt
    config = ServeConfig(
        model="tiny", api_key=KEY, embedder="hashing-32", max_concurrent=8, max_tokens_limit=400,
        jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite",
    )  # fmt: skip
    with running_server(create_app(config, backend=GenlabBackend(str(base), max_batch=8, model_id="tiny"))) as url:
        yield url


@pytest.fixture
def llm(server) -> ChatOpenAI:
    return ChatOpenAI(base_url=server + "/v1", api_key=KEY, model="tiny", temperature=0, max_tokens=300, max_retries=0, timeout=120)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output_gives_a_validated_object(llm, method) -> None:
    structured = llm.with_structured_output(City, method=method, include_raw=True)
    result = structured.invoke(QUESTION)
    assert result["parsing_error"] is None, result["raw"]
    assert isinstance(result["parsed"], City)
    if method == "function_calling":  # a forced call of the schema as a tool
        assert result["raw"].tool_calls[0]["name"] == "City"


def test_with_structured_output_json_mode_gives_a_json_object(server) -> None:
    # json_mode only asks for a JSON object (the schema is not sent): LangChain parses it into a dict.
    # A bias on the quote and the closing brace (tiny tokenizer ids 5 and 96) lets a random model's strings end.
    biased = ChatOpenAI(base_url=server + "/v1", api_key=KEY, model="tiny", temperature=0, max_tokens=300, max_retries=0,
                        logit_bias={5: 4, 96: 4})  # fmt: skip
    structured = biased.with_structured_output(None, method="json_mode")
    assert isinstance(structured.invoke(QUESTION + " Answer in JSON."), dict)


def test_bind_tools_then_a_tool_message_round_trip(llm) -> None:
    forced = llm.bind_tools([get_weather], tool_choice="any")  # LangChain's "any" is OpenAI's "required"
    question = HumanMessage("What is the weather in Paris?")
    asked = forced.invoke([question])
    assert isinstance(asked, AIMessage) and asked.tool_calls
    call = asked.tool_calls[0]
    assert call["name"] == "get_weather" and set(call["args"]) == {"city", "unit"}
    result = get_weather.invoke(call)  # a ToolMessage answering the call by its id
    assert isinstance(result, ToolMessage) and result.tool_call_id == call["id"]
    final = llm.bind_tools([get_weather]).invoke([question, asked, result])
    assert isinstance(final, AIMessage)
    assert final.content or final.tool_calls  # the model answered after reading the result
    assert final.response_metadata["finish_reason"] in ("stop", "length", "tool_calls")


def test_streaming_a_forced_tool_call_through_langchain(llm) -> None:
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(forced.stream("What is the weather in Oslo?"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert [c["name"] for c in merged.tool_calls] == ["get_weather"]
    assert set(merged.tool_calls[0]["args"]) == {"city", "unit"}
