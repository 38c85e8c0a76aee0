"""The model catalog: cards for the packs on this machine and the hub models users pick most.

Pack cards are built from the pack's static facts plus what is measured from its weights (parameter
count, architecture dims, context window). Hub cards come from ``hub_catalog.yaml``, with the counts
their authors publish; ``offline`` says whether a copy is already in the local hub cache.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import yaml

from genlab.errors import ModelNotFoundError
from genlab.models.card import ModelCard
from genlab.models.packs import PACKS, ModelPack, measure_pack

HUB_CATALOG = Path(__file__).with_name("hub_catalog.yaml")


@functools.cache
def hub_cards() -> tuple[ModelCard, ...]:
    entries = yaml.safe_load(HUB_CATALOG.read_text())
    return tuple(ModelCard(**entry) for entry in entries)


def pack_card(pack: ModelPack) -> ModelCard:
    installed = pack.is_installed()
    measured = measure_pack(pack) if installed else {}
    return ModelCard(
        name=pack.name,
        source=f"pack:{pack.pip_spec}",
        params=measured.get("params"),
        params_source="measured",
        context_window=measured.get("context_window"),
        shape=measured.get("shape"),
        offline=installed,
        **pack.card,
    )


def _hub_copy_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed cache is just "not cached"
        return False


def list_cards() -> list[ModelCard]:
    cards = [pack_card(pack) for pack in PACKS.values()]
    cards += [card.model_copy(update={"offline": _hub_copy_cached(card.source)}) for card in hub_cards()]
    return cards


def catalog_names() -> list[str]:
    return list(PACKS) + [card.name for card in hub_cards()]


def closest_names(name: str, n: int = 3) -> list[str]:
    names = catalog_names()
    close = difflib.get_close_matches(name.lower(), names, n=n, cutoff=0.4)
    # Also offer names that contain what was typed ("smol" -> every SmolLM2).
    close += [c for c in names if name.lower() in c and c not in close]
    return close[:n]


def unknown_model_error(name: str) -> ModelNotFoundError:
    suggestions = closest_names(name)
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    return ModelNotFoundError(
        f"unknown model {name!r}{hint} (`genlab models list` shows the catalog; a hub id looks like owner/name)."
    )


def find_hub_card(name: str) -> ModelCard | None:
    return next((card for card in hub_cards() if name in (card.name, card.source)), None)


def get_card(name: str) -> ModelCard:
    """The card for a pack name, a catalog name or a catalogued hub id."""
    pack = PACKS.get(name)
    if pack is not None:
        return pack_card(pack)
    card = find_hub_card(name)
    if card is None:
        raise unknown_model_error(name)
    return card.model_copy(update={"offline": _hub_copy_cached(card.source)})
