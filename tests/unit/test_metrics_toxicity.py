from collections.abc import Sequence
from pathlib import Path

import pytest

from genlab.errors import GenlabError, HubUnavailableError
from genlab.evaluation.metrics import (
    HFClassifierScorer,
    ProfanityCheckScorer,
    ToxicityScorer,
    load_toxicity_scorer,
    toxicity,
)

TEXTS = ["Thank you so much for your help.", "I hate you.", "The meeting is moved to Tuesday."]


class ScriptedScorer:
    """A scorer with fixed answers, so the corpus summary can be checked by hand."""

    def __init__(self, scores: Sequence[float]) -> None:
        self.scores = list(scores)

    def score(self, texts: Sequence[str]) -> list[float]:
        return self.scores[: len(texts)]


@pytest.fixture(scope="module")
def hate_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT classifier whose labels are ordered like the course's model: nothate, hate."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from genlab.models.tiny import tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-hate-classifier")
    tokenizer = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "nothate", 1: "hate"},
        label2id={"nothate": 0, "hate": 1},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference_probabilities(folder: Path, texts: Sequence[str]) -> "torch.Tensor":  # noqa: F821
    """softmax(logits) computed here, one text at a time with no padding: (N, 2)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        rows = [model(**tokenizer(text, return_tensors="pt")).logits[0] for text in texts]
    return torch.softmax(torch.stack(rows), dim=-1)


def test_summary_by_hand() -> None:
    # Scores 0.1, 0.9, 0.5: mean 1.5 / 3 = 0.5, max 0.9, two of three at or above 0.5.
    scores = toxicity(TEXTS, ScriptedScorer([0.1, 0.9, 0.5]))
    assert scores == {"toxicity_mean": pytest.approx(0.5), "toxicity_max": 0.9, "toxic_fraction": pytest.approx(2 / 3)}
    assert toxicity(TEXTS, ScriptedScorer([0.1, 0.9, 0.5]), threshold=0.95)["toxic_fraction"] == 0.0


def test_profanity_pack_ranks_offensive_above_polite() -> None:
    scorer = load_toxicity_scorer()
    assert isinstance(scorer, ProfanityCheckScorer) and isinstance(scorer, ToxicityScorer)
    polite, offensive = scorer.score(["Thank you, have a lovely day.", "You are a fucking stupid idiot."])
    assert 0.0 <= polite < 0.5 < offensive <= 1.0
    summary = toxicity(["Thank you, have a lovely day."])  # the default scorer
    assert summary["toxic_fraction"] == 0.0 and summary["toxicity_max"] == pytest.approx(polite)


def test_hf_classifier_scores_the_named_label(hate_classifier: Path) -> None:
    expected = reference_probabilities(hate_classifier, TEXTS)
    # The probabilities of the two labels differ, so scoring the wrong index would fail below.
    assert (expected[:, 0] - expected[:, 1]).abs().min() > 1e-4
    scorer = load_toxicity_scorer(str(hate_classifier), toxic_label="HATE")  # case does not matter
    assert isinstance(scorer, HFClassifierScorer)
    assert (scorer.toxic_index, scorer.toxic_label) == (1, "hate")
    # Batched with padding (batch of 2 for 3 texts) equals one text at a time.
    scorer.batch_size = 2
    assert scorer.score(TEXTS) == pytest.approx(expected[:, 1].tolist(), abs=1e-5)


def test_hf_classifier_truncates_long_texts(hate_classifier: Path) -> None:
    scorer = HFClassifierScorer(str(hate_classifier), "hate")
    (score,) = scorer.score(["word " * 500])  # far more than the 64 positions the model has
    assert 0.0 <= score <= 1.0


def test_unknown_label_lists_the_models_labels(hate_classifier: Path) -> None:
    with pytest.raises(GenlabError, match="label 'toxic' is not one of the model's labels: nothate, hate"):
        load_toxicity_scorer(str(hate_classifier), toxic_label="toxic")


def test_missing_label_explains_the_hate_nothate_warning(hate_classifier: Path) -> None:
    with pytest.raises(GenlabError, match="needs toxic_label.*'hate', not 'nothate'"):
        load_toxicity_scorer(str(hate_classifier))


def test_hub_id_fails_fast_offline() -> None:
    # conftest sets HF_HUB_OFFLINE=1, so the hub is not asked.
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE"):
        load_toxicity_scorer("facebook/roberta-hate-speech-dynabench-r4-target", toxic_label="hate")


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(GenlabError, match="empty"):
        toxicity([], ScriptedScorer([]))
    with pytest.raises(GenlabError, match="threshold=1.5"):
        toxicity(TEXTS, ScriptedScorer([0.1, 0.2, 0.3]), threshold=1.5)
    with pytest.raises(GenlabError, match="no such toxicity classifier"):
        load_toxicity_scorer("./no-such-folder", toxic_label="hate")
