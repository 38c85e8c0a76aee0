"""Adapters in peft's format: saved with the base they belong to, loaded, swapped, merged.

An adapter folder is exactly what ``PeftModel.save_pretrained`` writes (``adapter_config.json`` and
``adapter_model.safetensors``, loadable by plain peft), plus the tokenizer and ``genlab_adapter.json``:
the method, the run that trained it, and the **fingerprint of its base** — the SHA-256 of the files
the base was loaded from (or of its weights, for a model built in memory). Loading an adapter onto a
base with another fingerprint is refused: a LoRA delta added to the wrong weights gives a model that
loads without error and then writes nonsense (fingerprints: :mod:`genlab.models.fingerprint`).
Adapters made elsewhere carry no fingerprint and are only checked by peft's shapes.

Usable outside genlab: ``adapter_config.json``'s ``base_model_name_or_path`` names something plain
peft opens offline (``AutoPeftModelForCausalLM.from_pretrained(folder)``): the absolute folder a
pack or a local model was loaded from (a pack's folder in genlab's model store), or the hub id for a
hub model (peft then reads the hub cache, or the hub). ``genlab_adapter.json`` keeps what genlab
loads the base by (``base_model``: the pack name, hub id or path), where it came from
(``base_source``: pack, hub, folder, gguf) and the folder it was read from (``base_path``): if the
model store moves, genlab still finds a pack's base by its name, and only plain peft needs the new
folder. Adapters saved before this (a pack name in ``base_model_name_or_path``) load in genlab as
ever: genlab loads the base itself and never reads that field.

Uses:
- :func:`merge_adapter` — evaluation: a LoRA adapter merged into a copy of the base
  (``merge_and_unload``), so generation runs at the base model's speed; a prompt-tuning adapter
  becomes the :class:`LoadedModel`'s ``soft_prompt``.
- :func:`load_adapters` — several task adapters on one base, swapped by name (peft's multi-adapter
  ``load_adapter``/``set_adapter``): one copy of the base weights in memory.
- :func:`merge_and_save` — a standalone model folder with the adapter merged in.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, ModelNotFoundError
from genlab.models.fingerprint import base_fingerprint, weights_hash
from genlab.models.load import LoadedModel

ADAPTER_RECORD = "genlab_adapter.json"
MODEL_RECORD = "genlab_model.json"
PROMPT_LEARNING = ("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING")


class AdapterMismatchError(GenlabError):
    """An adapter loaded onto a base other than the one it was trained on."""


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter folder says about itself."""

    path: Path
    name: str
    peft_type: str  # LORA, PROMPT_TUNING, ...
    method: str  # the genlab method that trained it ("" for adapters made elsewhere)
    base_model: str  # the base's name (or path) when it was trained
    base_fingerprint: str | None  # None: made elsewhere, cannot be checked
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_prompt_learning(self) -> bool:
        return self.peft_type in PROMPT_LEARNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "peft_type": self.peft_type, "method": self.method,
            "base_model": self.base_model, "base_fingerprint": self.base_fingerprint, "run_id": self.run_id,
            **self.extra,
        }  # fmt: skip


# --- saving and reading ------------------------------------------------------------------------------


def save_adapter(
    peft_model: Any,
    folder: str | Path,
    *,
    base: LoadedModel,
    method: str,
    run_id: str | None,
    extra: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
) -> Path:
    """Write ``peft_model``'s adapter to ``folder`` atomically, with the tokenizer and genlab's record."""
    from genlab.atomic import atomic_directory

    folder = Path(folder)
    fingerprint = fingerprint or base_fingerprint(base)
    for config in peft_model.peft_config.values():  # plain peft reloads the base from here
        config.base_model_name_or_path = peft_base_location(base)
    record = {**base_record(base), "base_fingerprint": fingerprint, "method": method, "run_id": run_id, **dict(extra or {})}
    # peft's "auto" looks the base up on the hub to see whether the vocabulary grew (a warning offline,
    # and a pack name is no hub id): say it directly -- embeddings are saved when the adapter trains them.
    trains_embeddings = any(
        "embed" in str(getattr(config, "target_modules", None) or "") + str(getattr(config, "modules_to_save", None) or "")
        for config in peft_model.peft_config.values()
    )
    with atomic_directory(folder) as tmp:
        peft_model.save_pretrained(str(tmp), save_embedding_layers=trains_embeddings)
        base.tokenizer.save_pretrained(str(tmp))
        (tmp / ADAPTER_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder


def _base_location(base: LoadedModel) -> str:
    """How genlab loads the base again: a local folder or file as an absolute path, else its name (a pack, a hub id)."""
    if base.source.kind in ("folder", "gguf") and base.path is not None:
        return str(Path(base.path).resolve())
    if base.source.kind == "hub":
        return base.source.location  # the hub id, also for a catalog name
    return base.name


def peft_base_location(base: LoadedModel) -> str:
    """What plain peft opens as the base (``base_model_name_or_path``): a hub model's id, else the absolute
    folder (or GGUF file) its weights were read from -- for a pack, its folder in genlab's model store."""
    if base.source.kind == "hub":
        return base.source.location
    if base.path is not None:
        return str(Path(base.path).resolve())
    return base.name  # built in memory: nothing on disk to point at


def base_record(base: LoadedModel) -> dict[str, Any]:
    """The base as ``genlab_adapter.json`` records it: how genlab loads it, where it came from, the folder read."""
    return {
        "base_model": _base_location(base),
        "base_source": base.source.kind if base.path is not None else "memory",
        "base_path": str(Path(base.path).resolve()) if base.path is not None else None,
        "base_hub_id": base.source.location if base.source.kind == "hub" else None,
    }


def adapters_dir() -> Path:
    from genlab.home import genlab_home

    return genlab_home() / "adapters"


def resolve_adapter(adapter: str | Path) -> Path:
    """A folder path, or the name of an adapter under ``$GENLAB_HOME/adapters``."""
    path = Path(adapter).expanduser()
    if path.is_dir():
        return path.resolve()
    named = adapters_dir() / str(adapter)
    if not path.is_absolute() and named.is_dir():
        return named.resolve()
    known = ", ".join(_adapter_folder_names()) or "none yet"
    raise ModelNotFoundError(f"no adapter {str(adapter)!r}: not a folder, nor a name in {adapters_dir()} (known: {known}).")


def read_adapter_info(adapter: str | Path) -> AdapterInfo:
    folder = resolve_adapter(adapter)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(f"{folder} is not a peft adapter folder (it has no adapter_config.json).")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        record = json.loads((folder / ADAPTER_RECORD).read_text(encoding="utf-8")) if (folder / ADAPTER_RECORD).is_file() else {}
    except json.JSONDecodeError as error:
        raise ModelNotFoundError(f"{folder} holds a corrupt adapter record: {error}.") from None
    known = {"base_model", "base_fingerprint", "method", "run_id"}  # the rest (base_source, base_path, ...) stays in extra
    return AdapterInfo(
        path=folder,
        name=folder.name,
        peft_type=str(config.get("peft_type", "")),
        method=str(record.get("method", "")),
        base_model=str(record.get("base_model") or config.get("base_model_name_or_path") or ""),
        base_fingerprint=record.get("base_fingerprint"),
        run_id=record.get("run_id"),
        extra={k: v for k, v in record.items() if k not in known},
    )


def _adapter_folder_names() -> list[str]:
    folder = adapters_dir()
    if not folder.is_dir():
        return []
    return sorted(
        child.name
        for child in folder.iterdir()
        if child.is_dir() and (child / "adapter_config.json").is_file() and not child.name.startswith(".")
    )


def list_adapters() -> list[AdapterInfo]:
    """The adapters under ``$GENLAB_HOME/adapters``, by name."""
    return [read_adapter_info(adapters_dir() / name) for name in _adapter_folder_names()]


def check_base(info: AdapterInfo, loaded: LoadedModel) -> None:
    """Refuse an adapter whose recorded base is not ``loaded``."""
    if info.base_fingerprint is None:
        return
    if info.base_fingerprint.startswith("weights-sha256:"):  # trained on a model built in memory: compare weights
        actual = "weights-sha256:" + weights_hash(loaded.model)
    else:
        actual = base_fingerprint(loaded)
    if actual != info.base_fingerprint:
        raise AdapterMismatchError(
            f"adapter {info.name!r} was trained on {info.base_model!r} ({_short(info.base_fingerprint)}), "
            f"not on {loaded.name!r} ({_short(actual)}): load it onto the base it was trained on."
        )


def _short(fingerprint: str) -> str:
    kind, _, digest = fingerprint.partition(":")
    return f"{kind}:{digest[:12]}"


# --- using adapters ----------------------------------------------------------------------------------


def merge_adapter(loaded: LoadedModel, adapter: str | Path) -> LoadedModel:
    """A new LoadedModel: ``loaded`` with the adapter applied; ``loaded`` itself is left unchanged.

    LoRA (and other weight adapters) are merged into a copy of the weights; a prompt-tuning adapter
    becomes the soft prompt the engine reads before every prompt.
    """
    info = read_adapter_info(adapter)
    check_base(info, loaded)
    name = f"{loaded.name}+{info.name}"
    if info.is_prompt_learning:
        _check_soft_prompt_fits(info, loaded)
        return replace(loaded, name=name, soft_prompt=read_soft_prompt(info))
    from peft import PeftModel

    base = copy.deepcopy(loaded.model)  # merging changes weights; the caller's model stays the base
    try:
        merged = PeftModel.from_pretrained(base, str(info.path)).merge_and_unload()
    except Exception as error:  # noqa: BLE001 - a mismatched adapter fails with shape/key errors
        raise AdapterMismatchError(
            f"the adapter in {info.path} does not fit {loaded.name!r}: {str(error).splitlines()[0]}"
        ) from None
    merged.eval()
    # The weights are no longer those in ``loaded.path``: no path, so a fingerprint hashes the merged weights.
    return replace(loaded, name=name, model=merged, path=None)


def _check_soft_prompt_fits(info: AdapterInfo, loaded: LoadedModel) -> None:
    if loaded.is_encoder_decoder:  # the engine reads soft prompts on decoder-only models only
        raise GenlabError(
            f"adapter {info.name!r} is a soft prompt ({info.peft_type}), which genlab applies to decoder-only "
            f"models only, and {loaded.name!r} is an encoder-decoder model."
        )


def read_soft_prompt(info: AdapterInfo) -> Any:
    """A prompt-tuning adapter's (virtual tokens, hidden size) embeddings."""
    from peft.utils import load_peft_weights

    if info.peft_type != "PROMPT_TUNING":
        raise GenlabError(f"adapter {info.name!r} is {info.peft_type}; only prompt tuning is read as a soft prompt.")
    weights = load_peft_weights(str(info.path), device="cpu")
    return weights["prompt_embeddings"].detach()


def merge_and_save(loaded: LoadedModel, adapter: str | Path, output: str | Path) -> Path:
    """Merge a weight adapter into ``loaded`` and save the result as a standalone model folder."""
    from genlab.atomic import atomic_directory

    info = read_adapter_info(adapter)
    if info.is_prompt_learning:
        raise GenlabError(
            f"adapter {info.name!r} is a soft prompt ({info.peft_type}), which has no weights to merge: "
            "use it with its base (genlab eval --adapter) instead."
        )
    output = Path(output).expanduser()
    if output.exists():
        raise GenlabError(f"{output} exists already: choose a new folder for the merged model.")
    merged = merge_adapter(loaded, info.path)
    with atomic_directory(output) as tmp:
        merged.model.save_pretrained(str(tmp))
        loaded.tokenizer.save_pretrained(str(tmp))
        record = {
            "base_model": _base_location(loaded), "base_fingerprint": info.base_fingerprint,
            "method": f"{info.method or 'peft'}+merge",
            "adapter": str(info.path), "adapter_run_id": info.run_id,
        }  # fmt: skip
        (tmp / MODEL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return output


class AdapterSet:
    """Several weight adapters (LoRA, ...) on one base, one active at a time; swapped by name.

    The base model is wrapped in place (one copy of its weights); ``use(None)`` gives the plain base
    with every adapter layer switched off. Soft-prompt adapters are kept as embeddings and applied by
    the engine, so they mix freely with LoRA adapters.
    """

    def __init__(self, loaded: LoadedModel, adapters: Mapping[str, str | Path]) -> None:
        self.base = loaded
        self._soft_prompts: dict[str, Any] = {}
        self._peft: Any = None
        self._active: str | None = None
        for name, path in adapters.items():
            self._add(name, read_adapter_info(path))
        self.use(None)

    @property
    def wraps_model(self) -> bool:
        """True once a weight adapter (LoRA, ...) wrapped the base in a peft model."""
        return self._peft is not None

    def add(self, name: str, adapter: str | Path) -> None:
        """Put one more adapter on the base (its name must be new); the active adapter stays as it is."""
        if name in self.names:
            raise GenlabError(f"adapter name {name!r} is taken in this set: choose another name.")
        self._add(name, read_adapter_info(adapter))
        if self._active is None and self._peft is not None:
            self._peft.base_model.disable_adapter_layers()  # newly wrapped layers start enabled: keep the base plain

    def soft_prompt(self, name: str) -> Any:
        """Adapter ``name``'s soft prompt (virtual tokens, hidden size), None for a weight adapter."""
        return self._soft_prompts.get(name)

    def remove(self, name: str) -> None:
        """Take adapter ``name`` off the base; the base's weights are left as they were."""
        if name not in self.names:
            raise ModelNotFoundError(f"no adapter {name!r} in this set (it has: {', '.join(self.names) or 'none'}).")
        if self._soft_prompts.pop(name, None) is None:
            if len(self._peft.peft_config) == 1:  # the last weight adapter: peft's layers come off the base
                self._peft.base_model.unload()
                self._peft = None
            else:
                self._peft.delete_adapter(name)
        if self._active == name:
            self.use(None)

    def _add(self, name: str, info: AdapterInfo) -> None:
        check_base(info, self.base)
        if info.is_prompt_learning:
            _check_soft_prompt_fits(info, self.base)
            self._soft_prompts[name] = read_soft_prompt(info)
            return
        from peft import PeftModel

        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self.base.model, str(info.path), adapter_name=name)
            else:
                self._peft.load_adapter(str(info.path), adapter_name=name)
        except Exception as error:  # noqa: BLE001
            if self._peft is not None and name in self._peft.peft_config:  # half-injected: take it off again
                self._peft.delete_adapter(name)
            raise AdapterMismatchError(f"adapter {name!r} does not fit {self.base.name!r}: {str(error).splitlines()[0]}") from None
        self._peft.eval()

    @property
    def names(self) -> list[str]:
        weights = list(self._peft.peft_config) if self._peft is not None else []
        return sorted([*weights, *self._soft_prompts])

    @property
    def active(self) -> str | None:
        return self._active

    def use(self, name: str | None) -> LoadedModel:
        """Activate adapter ``name`` (None: the base) and return the model to generate with."""
        if name is not None and name not in self.names:
            raise ModelNotFoundError(f"no adapter {name!r} in this set (it has: {', '.join(self.names)}).")
        soft_prompt = self._soft_prompts.get(name) if name is not None else None
        model = self.base.model
        if self._peft is not None:
            lora = self._peft.base_model
            if name is None or name in self._soft_prompts:
                lora.disable_adapter_layers()
            else:
                lora.enable_adapter_layers()
                self._peft.set_adapter(name)
            model = self._peft
        self._active = name
        label = self.base.name if name is None else f"{self.base.name}+{name}"
        return replace(self.base, name=label, model=model, soft_prompt=soft_prompt)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


def load_adapters(loaded: LoadedModel, adapters: Mapping[str, str | Path]) -> AdapterSet:
    """Put several adapters on ``loaded``'s model (wrapped in place) to swap between by name."""
    return AdapterSet(loaded, adapters)
