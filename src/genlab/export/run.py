"""`genlab export gguf`: a model, or a model + adapter, to GGUF (and an Ollama Modelfile), as a lineage run.

What goes in (``source``): a model pack (``smollm2-135m-instruct``), a Hugging Face model folder, or a
peft adapter (a folder, or a name under ``$GENLAB_HOME/adapters``) — merged into its base on the way
(genlab's own :func:`genlab.models.adapters.merge_adapter`, which checks the base's fingerprint), or,
with ``lora=True``, written as a GGUF LoRA adapter beside its base's GGUF (or on ``base_gguf``, a base
exported before, so one base file serves several adapters).

What comes out: one folder, written whole or not at all (:func:`genlab.atomic.atomic_directory`),
holding the GGUF(s) and the ``Modelfile``. The run (kind ``export``) records the model and adapter it
read and the files it wrote, each by content hash, so ``genlab runs show`` walks from a GGUF back to
the fine-tuning run behind it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_directory, atomic_write_text
from genlab.errors import GenlabError, InvalidValueError, ModelNotFoundError
from genlab.export.gguf_lora import write_lora_gguf
from genlab.export.gguf_model import write_model_gguf
from genlab.export.modelfile import (
    modelfile_text,
    ollama_create_command,
    translate_chat_template,
)
from genlab.export.quantize import (
    check_quant,
    llama_cpp_available,
    needs_llama_cpp,
    quantize_with_llama_cpp,
)
from genlab.lineage import LineageStore, record_run
from genlab.models.adapters import (
    AdapterInfo,
    check_base,
    merge_adapter,
    read_adapter_info,
)
from genlab.models.gguf import check_gguf_file
from genlab.models.load import LoadedModel, load_model, resolve_model_source
from genlab.models.packs import PACKS


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how; checked before any model is loaded."""

    source: str  # a pack, a model folder, or an adapter (folder or name)
    output: Path  # a new (or empty) folder
    quant: str = "f16"  # f32, f16, q8_0 (gguf's writer) or a llama.cpp type such as q4_k_m
    lora: bool = False  # an adapter as a GGUF LoRA adapter instead of merged
    base: str | None = None  # an adapter's base (default: the one it records)
    base_gguf: Path | None = None  # with lora: the base's GGUF exported before (else it is exported too)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quant", check_quant(self.quant))
        object.__setattr__(self, "output", Path(self.output).expanduser().resolve())
        if self.output.exists() and (not self.output.is_dir() or any(self.output.iterdir())):
            raise InvalidValueError(f"output={str(self.output)!r} exists and is not an empty folder: choose a new folder.")
        if needs_llama_cpp(self.quant) and not llama_cpp_available():
            raise InvalidValueError(
                f"quant={self.quant!r} is made by llama.cpp's quantizer, which needs llama-cpp-python "
                "(`make setup-llamacpp` builds it); f32, f16 and q8_0 need nothing more."
            )
        if self.base_gguf is not None:
            if not self.lora:
                raise InvalidValueError("base_gguf is for a LoRA export (--lora): a merged export writes its own GGUF.")
            object.__setattr__(self, "base_gguf", Path(self.base_gguf).expanduser().resolve())
            check_gguf_file(self.base_gguf)


@dataclass(frozen=True)
class ExportResult:
    run_id: str
    output: str  # the folder
    model_gguf: str  # the GGUF Ollama's FROM names (the base's, for a LoRA export)
    adapter_gguf: str | None  # the GGUF LoRA adapter (lora exports)
    modelfile: str
    quant: str
    sha256: dict[str, str]  # file name -> content hash, inputs and outputs (as lineage records them)
    ollama_command: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _adapter_or_none(source: str) -> AdapterInfo | None:
    """The adapter ``source`` names, or None when it names a model (a pack, a model folder, a GGUF)."""
    path = Path(source).expanduser()
    if source in PACKS or (path.is_dir() and not (path / "adapter_config.json").is_file()) or path.is_file():
        return None
    try:
        return read_adapter_info(source)
    except ModelNotFoundError:
        if path.is_dir():
            raise
        return None  # not an adapter name: load_model says what is wrong with it as a model


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def _model_label(loaded: LoadedModel) -> str:
    """A short name for file names: the pack or hub name, or the folder's (file's) own name."""
    if loaded.source.kind in ("folder", "gguf"):
        return _safe_name(Path(loaded.source.location).stem if loaded.source.kind == "gguf" else Path(loaded.source.location).name)
    return _safe_name(loaded.name.rsplit("/", 1)[-1])


def export_gguf(request: ExportRequest, *, store: LineageStore | None = None) -> ExportResult:
    """Export ``request.source`` (see :class:`ExportRequest`); the run is recorded before this returns."""
    adapter = _adapter_or_none(request.source)
    if request.lora and adapter is None:
        raise InvalidValueError(f"--lora writes an adapter as a GGUF LoRA adapter, and {request.source!r} is a model, not an adapter.")
    if adapter is not None and adapter.is_prompt_learning:
        raise GenlabError(f"adapter {adapter.name!r} is a soft prompt ({adapter.peft_type}), which llama.cpp cannot apply.")
    base_name = request.base or (adapter.base_model if adapter is not None else request.source)
    if not base_name:
        raise InvalidValueError(f"adapter {adapter.name!r} does not record its base model: pass it with --base.")  # type: ignore[union-attr]
    resolve_model_source(base_name)  # an unknown model is one sentence before any run is recorded
    config = {"source": request.source, "quant": request.quant, "lora": request.lora, "base": base_name,
              "base_gguf": str(request.base_gguf) if request.base_gguf else None, "output": str(request.output)}  # fmt: skip
    hashes: dict[str, str] = {}
    with record_run("export", config, store=store) as run:
        loaded = load_model(base_name)
        if loaded.path is not None:
            hashes[Path(loaded.path).name] = run.use(loaded.path, "model", {"model": loaded.name}).sha256
        if adapter is not None:
            hashes[adapter.name] = run.use(adapter.path, "adapter", {"base": loaded.name, "method": adapter.method}).sha256
        if request.base_gguf is not None:
            hashes[request.base_gguf.name] = run.use(request.base_gguf, "gguf", {"role": "base"}).sha256
        name = _safe_name(adapter.name) if adapter is not None else _model_label(loaded)
        files = _write_export_folder(request, loaded, adapter, name)
        for role, path in files.items():
            if role == "model" and request.base_gguf is not None:
                continue  # read, not written: recorded as an input above
            kind = {"model": "gguf", "adapter": "gguf-adapter", "modelfile": "modelfile"}[role]
            hashes[path.name] = run.log_artifact(path, kind, {"quant": request.quant, "source": request.source}).sha256
            if role != "modelfile":
                run.log_metric(f"{role}_gguf_bytes", float(path.stat().st_size))
    return ExportResult(
        run_id=run.id, output=str(request.output), model_gguf=str(files["model"]),
        adapter_gguf=str(files["adapter"]) if "adapter" in files else None, modelfile=str(files["modelfile"]),
        quant=request.quant, sha256=hashes, ollama_command=ollama_create_command(name, str(request.output)),
    )  # fmt: skip


def _write_export_folder(request: ExportRequest, loaded: LoadedModel, adapter: AdapterInfo | None, name: str) -> dict[str, Path]:
    """Write the GGUF(s) and the Modelfile into ``request.output`` in one rename; return their final paths."""
    files: dict[str, Path] = {}
    with atomic_directory(request.output) as tmp:
        if adapter is not None and request.lora:
            check_base(adapter, loaded)  # the same refusal as loading the adapter onto the wrong base
            adapter_file = write_lora_gguf(adapter.path, loaded.model.config, tmp / f"{name}-lora.gguf", name=name)
            files["adapter"] = request.output / adapter_file.name
            model = loaded
            model_name = _model_label(loaded)
        else:
            model = merge_adapter(loaded, adapter.path) if adapter is not None else loaded
            model_name = name
        if request.base_gguf is not None:
            files["model"] = request.base_gguf
        else:
            model_file = _write_model(model, tmp, f"{model_name}-{request.quant}.gguf", request.quant, model_name)
            files["model"] = request.output / model_file.name
        from_path = files["model"].name if files["model"].parent == request.output else str(files["model"])
        adapter_name = files["adapter"].name if "adapter" in files else None
        text = modelfile_text(translate_chat_template(loaded.tokenizer), f"./{from_path}" if "/" not in from_path else from_path,
                              f"./{adapter_name}" if adapter_name else None)  # fmt: skip
        atomic_write_text(tmp / "Modelfile", text)
        files["modelfile"] = request.output / "Modelfile"
    return files


def _write_model(model: LoadedModel, folder: Path, file_name: str, quant: str, name: str) -> Path:
    target = folder / file_name
    if not needs_llama_cpp(quant):
        return write_model_gguf(model.model, model.tokenizer, target, quant=quant, name=name)
    staging = folder / f".{file_name}.f16"  # llama.cpp quantises from an f16 GGUF
    write_model_gguf(model.model, model.tokenizer, staging, quant="f16", name=name)
    quantize_with_llama_cpp(staging, target, quant)
    staging.unlink()
    return target
