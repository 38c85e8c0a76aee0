"""Where a trained result goes: a peft adapter, or a whole model folder, each with its base's fingerprint.

Adapters go to ``$GENLAB_HOME/adapters/<name>`` and models to ``$GENLAB_HOME/finetuned/<name>``
(or another parent the method names); a name already taken gets ``-2``, ``-3``, ... so no earlier
result is ever overwritten. Both are written atomically and record the base they came from (how
genlab loads it, the folder read, its weights' fingerprint taken before training) and the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genlab.atomic import atomic_directory
from genlab.home import genlab_home
from genlab.models.adapters import MODEL_RECORD, base_record, save_adapter
from genlab.models.load import LoadedModel


def free_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``, ... if taken."""
    candidate, number = parent / name, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{name}-{number}"
    return candidate


def save_model(
    model: Any, loaded: LoadedModel, folder: Path, *, method: str, run_id: str, fingerprint: str, extra: Mapping[str, Any]
) -> Path:
    """A standalone model folder (config, safetensors, tokenizer, ``genlab_model.json``) loadable by genlab and transformers."""
    model.eval()
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        record = {**base_record(loaded), "base_fingerprint": fingerprint, "method": method, "run_id": run_id, **extra}
        (tmp / MODEL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder


def save_trained(
    model: Any,
    loaded: LoadedModel,
    *,
    name: str,
    adapter: bool,
    method: str,
    run_id: str,
    fingerprint: str,
    extra: Mapping[str, Any],
) -> Path:
    """Save ``model`` (a peft model when ``adapter``) under a free ``name``; return its folder."""
    if adapter:
        folder = free_folder(genlab_home() / "adapters", name)
        return save_adapter(model, folder, base=loaded, method=method, run_id=run_id, extra=extra, fingerprint=fingerprint)
    folder = free_folder(genlab_home() / "finetuned", name)
    return save_model(model, loaded, folder, method=method, run_id=run_id, fingerprint=fingerprint, extra=extra)
