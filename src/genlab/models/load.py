"""Load a text generator (causal or encoder-decoder LM) from wherever the user points.

``load_model(name)`` accepts, in this order of resolution:

1. a model pack name (``smollm2-135m-instruct``): converted once to safetensors, then loaded;
2. a local path: a Hugging Face model folder (``config.json`` inside) or a ``.gguf`` file;
3. a catalog name (``flan-t5-base``) or any hub id (``owner/name``): downloaded from the hub, or
   taken from the local hub cache; offline this fails within seconds with one sentence.

Anything else is an unknown name, answered with the closest names in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genlab.errors import InvalidValueError, ModelLoadError, ModelNotFoundError
from genlab.models.catalog import find_hub_card, unknown_model_error
from genlab.models.hub import download_from_hub, looks_like_hub_id
from genlab.models.optimized import loader_for
from genlab.models.packs import PACKS, ensure_converted

SourceKind = Literal["pack", "folder", "gguf", "hub"]
DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    location: str  # pack name, filesystem path, or hub id


@dataclass
class LoadedModel:
    """A generator ready to use: the transformers model and tokenizer, and where they came from."""

    name: str
    source: ModelSource
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    path: Path | None  # the local folder or file of the weights (hashed for lineage)
    soft_prompt: Any = None  # prompt tuning: (virtual tokens, hidden size) vectors read before every prompt

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def num_parameters(self) -> int:
        return int(self.model.num_parameters())

    @property
    def context_window(self) -> int:
        config = self.model.config
        for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, attribute, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 512


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith(".gguf") or "\\" in name


def resolve_model_source(name: str) -> ModelSource:
    if name in PACKS:
        return ModelSource("pack", name)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource("folder", str(path))
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{path} is a file but not a .gguf model; pass a model folder or a GGUF file.")
        return ModelSource("gguf", str(path))
    if _looks_like_path(name):
        raise ModelNotFoundError(f"no such model folder or file: {path}.")
    card = find_hub_card(name)
    if card is not None:
        return ModelSource("hub", card.source)
    if looks_like_hub_id(name):
        return ModelSource("hub", name)
    raise unknown_model_error(name)


def torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise InvalidValueError(f"dtype={dtype!r} is not allowed: choose one of {', '.join(DTYPES)}.")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def load_model(name: str, *, dtype: str = "fp32") -> LoadedModel:
    """Load a causal or encoder-decoder LM and its tokenizer (see the module docstring for ``name``)."""
    source = resolve_model_source(name)
    wanted = torch_dtype(dtype)
    if source.kind == "pack":
        pack = PACKS[source.location]
        if pack.kind != "generator":
            raise ModelLoadError(f"{pack.name!r} is an {pack.kind} pack, not a text generator.")
        folder = ensure_converted(pack)
        model, tokenizer = load_folder(folder, wanted)
        path: Path = folder
    elif source.kind == "gguf":
        from genlab.models.gguf import load_gguf

        path = Path(source.location)
        model, tokenizer = load_gguf(path, wanted)
    elif source.kind == "folder":
        path = Path(source.location)
        model, tokenizer = load_folder(path, wanted)
    else:
        path = download_from_hub(source.location)
        model, tokenizer = load_folder(path, wanted)
    _ensure_pad_token(tokenizer, model)
    model.eval()
    return LoadedModel(name=name, source=source, model=model, tokenizer=tokenizer, path=path)


def load_folder(folder: Path, dtype: Any) -> tuple[Any, Any]:
    """Load a Hugging Face model folder as a causal LM or, if its config says so, a seq2seq LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a 0.4 s load needs no progress bar

    optimized_loader = loader_for(folder)  # a quantised folder stored in its runtime's own form
    if optimized_loader is not None:
        return optimized_loader(folder, dtype)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} has no config.json, so it is not a Hugging Face model folder.")
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"{folder}/config.json cannot be read: {_first_line(error)}") from None
    # The saved class names say what the weights are for; a bare encoder (BertModel) generates nothing.
    architectures = getattr(config, "architectures", None) or []
    generator_heads = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
    declared_generator = not architectures or any(a.endswith(generator_heads) for a in architectures)
    if config.is_encoder_decoder and declared_generator:
        auto = AutoModelForSeq2SeqLM
    elif config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and declared_generator:
        auto = AutoModelForCausalLM
    else:
        raise ModelLoadError(
            f"the model in {folder} is a {config.model_type!r}, which is not a text generator "
            "(genlab generates with causal and encoder-decoder LMs)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = auto.from_pretrained(folder, dtype=dtype)
    except Exception as error:  # noqa: BLE001 - damaged weights fail in many ways
        raise ModelLoadError(f"could not load the model in {folder}: {_first_line(error)}") from None
    return model, tokenizer


def _ensure_pad_token(tokenizer: Any, model: Any) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
