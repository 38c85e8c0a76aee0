"""The select stage: model cards, loading from packs/folders/GGUF/hub, and memory/compute estimates."""

from genlab.models.card import ArchitectureShape, ModelCard
from genlab.models.catalog import get_card, list_cards
from genlab.models.load import LoadedModel, load_model, resolve_model_source
from genlab.models.packs import DEFAULT_EMBEDDER, DEFAULT_GENERATOR, DEFAULT_TOXICITY, PACKS

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_GENERATOR",
    "DEFAULT_TOXICITY",
    "PACKS",
    "ArchitectureShape",
    "LoadedModel",
    "ModelCard",
    "get_card",
    "list_cards",
    "load_model",
    "resolve_model_source",
]
