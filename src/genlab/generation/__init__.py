"""Generation: validated settings and the batched engine every stage generates through."""

from genlab.generation.engine import Choice, Completion, GenerationEngine
from genlab.generation.settings import GenerationSettings

__all__ = ["Choice", "Completion", "GenerationEngine", "GenerationSettings"]
