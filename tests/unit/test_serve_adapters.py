"""Adapters loaded and unloaded while `genlab serve` runs (vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter),
through the official openai client against a real uvicorn server on loopback.

The server starts with the tiny base alone and ``adapter_root`` set, so the first LoRA adapter takes
the path that wraps the base (requests in flight finish first) and the second joins between two
steps. Answers are compared with genlab's engine on the base with that adapter merged (what ``genlab
generate --adapter`` runs). To see a change happen *while* a request is in flight, without timing,
the scheduler thread is held between two steps (:func:`scheduler_held`) while the request and the
change are queued, then let go.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from test_serve_support import PROMPTS, make_tiny_assets, running_server, wait_for

from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend

KEY = "adapter-key"
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")


@pytest.fixture(scope="module")
def root(assets, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The adapter root: copies of alpha, beta and soft, and a symlink that leads out of it."""
    root = tmp_path_factory.mktemp("adapter-root")
    for name in ("alpha", "beta", "soft"):
        shutil.copytree(assets.adapters[name], root / name)
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(assets.adapters["alpha"], outside / "alpha")
    (root / "escape").symlink_to(outside / "alpha", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def expected(assets) -> dict[str, str]:
    """Greedy answers of genlab's engine: the base, and the base with each adapter merged."""
    settings = GenerationSettings(max_new_tokens=MAX_TOKENS, temperature=0)
    answers = {}
    for name in ("tiny", "alpha", "beta", "soft"):
        loaded = load_model(str(assets.base))
        if name != "tiny":
            loaded = merge_adapter(loaded, assets.adapters[name])
        answers[name] = GenerationEngine(loaded, batch_size=1).generate([PROMPTS[0]], settings, chat=True)[0].text
    assert len(set(answers.values())) == 4  # each adapter changes the answer, so agreeing means something
    return answers


@pytest.fixture(scope="module")
def served(assets, root, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GenlabBackend]]:
    config = ServeConfig(
        model="tiny", api_key=KEY, embedder="hashing-8", adapter_root=root, record_lineage=False,
        jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0,
    )  # fmt: skip
    backend = GenlabBackend(str(assets.base), max_batch=4, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield url, backend


def post(url: str, path: str, body: dict[str, Any], *, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + path, json=body, headers=headers, timeout=120)


def chat(client: openai.OpenAI, model: str, stream: bool = False) -> str:
    messages = [{"role": "user", "content": PROMPTS[0]}]
    if not stream:
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=MAX_TOKENS, temperature=0)
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=messages, max_tokens=MAX_TOKENS, temperature=0, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@contextlib.contextmanager
def scheduler_held(backend: GenlabBackend) -> Iterator[None]:
    """Hold the scheduler thread between two steps (through its own hook) until the block ends."""
    scheduler = backend.scheduler
    assert scheduler is not None
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=scheduler.call_between_steps, args=(lambda: (entered.set(), release.wait()),))
    holder.start()
    assert entered.wait(60)
    try:
        yield
    finally:
        release.set()
        holder.join(60)


class InThread:
    """Run ``function`` in a thread; ``result()`` joins it and returns (or raises) what it did."""

    def __init__(self, function: Any, *args: Any) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(function, *args))
        self._thread.start()

    def _run(self, function: Any, *args: Any) -> None:
        try:
            self._outcome.append(("ok", function(*args)))
        except Exception as error:  # noqa: BLE001 - handed to result()
            self._outcome.append(("error", error))

    def result(self) -> Any:
        self._thread.join(120)
        kind, value = self._outcome[0]
        if kind == "error":
            raise value
        return value


def test_adapters_load_serve_list_and_unload_without_a_restart(served, root, assets, expected) -> None:
    url, backend = served
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    cards = {m.id: m.model_dump() for m in client.models.list().data}
    assert list(cards) == ["tiny", "hashing-8"]
    assert cards["tiny"]["root"] == str(assets.base.resolve()) and cards["tiny"]["parent"] is None
    assert cards["tiny"]["max_model_len"] == backend.context_window

    # the first LoRA adapter wraps the base; a base request queued before it finishes as the base
    with scheduler_held(backend):
        base_stream = InThread(chat, client, "tiny", True)
        wait_for(lambda: backend.queue_depth == 1, "the base request to queue")
        loading = InThread(post, url, "/v1/load_lora_adapter", {"lora_name": "alpha", "lora_path": "alpha"})
    assert base_stream.result() == expected["tiny"]
    response = loading.result()
    assert response.status_code == 200 and response.text == "Success: LoRA adapter 'alpha' added successfully."
    assert chat(client, "alpha") == expected["alpha"] and chat(client, "tiny") == expected["tiny"]

    # the second joins between two steps, while an alpha request is decoding
    with scheduler_held(backend):
        alpha_stream = InThread(chat, client, "alpha", True)
        wait_for(lambda: backend.queue_depth == 1, "the alpha request to queue")
        loading = InThread(post, url, "/v1/load_lora_adapter", {"lora_name": "beta", "lora_path": str(root / "beta")})
        wait_for(lambda: backend.scheduler._calls, "the load to wait for the scheduler")
    assert loading.result().status_code == 200
    assert alpha_stream.result() == expected["alpha"]
    assert post(url, "/v1/load_lora_adapter", {"lora_name": "soft", "lora_path": "soft"}).status_code == 200
    assert {m: chat(client, m) for m in ("tiny", "alpha", "beta", "soft")} == expected

    cards = {m.id: m.model_dump() for m in client.models.list().data}
    assert list(cards) == ["tiny", "alpha", "beta", "soft", "hashing-8"]
    assert cards["beta"]["parent"] == "tiny" and cards["beta"]["root"] == str((root / "beta").resolve())
    assert cards["soft"]["max_model_len"] == backend.context_window - 4  # its 4 virtual tokens take their share
    assert client.models.retrieve("alpha").parent == "tiny"

    # unloading waits for the requests admitted for it; new ones get 404 at once
    with scheduler_held(backend):
        beta_stream = InThread(chat, client, "beta", True)
        wait_for(lambda: backend.queue_depth == 1, "the beta request to queue")
        unloading = InThread(post, url, "/v1/unload_lora_adapter", {"lora_name": "beta"})
        wait_for(lambda: "beta" not in backend.models(), "beta to stop answering")
        with pytest.raises(openai.NotFoundError):
            chat(client, "beta")
    assert beta_stream.result() == expected["beta"]
    response = unloading.result()
    assert response.status_code == 200 and response.text == "Success: LoRA adapter 'beta' removed successfully."
    assert [m.id for m in client.models.list().data] == ["tiny", "alpha", "soft", "hashing-8"]
    with pytest.raises(openai.NotFoundError):
        chat(client, "beta")
    assert chat(client, "alpha") == expected["alpha"] and chat(client, "tiny") == expected["tiny"]

    # the last LoRA adapter goes: the base and the soft prompt answer as before
    assert post(url, "/v1/unload_lora_adapter", {"lora_name": "alpha"}).status_code == 200
    assert [m.id for m in client.models.list().data] == ["tiny", "soft", "hashing-8"]
    assert chat(client, "tiny") == expected["tiny"] and chat(client, "soft") == expected["soft"]

    # and adapters come back under the same names
    for name in ("beta", "alpha"):
        assert post(url, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": name}).status_code == 200
    assert {m: chat(client, m) for m in ("tiny", "alpha", "beta", "soft")} == expected


def _error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert all(word in message for word in words), message


def test_bad_loads_and_unloads_are_refused_with_a_sentence(served, root) -> None:
    url, _ = served
    load = "/v1/load_lora_adapter"
    _error(post(url, load, {"lora_name": "x", "lora_path": "../outside/alpha"}), 400, "../outside/alpha", "outside")
    _error(post(url, load, {"lora_name": "x", "lora_path": "escape"}), 400, "escape", "outside")  # a symlink out
    _error(post(url, load, {"lora_name": "x", "lora_path": "/etc"}), 400, "/etc", "outside")
    _error(post(url, load, {"lora_name": "x", "lora_path": "missing"}), 404, "missing")
    (root / "empty").mkdir(exist_ok=True)
    _error(post(url, load, {"lora_name": "x", "lora_path": "empty"}), 404, "adapter_config.json")
    _error(post(url, load, {"lora_name": "tiny", "lora_path": "alpha"}), 400, "tiny")  # the base's id
    _error(post(url, load, {"lora_name": "a b", "lora_path": "alpha"}), 400, "lora_name")
    _error(post(url, load, {"lora_name": "x"}), 400)  # no lora_path
    _error(post(url, load, {"lora_name": "x", "lora_path": "alpha", "load_inplace": True}), 400)  # not accepted, not ignored
    _error(post(url, "/v1/unload_lora_adapter", {"lora_name": "never-loaded"}), 404, "never-loaded")
    assert post(url, load, {"lora_name": "x", "lora_path": "alpha"}, key=None).status_code == 401
    assert post(url, "/v1/unload_lora_adapter", {"lora_name": "x"}, key="wrong").status_code == 401


def test_without_an_adapter_root_loading_is_off_and_says_how_to_turn_it_on(assets, tmp_path) -> None:
    config = ServeConfig(model="tiny", embedder="hashing-8", record_lineage=False, jobs_db=tmp_path / "j.sqlite", job_workers=0)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        _error(post(url, "/v1/load_lora_adapter", {"lora_name": "a", "lora_path": str(assets.adapters["alpha"])}), 400, "--adapter-root")
        _error(post(url, "/v1/unload_lora_adapter", {"lora_name": "a"}), 400, "--adapter-root")
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["tiny", "hashing-8"]


def test_adapter_root_must_be_a_folder_and_needs_the_genlab_backend(tmp_path) -> None:
    from genlab.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="adapter_root"):
        ServeConfig(adapter_root=tmp_path / "nope")
    with pytest.raises(InvalidValueError, match="genlab backend"):
        ServeConfig(adapter_root=tmp_path, backend="vllm")
    assert ServeConfig(adapter_root=tmp_path).adapter_root == tmp_path.resolve()


def test_an_adapter_loaded_at_run_time_is_an_input_of_the_endpoints_lineage_run(assets, root, tmp_path) -> None:
    from genlab.lineage import LineageStore

    config = ServeConfig(model="tiny", embedder="hashing-8", adapter_root=root, jobs_db=tmp_path / "j.sqlite", job_workers=0)
    with running_server(create_app(config, backend=GenlabBackend(str(assets.base), model_id="tiny"))) as url:
        assert post(url, "/v1/load_lora_adapter", {"lora_name": "alpha", "lora_path": "alpha"}, key=None).status_code == 200
        with LineageStore() as store:
            (run,) = store.list_runs(kind="serve")
            inputs = [a for a in store.artifacts_of(run.id, "input") if a.kind == "adapter"]
    assert [Path(a.path) for a in inputs] == [(root / "alpha").resolve()]
