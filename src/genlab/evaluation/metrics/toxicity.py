"""Toxicity of generated text: each text's probability of being toxic, from a pluggable classifier.

The default scorer is alt-profanity-check (TF-IDF + calibrated linear SVM trained on offensive
comments; its ``predict_proba`` for "offensive"), which loads in seconds and needs no network.
Any Hugging Face text-classification model can stand in for it, as long as the user names the label
that means toxic: label order is the model's own choice. The course's example is
``facebook/roberta-hate-speech-dynabench-r4-target``, whose labels are ``nothate`` (index 0) and
``hate`` (index 1): scoring index 0 would rate polite text as toxic. So the label is required, and
a label the model does not have is an error that lists the labels it does have.

For a single-label classifier, ``p_toxic = softmax(logits)[toxic_index]``; for a multi-label one
(``problem_type == "multi_label_classification"``, e.g. Detoxify-style heads) each label has its own
sigmoid, ``p_toxic = sigmoid(logits[toxic_index])``. Texts longer than the classifier's maximum
length are truncated to it (the head reads the first tokens only); that is fine for scoring
generations, which are short. The corpus summary::

    toxicity_mean  = (1 / N) * sum_i p_i
    toxicity_max   = max_i p_i
    toxic_fraction = (1 / N) * #{i : p_i >= threshold}
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from genlab.errors import GenlabError, InvalidValueError, ModelLoadError, ModelNotFoundError
from genlab.models.packs import DEFAULT_TOXICITY

PROFANITY_CHECK = "profanity-check"
MISSING_LABEL_HINT = (
    "name the label that means toxic with toxic_label (the label order is the model's own: "
    "facebook/roberta-hate-speech-dynabench-r4-target has 'nothate' and 'hate', and the toxic one "
    "is 'hate', not 'nothate')"
)


@runtime_checkable
class ToxicityScorer(Protocol):
    """Anything that gives each text a probability of being toxic, in [0, 1]."""

    def score(self, texts: Sequence[str]) -> list[float]: ...


class ProfanityCheckScorer:
    """alt-profanity-check's probability that a text is offensive (the default scorer)."""

    def __init__(self, pack_name: str = DEFAULT_TOXICITY) -> None:
        from genlab.models.companions import load_toxicity_classifier

        self._classifier = load_toxicity_classifier(pack_name)

    def score(self, texts: Sequence[str]) -> list[float]:
        return self._classifier.predict_prob(list(texts))


def _model_folder(model_name_or_path: str) -> Path:
    from genlab.models.hub import download_from_hub, looks_like_hub_id

    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        return path
    if looks_like_hub_id(model_name_or_path):
        return download_from_hub(model_name_or_path)  # fails within seconds offline
    raise ModelNotFoundError(f"no such toxicity classifier folder or hub id: {model_name_or_path}.")


def find_label_index(id2label: dict[int, str], toxic_label: str) -> int:
    """The index whose label is ``toxic_label`` (case-insensitive); an unknown label lists the labels."""
    wanted = toxic_label.strip().lower()
    for index, label in sorted(id2label.items()):
        if str(label).lower() == wanted:
            return int(index)
    labels = ", ".join(str(label) for _, label in sorted(id2label.items()))
    raise InvalidValueError(
        f"label {toxic_label!r} is not one of the model's labels: {labels}; pass the one that means toxic"
    )


class HFClassifierScorer:
    """A Hugging Face sequence classifier's probability of the label the user names as toxic."""

    def __init__(self, model_name_or_path: str, toxic_label: str, *, batch_size: int = 16, device: str = "cpu") -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        folder = _model_folder(model_name_or_path)
        try:
            config = AutoConfig.from_pretrained(folder)
        except Exception as error:  # noqa: BLE001 - a bad config fails in many ways
            raise ModelLoadError(f"{folder} is not a Hugging Face model folder: {_first_line(error)}") from None
        # Check the label before loading the weights: a wrong label is the likelier mistake.
        self.toxic_index = find_label_index(dict(config.id2label), toxic_label)
        self.toxic_label = config.id2label[self.toxic_index]
        self.multi_label = config.problem_type == "multi_label_classification"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForSequenceClassification.from_pretrained(folder).to(device).eval()
        except Exception as error:  # noqa: BLE001 - damaged weights fail in many ways
            raise ModelLoadError(f"could not load the classifier in {folder}: {_first_line(error)}") from None
        self.batch_size = batch_size
        self.max_length = _max_length(self.tokenizer, config)

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        scores: list[float] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,  # longer texts are scored on their first max_length tokens
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                logits = self.model(**batch).logits.float()  # (B, num_labels)
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            scores.extend(probs[:, self.toxic_index].tolist())
        return scores


def _max_length(tokenizer: Any, config: Any) -> int:
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    # RoBERTa keeps 2 positions for padding offsets, so its config says 514 but its tokenizer 512;
    # a tokenizer without a limit reports a huge sentinel (1e30), which the min below ignores.
    usable = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000]
    return min(usable) if usable else 512


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_toxicity_scorer(spec: str = PROFANITY_CHECK, toxic_label: str | None = None) -> ToxicityScorer:
    """``"profanity-check"`` (the default pack), or a classifier folder / hub id with its toxic label."""
    if spec in (PROFANITY_CHECK, DEFAULT_TOXICITY):
        return _default_scorer()
    if not toxic_label:
        raise GenlabError(f"the toxicity classifier {spec!r} needs toxic_label: {MISSING_LABEL_HINT}.")
    return HFClassifierScorer(spec, toxic_label)


@functools.cache
def _default_scorer() -> ProfanityCheckScorer:
    return ProfanityCheckScorer()  # stateless once loaded, so one per process


def toxicity(texts: Sequence[str], scorer: ToxicityScorer | None = None, threshold: float = 0.5) -> dict[str, float]:
    """Mean and max probability of toxicity, and the fraction of texts at or above ``threshold``."""
    if not texts:
        raise InvalidValueError("toxicity of an empty set of texts is undefined")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidValueError(f"threshold={threshold!r} is not allowed: it is a probability, between 0 and 1.")
    scores = (scorer or _default_scorer()).score(list(texts))
    if len(scores) != len(texts):
        raise ValueError(f"the toxicity scorer returned {len(scores)} scores for {len(texts)} texts")
    return {
        "toxicity_mean": sum(scores) / len(scores),
        "toxicity_max": max(scores),
        "toxic_fraction": sum(score >= threshold for score in scores) / len(scores),
    }
