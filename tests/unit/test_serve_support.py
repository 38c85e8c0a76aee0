"""Shared by the serving tests (no tests here): a tiny base model folder, LoRA and soft-prompt adapters
on it, and a real uvicorn server in a thread on a free loopback port."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genlab.models.adapters import save_adapter
from genlab.models.fingerprint import base_fingerprint
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model

PROMPTS = [
    "#Person1#: My parcel arrived damaged.",
    "#Person1#: Hi, I'd like to book a table for two tonight at eight, please.\n#Person2#: Of course.",
    "Hello",
    "#Person1#: Can you help me reset my password? I forgot it again and the link does not work.",
    "#Person2#: Thanks!",
    "#Person1#: What time does the museum open on Sundays?",
]


@dataclass(frozen=True)
class TinyAssets:
    base: Path  # a saved tiny causal model folder
    adapters: dict[str, Path]  # alpha, beta: LoRA; soft: prompt tuning


@functools.cache
def make_tiny_assets(root: Path) -> TinyAssets:
    """(Built once per folder and process.) A tiny Llama whose attention decides its tokens (so a batching bug changes answers) and adapters."""
    loaded = tiny_model("causal", seed=7)
    with torch.no_grad():  # sharpened attention, as in test_generation: masking mistakes then show
        for name, weight in loaded.model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                weight.mul_(30)
    root.mkdir(parents=True, exist_ok=True)
    base = root / "tiny-base"
    loaded.model.save_pretrained(base)
    loaded.tokenizer.save_pretrained(base)
    adapters = {
        "alpha": _lora(base, root / "alpha", seed=10, targets=("q_proj", "v_proj")),
        "beta": _lora(base, root / "beta", seed=11, targets=("v_proj", "o_proj", "down_proj")),
        "soft": _soft_prompt(base, root / "soft"),
    }
    return TinyAssets(base, adapters)


def save_long_window_tiny(folder: Path) -> Path:
    """The tiny causal model saved with a 2048-token window (its 512 is too short for the ~600-token tool
    prompt; a Llama with rotary positions reads the longer window with no learned positions to add)."""
    loaded = tiny_model("causal", seed=7)
    loaded.model.config.max_position_embeddings = 2048
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder


def _lora(base: Path, folder: Path, *, seed: int, targets: tuple[str, ...]) -> Path:
    from peft import LoraConfig, get_peft_model

    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(seed)  # init_lora_weights=False: A and B random, so the adapter changes the answers
    peft_model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=16, target_modules=list(targets), init_lora_weights=False))
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(4)  # a delta large enough to change greedy tokens of a random model
    return save_adapter(peft_model, folder, base=loaded, method="lora", run_id=None, fingerprint=fingerprint)


def _soft_prompt(base: Path, folder: Path) -> Path:
    from peft import PromptTuningConfig, get_peft_model

    loaded = load_model(str(base))
    fingerprint = base_fingerprint(loaded)
    torch.manual_seed(0)
    peft_model = get_peft_model(loaded.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    return save_adapter(peft_model, folder, base=loaded, method="prompt_tuning", run_id=None, fingerprint=fingerprint)


def bound_socket() -> socket.socket:
    """A loopback socket on a free port, bound before the server starts (no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL; stops it (and its lifespan) after."""
    import uvicorn

    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_for(predicate: Any, what: str, *, limit: float = 60.0, every: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy (a readiness wait, not a timing assertion)."""
    import time

    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(every)


# --- the backends of converted models (ctranslate2, onnxruntime-genai) ---------------------------------


def save_sharpened(model: Any, tokenizer: Any, folder: Path, factor: float) -> Path:
    """Save ``model`` with its attention projections scaled by ``factor``: peaked attention, so a batching or
    masking bug changes the greedy tokens of a tiny random model."""
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                weight.mul_(factor)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def serving_converted(folder: Path, backend: str, jobs: Path) -> Iterator[tuple[str, Any]]:
    """``genlab serve --backend BACKEND --model FOLDER`` on loopback (the app builds and converts as the CLI
    does): its base URL and its backend."""
    from genlab.serving.app import create_app
    from genlab.serving.config import ServeConfig

    config = ServeConfig(model=str(folder), backend=backend, embedder="hashing-32", max_batch=4, threads=1,
                         jobs_db=jobs / "jobs.sqlite", record_lineage=False)  # fmt: skip
    app = create_app(config)
    with running_server(app) as url:
        yield url, app.state.serving.backend


def chat(client: Any, model: str, text: str, **options: Any) -> Any:
    """One user message through the openai client's chat completions."""
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **options)
