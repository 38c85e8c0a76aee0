"""Several references per row (DialogSum's test split has three): ROUGE takes the best one per row, as
rouge-score's ``score_multi`` does; BLEU uses them all, as sacrebleu's reference streams do."""

import json
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from genlab.errors import GenlabError
from genlab.evaluation.metrics import bleu, rouge
from genlab.evaluation.run import evaluate
from genlab.generation import GenerationSettings
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model

# DialogSum test-split format: one dialogue, three human summaries (written for this test).
ROWS = [
    {"fname": "test_1", "dialogue": "#Person1#: Is the train to Leeds late?\n#Person2#: Yes, twenty minutes.",
     "summary1": "#Person2# tells #Person1# the Leeds train is twenty minutes late.",
     "summary2": "The train to Leeds is delayed by twenty minutes.",
     "summary3": "#Person1# learns the train is late."},
    {"fname": "test_2", "dialogue": "#Person1#: Can I pay by card?\n#Person2#: Only cash, sorry.",
     "summary1": "#Person1# wants to pay by card but the shop takes only cash.",
     "summary2": "The shop accepts cash only.",
     "summary3": "#Person2# says they only take cash."},
    {"fname": "test_3", "dialogue": "#Person1#: What time is the meeting?\n#Person2#: Three o'clock.",
     "summary1": "The meeting is at three.",
     "summary2": "#Person2# tells #Person1# the meeting starts at three o'clock.",
     "summary3": "#Person1# asks about the meeting time."},
]  # fmt: skip
PREDICTIONS = ["The Leeds train is late by twenty minutes.", "The shop takes only cash.", "The meeting is at three."]
FIELDS = ("summary1", "summary2", "summary3")


def test_rouge_takes_the_best_reference_as_score_multi_does() -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    references = [[row[f] for f in FIELDS] for row in ROWS]
    by_hand = [scorer.score_multi(refs, prediction) for refs, prediction in zip(references, PREDICTIONS)]
    scores = rouge(PREDICTIONS, references)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert scores[name] == pytest.approx(sum(s[name].fmeasure for s in by_hand) / len(by_hand))
    # The best reference is not always the first: scoring against summary1 alone gives less.
    assert scores["rouge1"] > rouge(PREDICTIONS, [refs[0] for refs in references])["rouge1"]


def test_bleu_uses_every_reference() -> None:
    references = [[row[f] for f in FIELDS] for row in ROWS]
    streams = [[row[f] for row in ROWS] for f in FIELDS]  # sacrebleu's layout: one stream per reference position
    assert bleu(PREDICTIONS, references)["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDICTIONS, streams).score / 100)
    assert bleu(PREDICTIONS, references)["bleu"] > bleu(PREDICTIONS, [refs[0] for refs in references])["bleu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return load_model(str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "causal", seed=2)))


@pytest.fixture
def test_file(tmp_path: Path) -> str:
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return str(path)


def test_eval_keeps_every_reference_and_scores_against_them(tiny, test_file: str) -> None:
    settings = GenerationSettings(max_new_tokens=6)
    result = evaluate(tiny, test_file, metrics=["rouge", "bleu"], target_field=",".join(FIELDS), settings=settings)
    rows = [json.loads(line) for line in Path(result.predictions).read_text().splitlines()]
    assert [r["references"] for r in rows] == [[row[f] for f in FIELDS] for row in ROWS]
    # Re-scored by hand from the predictions file: rouge-score's score_multi and sacrebleu's streams.
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    by_hand = [scorer.score_multi(r["references"], r["prediction"].strip())["rouge1"].fmeasure for r in rows]
    assert result.metrics["rouge1"] == pytest.approx(sum(by_hand) / len(by_hand))
    assert [r["scores"]["rouge1"] for r in rows] == pytest.approx(by_hand)
    streams = [[r["references"][k] for r in rows] for k in range(3)]
    assert result.metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu([r["prediction"] for r in rows], streams).score / 100)
    for name in ("rouge1", "bleu", "chrf"):
        low, high = result.intervals[name]
        assert low <= result.metrics[name] + 1e-9 and result.metrics[name] - 1e-9 <= high


def test_a_missing_reference_is_named(tiny, tmp_path: Path) -> None:
    path = tmp_path / "short.jsonl"
    path.write_text(json.dumps({k: v for k, v in ROWS[0].items() if k != "summary3"}) + "\n")
    with pytest.raises(GenlabError, match="reference field 'summary3'"):
        evaluate(tiny, str(path), target_field=",".join(FIELDS))
    with pytest.raises(GenlabError, match="target_field"):
        evaluate(tiny, str(path), target_field="summary1,,summary2")
