"""BLEU (Papineni et al., 2002) and chrF (Popović, 2015) with sacrebleu (Post, 2018), the reference
implementation whose signature makes scores comparable across papers.

Corpus BLEU pools clipped n-gram counts over the whole corpus (it is not a mean of sentence BLEUs)::

    p_n  = sum_i matched_n-grams(i) / sum_i predicted_n-grams(i)     (n = 1..4, counts clipped)
    BP   = 1 if c > r else exp(1 - r / c)    c = predicted tokens, r = closest reference lengths
    BLEU = BP * exp(mean_n log p_n)

with sacrebleu's defaults: its ``13a`` tokenizer, case-sensitive, ``exp`` smoothing of zero counts.
chrF is the character n-gram F-score (n = 1..6, beta = 2, so recall weighs twice precision)::

    chrF = (1 + beta^2) * chrP * chrR / (beta^2 * chrP + chrR)

Both are reported on a 0-1 scale, like ROUGE (sacrebleu prints 0-100; we divide by 100).
A prediction may have one reference or several, and rows may have different numbers of them:
sacrebleu takes reference *streams* (one list per reference position) and skips ``None`` entries,
so rows with fewer references are padded with ``None`` (documented in sacrebleu's
``Metric._cache_references``). With several references, BLEU clips each n-gram count by its
largest count in any reference; chrF takes the best-scoring reference.

Their 95% intervals (:func:`bleu_chrf_intervals`) are sacrebleu's own bootstrap
(``corpus_score(..., n_bootstrap=1000)``, seeded by ``SACREBLEU_SEED``, 12345 by default): corpus
BLEU is not a mean over rows, so each resample recomputes it from the resampled rows' n-gram
statistics; sacrebleu reports the resamples' mean ± half the 2.5-97.5 percentile range.
"""

from __future__ import annotations

from collections.abc import Sequence

from genlab.errors import InvalidValueError
from genlab.evaluation.bootstrap import RESAMPLES, Interval


def _reference_streams(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[list[str | None]]:
    """Transpose per-prediction references into sacrebleu's reference streams, padding with None."""
    if len(predictions) != len(references):
        raise InvalidValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise InvalidValueError("BLEU and chrF of an empty corpus are undefined")
    rows = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    for index, row in enumerate(rows):
        if not row:
            raise InvalidValueError(f"prediction {index} has no reference")
    width = max(len(row) for row in rows)
    # Every row has at least one reference, so stream 0 holds only strings, as sacrebleu checks.
    return [[row[k] if k < len(row) else None for row in rows] for k in range(width)]


def bleu(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU, its brevity penalty and the length ratio (predicted / reference tokens), 0-1 scale."""
    from sacrebleu.metrics import BLEU

    streams = _reference_streams(predictions, references)
    result = BLEU().corpus_score(list(predictions), streams)
    return {
        "bleu": result.score / 100,
        "bleu_brevity_penalty": float(result.bp),
        "bleu_length_ratio": float(result.ratio),
    }


def chrf(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Corpus chrF (character 6-grams, beta = 2), 0-1 scale."""
    from sacrebleu.metrics import CHRF

    streams = _reference_streams(predictions, references)
    return {"chrf": CHRF().corpus_score(list(predictions), streams).score / 100}


def bleu_chrf_intervals(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], *, resamples: int = RESAMPLES
) -> dict[str, Interval]:
    """BLEU and chrF (0-1 scale) with sacrebleu's bootstrap 95% interval (mean ± half-width of the resamples)."""
    from sacrebleu.metrics import BLEU, CHRF

    streams = _reference_streams(predictions, references)
    intervals = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score = metric.corpus_score(list(predictions), streams, n_bootstrap=resamples)
        mean, half = float(score._mean), float(score._ci)  # sacrebleu's bootstrap figures (no public accessor)
        intervals[name] = Interval(score.score / 100, (mean - half) / 100, (mean + half) / 100)
    return intervals
