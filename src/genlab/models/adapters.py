"""Adapters (peft's format) applied to a loaded base model.

For evaluation and serving an adapter is merged into a copy of the base weights
(``merge_and_unload``), so generation runs at the base model's speed with no adapter layers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genlab.errors import GenlabError, ModelNotFoundError
from genlab.models.load import LoadedModel


def merge_adapter(loaded: LoadedModel, adapter: str | Path) -> LoadedModel:
    """A new LoadedModel: ``loaded``'s weights with the peft adapter at ``adapter`` merged in."""
    import copy

    from peft import PeftModel

    folder = Path(adapter).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{folder} is not a peft adapter folder (it has no adapter_config.json).")
    base = copy.deepcopy(loaded.model)  # merging changes weights; the caller's model stays the base
    try:
        merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    except Exception as error:  # noqa: BLE001 - a mismatched adapter fails with shape/key errors
        raise GenlabError(f"the adapter in {folder} does not fit {loaded.name!r}: {str(error).splitlines()[0]}") from None
    merged.eval()
    return replace(loaded, name=f"{loaded.name}+{folder.name}", model=merged)
