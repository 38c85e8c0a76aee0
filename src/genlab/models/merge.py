"""`genlab adapters merge`: an adapter merged into its base and saved as a standalone model, with lineage.

The merge is a run of kind ``merge``: it reads the base model and the adapter and writes the merged
model folder, so ``genlab runs show`` walks from the merged model back to the fine-tuning run that
trained the adapter. The base defaults to the one the adapter records; the adapter's base
fingerprint is checked before any weight is touched (:func:`genlab.models.adapters.check_base`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError
from genlab.lineage import LineageStore, record_run
from genlab.models.adapters import merge_and_save, read_adapter_info
from genlab.models.load import load_model


@dataclass(frozen=True)
class MergeResult:
    run_id: str
    output: str  # the merged model folder
    adapter: str  # the adapter folder
    model: str  # the base, as loaded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_adapter_into_model(
    adapter: str | Path, output: str | Path, *, model: str | None = None, store: LineageStore | None = None
) -> MergeResult:
    """Merge ``adapter`` (a folder or a name under ``$GENLAB_HOME/adapters``) into ``model`` and save it.

    Everything a user can get wrong (a soft prompt, an existing output folder, no recorded base) is
    refused before the base is loaded and before a run is recorded. The merge is recorded into ``store``
    (a lifecycle step's), or into the default store when none is given.
    """
    info = read_adapter_info(adapter)
    if info.is_prompt_learning:
        raise GenlabError(
            f"adapter {info.name!r} is a soft prompt ({info.peft_type}), which has no weights to merge: "
            "use it with its base (genlab eval --adapter) instead."
        )
    output = Path(output).expanduser().resolve()
    if output.exists():
        raise GenlabError(f"{output} exists already: choose a new folder for the merged model.")
    base = model or info.base_model
    if not base:
        raise GenlabError(f"adapter {info.name!r} does not record its base model: pass it with --model.")
    config = {"adapter": str(info.path), "model": base, "output": str(output)}
    with record_run("merge", config, store=store) as run:
        loaded = load_model(base)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": loaded.name})
        run.use(info.path, "adapter", {"base": loaded.name, "peft_type": info.peft_type, "method": info.method})
        merge_and_save(loaded, info.path, output)
        run.log_artifact(output, "model", {"base_model": loaded.name, "adapter": info.name})
    return MergeResult(run_id=run.id, output=str(output), adapter=str(info.path), model=loaded.name)
