"""`genlab serve`'s typed config: every bad value is one sentence naming the field; the CLI exits 2."""

from __future__ import annotations

import pytest

from genlab.errors import InvalidValueError
from genlab.serving.config import API_KEY_ENV, ServeConfig
from tests.conftest import run_cli


def test_adapters_parse_from_name_equals_path_and_the_key_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    config = ServeConfig.from_cli(adapters=["support=./a", "legal = ./b "], model="smollm2-135m-instruct")
    assert config.adapters == {"support": "./a", "legal": "./b"} and config.api_key == "from-env"
    assert ServeConfig.from_cli(api_key="flag").api_key == "flag"
    monkeypatch.delenv(API_KEY_ENV)
    assert ServeConfig.from_cli().api_key is None


def test_batching_off_means_one_row_at_a_time() -> None:
    assert ServeConfig(max_batch=6).batch_size == 6
    assert ServeConfig(max_batch=6, batching=False).batch_size == 1


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"adapters": ["nopath"]}, ["--adapter", "NAME=PATH"]),
        ({"adapters": ["a=1", "a=2"]}, ["'a'", "twice"]),
        ({"port": 70000}, ["port=70000", "65535"]),
        ({"max_batch": 0}, ["max_batch=0"]),
        ({"threads": 0}, ["threads=0", "greater than or equal to 1"]),
        ({"idle_unload": 0}, ["idle_unload=0", "greater than 0"]),
        ({"backend": "tgi"}, ["backend='tgi'", "genlab", "llama.cpp", "vllm"]),
        ({"backend": "llama.cpp", "adapters": ["a=./x"]}, ["adapters", "genlab backend"]),
        ({"adapters": ["smollm2-135m-instruct=./x"]}, ["base model's id"]),
        ({"api_key": "  "}, ["API key", "empty"]),
        ({"lanes": 2}, ["lanes", "onnxruntime-genai", "not of genlab"]),
        ({"backend": "onnxruntime-genai", "lanes": 0}, ["lanes=0", "greater than or equal to 1"]),
    ],
)
def test_bad_values_name_the_field(values: dict, words: list[str]) -> None:
    with pytest.raises(InvalidValueError) as caught:
        ServeConfig.from_cli(**values)
    for word in words:
        assert word in str(caught.value)


def test_cli_refuses_a_bad_adapter_flag_in_one_line() -> None:
    result = run_cli("serve", "--adapter", "support")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "NAME=PATH" in result.stderr
