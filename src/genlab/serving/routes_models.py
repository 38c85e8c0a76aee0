"""The models a server answers to, and adapters that come and go: vLLM's routes, in vLLM's shapes.

    GET  /v1/models                 every id: the base, its adapters, the embedder
    GET  /v1/models/{id}            one of them
    POST /v1/load_lora_adapter      {"lora_name": NAME, "lora_path": FOLDER} -> 200 "Success: LoRA adapter 'NAME' added successfully."
    POST /v1/unload_lora_adapter    {"lora_name": NAME}                      -> 200 "Success: LoRA adapter 'NAME' removed successfully."

A model card carries vLLM's ``root`` (the base: its weights' folder, or its id when it was built in
memory; an adapter: its folder), ``parent`` (an adapter's base id, null for the base) and
``max_model_len`` (tokens the id reads at most: prompt + answer; a soft prompt takes its share).

Loading is off unless the server was started with ``--adapter-root FOLDER``: a client holding the
key may then load adapters from folders under FOLDER only. ``lora_path`` is taken relative to the
root unless absolute, and resolved (symlinks followed, ``..`` folded) before the check, so neither
escapes it. Status codes as vLLM's: 400 for a bad request (a name taken, a path outside the root, an
adapter for another base), 404 for no adapter at the path or no loaded adapter of that name.
Unloading an adapter that requests use waits for them (see :mod:`genlab.serving.genlab_backend`).
An adapter loaded while the endpoint is recorded in lineage becomes an input of its ``serve`` run,
so the endpoint's lineage names every adapter it ever answered with.

"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from genlab.errors import GenlabError, ModelNotFoundError
from genlab.lineage import LineageStore, Run
from genlab.serving.api_errors import ApiError
from genlab.serving.auth import require_api_key
from genlab.serving.responses import ModelCard, ModelList
from genlab.serving.state import ServerState

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


class LoadLoRAAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_name: str
    lora_path: str  # a folder under --adapter-root (relative to it, or absolute)


class UnloadLoRAAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_name: str


def _state(request: Request) -> ServerState:
    return request.app.state.serving


@router.get("/models", response_model=ModelList)
def list_model_cards(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": model_cards(_state(request))}


@router.get("/models/{model_id:path}", response_model=ModelCard)
def get_model_card(model_id: str, request: Request) -> dict[str, Any]:
    for card in model_cards(_state(request)):
        if card["id"] == model_id:
            return card
    raise ApiError(404, f"the model {model_id!r} does not exist on this server.", param="model", code="model_not_found")


def model_cards(state: ServerState) -> list[dict[str, Any]]:
    backend = state.backend
    ids = backend.models()
    base, adapters = ids[0], ids[1:]
    folders: dict[str, Any] = dict(getattr(backend, "adapters", {}))
    model_path = getattr(backend, "model_path", None)
    window_for = getattr(backend, "window_for", lambda _: backend.context_window)
    common = {"object": "model", "created": state.started, "owned_by": "genlab"}
    cards = [{
        **common, "id": base, "root": str(model_path) if model_path is not None else base, "parent": None,
        "max_model_len": int(window_for(base)), "kind": "generator",
    }]  # fmt: skip
    cards += [{
        **common, "id": name, "root": str(folders.get(name, name)), "parent": base,
        "max_model_len": int(window_for(name)), "kind": "adapter",
    } for name in adapters]  # fmt: skip
    embedder = state.embeddings.model_id
    cards.append({**common, "id": embedder, "root": embedder, "parent": None, "kind": "embedder"})
    return cards


@router.post("/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(body: LoadLoRAAdapterRequest, request: Request) -> PlainTextResponse:
    state = _state(request)
    add = _adapter_changes(state)[0]
    name = _checked_name(body.lora_name)
    if name in state.backend.models() or name == state.embeddings.model_id:
        raise ApiError(400, f"The lora adapter {name!r} has already been loaded: unload it first, or choose another name.", param="lora_name")
    assert state.config.adapter_root is not None
    folder = adapter_folder_under(state.config.adapter_root, body.lora_path)
    if not folder.is_dir():
        raise ApiError(404, f"No adapter found at lora_path {body.lora_path!r}: there is no folder {folder}.", param="lora_path", code="adapter_not_found")
    try:
        await anyio.to_thread.run_sync(add, name, folder)
        await anyio.to_thread.run_sync(_record_loaded, state, name, folder)
    except ModelNotFoundError as error:
        raise ApiError(404, str(error), param="lora_path", code="adapter_not_found") from None
    except GenlabError as error:  # a name taken meanwhile, an adapter for another base, a corrupt folder
        raise ApiError(400, str(error), param="lora_path") from None
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


@router.post("/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, request: Request) -> PlainTextResponse:
    remove = _adapter_changes(_state(request))[1]
    try:
        await anyio.to_thread.run_sync(remove, body.lora_name)  # waits for the requests using it
    except ModelNotFoundError:
        raise ApiError(404, f"The lora adapter {body.lora_name!r} cannot be found.", param="lora_name", code="adapter_not_found") from None
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")


def _record_loaded(state: ServerState, name: str, folder: Path) -> None:
    """The adapter as an input of the endpoint's ``serve`` run, when there is one."""
    if state.lineage_run_id is None:
        return
    with LineageStore() as store:
        Run(store, state.lineage_run_id).use(folder, "adapter", {"adapter": name, "loaded": "at run time"})


def adapter_folder_under(root: Path, requested: str) -> Path:
    """``requested`` (relative to ``root`` unless absolute) resolved; a 400 naming it when it lies outside ``root``."""
    path = Path(requested).expanduser()
    resolved = (path if path.is_absolute() else root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ApiError(
            400,
            f"lora_path {requested!r} resolves to {resolved}, outside this server's adapter root {root}: "
            "adapters load only from folders under it.",
            param="lora_path",
        )
    return resolved


def _checked_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "/" in name:
        raise ApiError(400, f"lora_name {name!r} is not allowed: it must be non-empty, without spaces or '/'.", param="lora_name")
    return name


def _adapter_changes(state: ServerState) -> tuple[Any, Any]:
    """(add, remove) of the backend; a 400 saying how to turn loading on when it is off."""
    if state.config.adapter_root is None:
        raise ApiError(
            400,
            "loading adapters at run time is off on this server: start it with --adapter-root FOLDER "
            "to load adapters from folders under FOLDER.",
            code="adapter_loading_disabled",
        )
    add, remove = getattr(state.backend, "add_adapter", None), getattr(state.backend, "remove_adapter", None)
    if add is None or remove is None:
        raise ApiError(400, f"the {state.backend.name} backend cannot load adapters at run time; the genlab backend can.")
    return add, remove
