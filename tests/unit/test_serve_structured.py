"""Structured outputs through the official openai client against a real `genlab serve` on loopback.

The server runs a tiny random model: whatever its weights prefer, the constraint decides what may
be generated, so every answer that ends by itself must parse and validate against its schema.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field
from test_serve_support import make_tiny_assets, running_server

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend

KEY = "structured-key"
ASK = [{"role": "user", "content": "Describe a person as JSON."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    assets = make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")
    config = ServeConfig(
        model="tiny", adapters={"alpha": str(assets.adapters["alpha"])}, api_key=KEY, embedder="hashing-32",
        max_concurrent=16, max_tokens_limit=400, jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", max_n=3,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), {"alpha": str(assets.adapters["alpha"])}, max_batch=8, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


def post(server: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


class Address(BaseModel):
    city: str = Field(max_length=10)
    floor: int = Field(ge=0, le=50)


class Person(BaseModel):
    name: str = Field(max_length=12)
    age: int = Field(ge=0, le=120)
    mood: Literal["happy", "sad", "calm"]
    address: Address
    pets: list[Annotated[str, Field(max_length=8)]] = Field(max_length=3)  # bounded: a random model's strings rarely close


def test_parse_with_a_pydantic_model_gives_a_valid_object_on_the_base_and_an_adapter(client) -> None:
    for model, extra in (("tiny", {"temperature": 0}), ("alpha", {"temperature": 1.0, "n": 2, "seed": 5})):
        reply = client.chat.completions.parse(model=model, messages=ASK, response_format=Person, max_tokens=300, **extra)
        for choice in reply.choices:
            assert choice.finish_reason == "stop"
            assert isinstance(choice.message.parsed, Person)  # the client parsed and validated it
            assert Person.model_validate_json(choice.message.content) == choice.message.parsed


def test_json_object_mode_answers_a_json_object(client) -> None:
    # An unbounded string rarely closes by chance in a random model: a bias on the quote and the closing
    # brace (ids 5 and 96 of the tiny tokenizer) lets answers end, and the grammar still decides where they go.
    for seed in range(3):
        reply = client.chat.completions.create(
            model="tiny", messages=ASK, response_format={"type": "json_object"}, max_tokens=300, temperature=1.0,
            seed=seed, logit_bias={"5": 4, "96": 4},
        )  # fmt: skip
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", choice.message.content
        assert isinstance(json.loads(choice.message.content), dict)


def _schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random schema of bounded size: nested objects, arrays, enums, required fields, bounded numbers."""
    kinds = ["string", "integer", "number", "boolean", "enum"] + (["object", "array"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "string":
        return {"type": "string", "maxLength": rng.randint(0, 8)}
    if kind == "integer":
        low = rng.randint(-50, 50)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(0, 200)}
    if kind == "number":
        low = rng.choice([-10.5, 0, 2.25])
        return {"type": "number", "minimum": low, "maximum": low + rng.choice([1, 7.5, 100])}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", 3, None, "a b"], rng.randint(1, 4))}
    if kind == "array":
        return {"type": "array", "items": _schema(rng, depth + 1), "minItems": rng.randint(0, 1), "maxItems": rng.randint(1, 3)}
    names = rng.sample(["id", "name", "size", "kind", "tags", "owner", "note"], rng.randint(1, 4))
    properties = {name: _schema(rng, depth + 1) for name in names}
    required = [name for name in names if rng.random() < 0.7]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def generated_schemas(count: int = 50, seed: int = 19) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    schemas = []
    while len(schemas) < count:
        schema = _schema(rng)
        if schema.get("type") == "object":  # response_format json_schema: an object at the top, as OpenAI asks
            schemas.append(schema)
    return schemas


def test_fifty_generated_schemas_every_answer_validates(client) -> None:
    schemas = generated_schemas()
    kinds = {json.dumps(s) for s in schemas}
    assert len(kinds) == 50  # fifty different schemas
    text = json.dumps(schemas)
    for feature in ('"type": "array"', '"enum"', '"minimum"', '"required"', '"maxLength"', '"properties": {'):
        assert feature in text

    def ask(indexed: tuple[int, dict[str, Any]]) -> Any:
        index, schema = indexed
        form = {"type": "json_schema", "json_schema": {"name": f"schema_{index}", "schema": schema, "strict": index % 2 == 0}}
        return client.chat.completions.create(
            model="tiny" if index % 3 else "alpha", messages=ASK, response_format=form, max_tokens=400,
            temperature=1.0, seed=index,
        )  # fmt: skip

    with ThreadPoolExecutor(8) as pool:  # several at once: constrained rows share the dynamic batch
        replies = list(pool.map(ask, enumerate(schemas)))
    for schema, reply in zip(schemas, replies, strict=True):
        choice = reply.choices[0]
        assert choice.finish_reason == "stop", (schema, choice.message.content)
        jsonschema.validate(json.loads(choice.message.content), schema)


def test_free_rows_beside_constrained_rows_answer_as_they_do_alone(client) -> None:
    def free() -> str:
        return client.chat.completions.create(model="tiny", messages=ASK, max_tokens=40, temperature=0).choices[0].message.content

    alone = free()
    form = {"type": "json_schema", "json_schema": {"name": "person", "schema": Person.model_json_schema()}}
    with ThreadPoolExecutor(4) as pool:
        constrained = [pool.submit(client.chat.completions.create, model="tiny", messages=ASK, response_format=form,
                                   max_tokens=200, temperature=1.0, seed=s) for s in range(3)]  # fmt: skip
        beside = pool.submit(free)
        assert beside.result() == alone
        for future in constrained:
            Person.model_validate_json(future.result().choices[0].message.content)


def test_an_answer_cut_by_max_tokens_says_length(client) -> None:
    form = {"type": "json_schema", "json_schema": {"name": "person", "schema": Person.model_json_schema()}}
    reply = client.chat.completions.create(model="tiny", messages=ASK, response_format=form, max_tokens=3, temperature=0)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_vllm_structured_outputs_choice_regex_and_json(client) -> None:
    options = ["positive", "negative", "not sure"]
    for seed in range(3):
        reply = client.chat.completions.create(
            model="tiny", messages=ASK, max_tokens=20, seed=seed, extra_body={"structured_outputs": {"choice": options}}
        )
        assert reply.choices[0].message.content in options and reply.choices[0].finish_reason == "stop"
    reply = client.chat.completions.create(
        model="alpha", messages=ASK, max_tokens=30, seed=1, extra_body={"structured_outputs": {"regex": r"[a-z]{3,6}-\d{2}"}}
    )
    assert reply.choices[0].finish_reason == "stop"
    assert __import__("re").fullmatch(r"[a-z]{3,6}-\d{2}", reply.choices[0].message.content)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = client.chat.completions.create(
        model="tiny", messages=ASK, max_tokens=30, temperature=0, extra_body={"structured_outputs": {"json": schema}}
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_streamed_json_adds_up_to_a_valid_answer(client) -> None:
    form = {"type": "json_schema", "json_schema": {"name": "person", "schema": Person.model_json_schema()}}
    chunks = list(client.chat.completions.create(model="tiny", messages=ASK, response_format=form, max_tokens=300,
                                                 temperature=0, stream=True))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    Person.model_validate_json(text)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def _error(response: httpx.Response, param: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    return error["message"]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
         "response_format", ["response_format", "nonsense"]),
        ({"response_format": {"type": "json_schema"}}, "response_format", ["json_schema"]),
        ({"response_format": {"type": "yaml"}}, "response_format.type", []),
        ({"structured_outputs": {"regex": "((("}}, "structured_outputs", ["structured_outputs.regex", "parenthesis"]),
        ({"structured_outputs": {"grammar": "root ::= 'a'"}}, "structured_outputs.grammar", []),
        ({"structured_outputs": {"choice": ["a"], "regex": "b"}}, "structured_outputs", ["exactly one"]),
        ({"guided_json": {"type": "object"}}, "guided_json", ["structured_outputs"]),
        ({"response_format": {"type": "json_object"}, "structured_outputs": {"regex": "a"}}, "structured_outputs",
         ["response_format", "only one"]),
    ],
)  # fmt: skip
def test_bad_formats_are_a_400_naming_the_field(server, extra, param, words) -> None:
    message = _error(post(server, {"model": "tiny", "messages": ASK, "max_tokens": 5, **extra}), param)
    for word in words:
        assert word in message


def test_completions_refuse_structured_fields_instead_of_ignoring_them(server) -> None:
    for extra in ({"structured_outputs": {"choice": ["a"]}}, {"response_format": {"type": "json_object"}}):
        body = {"model": "tiny", "prompt": "Hi", "max_tokens": 5, **extra}
        response = httpx.post(server + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        assert response.status_code == 400 and response.json()["error"]["param"] == next(iter(extra))
        assert "chat/completions" in response.json()["error"]["message"]
