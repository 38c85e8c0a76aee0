"""Tool calling: the prompt, the parsing of answers (scripted texts), and the openai client against a real server.

The server runs a tiny random model: with ``tool_choice`` ``required`` or a named function the grammar
decides the calls' shape, so they must name offered functions with arguments valid against their
schemas whatever the weights prefer; with ``auto`` its text is whatever it is, parsed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from test_serve_support import running_server, save_long_window_tiny

from genlab.models.tiny import tiny_tokenizer
from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend
from genlab.serving.tool_prompt import call_block, render_chat, template_renders_tools
from genlab.serving.tools import ToolPlan, ToolStream, assistant_message

KEY = "tools-key"
WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
}
TIME = {
    "name": "get_time",
    "description": "The local time in a time zone.",
    "parameters": {"type": "object", "properties": {"offset": {"type": "integer", "minimum": -12, "maximum": 14}},
                   "required": ["offset"]},
}  # fmt: skip
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]
SCHEMAS = {"get_weather": WEATHER["parameters"], "get_time": TIME["parameters"]}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


# --- prompt and parsing, no server --------------------------------------------------------------------


def test_generic_prompt_carries_the_tools_the_calls_and_the_results() -> None:
    tokenizer = tiny_tokenizer()
    assert not template_renders_tools(tokenizer)  # plain ChatML, like the default model's: the generic prompt
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}
    messages = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": '{"temperature": 21}', "tool_call_id": "call_1"},
        {"role": "tool", "content": '{"temperature": 22}', "tool_call_id": "call_2"},
    ]
    prompt = render_chat(tokenizer, messages, TOOLS)
    expected_call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
    assert prompt.startswith("<|im_start|>system\nYou can call functions")
    assert json.dumps(WEATHER) in prompt and json.dumps(TIME) in prompt
    assert f"<|im_start|>assistant\n{expected_call}<|im_end|>" in prompt
    results = '<tool_response>\n{"temperature": 21}\n</tool_response>\n<tool_response>\n{"temperature": 22}\n</tool_response>'
    assert f"<|im_start|>user\n{results}<|im_end|>" in prompt  # both results in one user turn
    assert prompt.endswith("<|im_start|>assistant\n")
    assert render_chat(tokenizer, ASK) == tokenizer.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)


def test_a_template_that_renders_tools_gets_them_and_the_calls_as_objects() -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (
        "{% for t in tools %}TOOL {{ t.function.name }}\n{% endfor %}{% for m in messages %}{{ m.role }}: {{ m.content }}"
        "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} {{ c.function.arguments.city }}{% endfor %}\n{% endfor %}"
    )
    assert template_renders_tools(tokenizer)
    call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    prompt = render_chat(tokenizer, [*ASK, {"role": "assistant", "content": "", "tool_calls": [call]}], TOOLS)
    assert prompt.startswith("TOOL get_weather\nTOOL get_time\n") and "CALL get_weather Oslo" in prompt


PLAN = ToolPlan((WEATHER, TIME), "auto")


def test_an_answer_with_text_and_two_calls_is_parsed_into_content_and_tool_calls() -> None:
    text = "Let me look.\n" + call_block("get_weather", {"city": "Paris", "unit": "celsius"}) + "\n" + call_block("get_time", {"offset": 1})
    message, finish = assistant_message(text, "stop", PLAN)
    assert finish == "tool_calls" and message["content"] == "Let me look."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"offset": 1}),
    ]  # fmt: skip
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in message["tool_calls"])
    single, _ = assistant_message(text, "stop", ToolPlan((WEATHER, TIME), "auto", parallel=False))
    assert [c["function"]["name"] for c in single["tool_calls"]] == ["get_weather"]  # parallel_tool_calls false: the first


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny.",
        '<tool_call>\n{"name": "launch_rocket", "arguments": {}}\n</tool_call>',  # not an offered function
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',  # cut
        "<tool_call>\nnot json\n</tool_call>",
    ],
)
def test_answers_without_a_well_formed_call_stay_content(text: str) -> None:
    message, finish = assistant_message(text, "stop", PLAN)
    assert message == {"role": "assistant", "content": text} and finish == "stop"


def test_a_call_cut_by_max_tokens_says_length() -> None:
    text = call_block("get_time", {"offset": 3}) + "\n<tool_call>\n{\"name\": \"get_w"
    message, finish = assistant_message(text, "length", PLAN)
    assert finish == "length" and len(message["tool_calls"]) == 1


def test_streamed_pieces_add_up_to_the_same_content_and_calls() -> None:
    text = "Checking <tools>.\n" + call_block("get_weather", {"city": "Paris", "unit": "celsius"}) + "\n" + call_block("get_time", {"offset": -2})
    stream = ToolStream(PLAN)
    deltas = [d for k in range(0, len(text), 3) for d in stream.feed(0, text[k : k + 3])]
    tail, finish = stream.end(0, "stop")
    deltas += tail
    content = "".join(d.get("content", "") for d in deltas)
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for piece in delta.get("tool_calls", []):
            call = calls.setdefault(piece["index"], {"name": "", "arguments": ""})
            call["name"] += piece["function"].get("name", "")
            call["arguments"] += piece["function"]["arguments"]
            if "id" in piece:
                call["id"] = piece["id"]
    whole, whole_finish = assistant_message(text, "stop", PLAN)
    assert finish == whole_finish == "tool_calls"
    assert content.strip() == whole["content"] == "Checking <tools>."  # "<tools>" is held back, then sent as text
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in whole["tool_calls"]
    ]
    assert all(c["id"].startswith("call_") for c in calls.values())


# --- the openai client against a real server ----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    # The tiny tokenizer spends ~600 tokens on the tool prompt: the tiny Llama (rotary positions, no
    # learned ones) reads 2048 here instead of its 512. Adapters are served with tools as with anything
    # else (test_serve_structured runs constrained rows on one).
    base = save_long_window_tiny(tmp_path_factory.mktemp("tools-base"))  # a window long enough for the tool prompt
    config = ServeConfig(
        model="tiny", api_key=KEY, embedder="hashing-32", max_concurrent=8, max_tokens_limit=400,
        jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", max_n=3,
    )  # fmt: skip
    backend = GenlabBackend(str(base), max_batch=8, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


def _valid_calls(message: Any, names: set[str]) -> list[Any]:
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_") and call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    return message.tool_calls


def test_required_tool_choice_always_gives_valid_calls(client) -> None:
    for model, seed in (("tiny", 1), ("tiny", 2), ("tiny", 3)):
        reply = client.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=400, temperature=1.0, seed=seed, n=2
        )
        for choice in reply.choices:
            assert choice.finish_reason == "tool_calls"
            _valid_calls(choice.message, {"get_weather", "get_time"})
    single = client.chat.completions.create(
        model="tiny", messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, max_tokens=300, seed=4
    )
    assert len(_valid_calls(single.choices[0].message, {"get_weather", "get_time"})) == 1


def test_a_named_tool_choice_calls_exactly_that_function(client) -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    reply = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, tool_choice=named, max_tokens=200, temperature=0)
    assert reply.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in _valid_calls(reply.choices[0].message, {"get_time"})] == ["get_time"]


def test_round_trip_required_call_then_the_tool_result_and_a_final_answer_with_auto(client) -> None:
    first = client.chat.completions.create(
        model="tiny", messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, max_tokens=200, temperature=0
    )
    call = _valid_calls(first.choices[0].message, {"get_weather", "get_time"})[0]
    history = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21, "sky": "clear"})},
    ]
    final = client.chat.completions.create(model="tiny", messages=history, tools=TOOLS, tool_choice="auto", max_tokens=30, temperature=0)
    choice = final.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls  # an answer, whatever a random model says
    plain = client.chat.completions.create(model="tiny", messages=history, max_tokens=30, temperature=0)
    assert plain.choices[0].message.content  # the history alone (no tools offered) is a valid conversation too


def test_tool_choice_none_answers_with_text(client) -> None:
    reply = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=10, temperature=0)
    alone = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=0)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == alone.choices[0].message.content  # the tools are not in the prompt


def test_streaming_with_tools_sends_tool_call_deltas_that_add_up_to_the_answer(client) -> None:
    kwargs = dict(model="tiny", messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=300, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(piece.index, {"name": "", "arguments": ""})
            if piece.id:
                assert piece.type == "function" and piece.function.name  # the first delta of a call names it
            call["name"] += piece.function.name or ""
            call["arguments"] += piece.function.arguments or ""
    expected = [(c.function.name, c.function.arguments) for c in _valid_calls(whole.choices[0].message, set(SCHEMAS))]
    assert [(c["name"], c["arguments"]) for c in calls.values()] == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def _error(server: str, body: dict[str, Any], param: str) -> str:
    response = httpx.post(server + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.json()
    return response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "fly"}}}, "tool_choice", ["fly", "get_weather"]),
        ({"tool_choice": "required"}, "tool_choice", ["offers none"]),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools", ["twice"]),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name", []),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}], "tool_choice": "required"},
         "tools", ["parameters", "nonsense"]),
        ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "tools", ["only one"]),
        ({"tools": TOOLS, "stream": True, "logprobs": True}, "logprobs", ["stream"]),
    ],
)  # fmt: skip
def test_bad_tool_requests_are_a_400_naming_the_field(server, extra, param, words) -> None:
    message = _error(server, {"model": "tiny", "messages": ASK, "max_tokens": 5, **extra}, param)
    for word in words:
        assert word in message
