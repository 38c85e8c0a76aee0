"""Perplexity of a corpus under a causal or encoder-decoder LM (Jelinek et al., 1977).

Perplexity is the exponential of the mean negative log-likelihood per predicted token, pooled over
the whole corpus (token-weighted, so a long text counts more than a short one; it is *not* the mean
of per-text perplexities, which would let a few short texts dominate)::

    NLL = -(1 / T) * sum_i sum_t log p(x_{i,t} | x_{i,<t})      T = predicted tokens in the corpus
    PPL = exp(NLL)

Causal models: each text is tokenized as the tokenizer does by default (with its BOS if it adds
one); every token after the first is predicted, so a text of n tokens contributes n - 1. Texts are
padded on the right and the padding is masked out of attention and of the sum, so the result does
not depend on ``batch_size`` (right padding keeps each text's positions starting at 0).
Encoder-decoder models: the perplexity of the targets given the sources, ``p(y_t | y_<t, x)``;
every target token is predicted (the decoder starts from its start token), pad positions carry the
label -100 and are ignored.

Texts longer than ``max_length`` tokens (default: the model's context window) are refused with a
:class:`PromptTooLongError` naming the text's index; there is no sliding window, so every token is
scored with its whole text as context and a number never silently mixes two context lengths.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from genlab.errors import InvalidValueError, PromptTooLongError
from genlab.models.load import LoadedModel

IGNORE_INDEX = -100  # the label PyTorch's cross_entropy skips


def perplexity(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    sources: Sequence[str] | None = None,
    batch_size: int = 8,
    max_length: int | None = None,
) -> dict[str, float]:
    """``{"perplexity", "nll_per_token", "tokens"}`` of ``texts`` (the targets, given ``sources``, for seq2seq)."""
    if not texts:
        raise InvalidValueError("perplexity of an empty set of texts is undefined")
    if batch_size < 1:
        raise InvalidValueError(f"batch_size={batch_size!r} is not allowed: it must be at least 1.")
    window = loaded.context_window
    limit = window if max_length is None else max_length
    if not 1 < limit <= window:
        raise InvalidValueError(f"max_length={max_length!r} is not allowed: it must be between 2 and the context window ({window}).")
    if loaded.is_encoder_decoder:
        if sources is None:
            raise InvalidValueError(
                "an encoder-decoder model scores targets given sources: pass sources= (one per text)."
            )
        if len(sources) != len(texts):
            raise InvalidValueError(f"{len(texts)} texts but {len(sources)} sources")
        nll, tokens = _seq2seq_nll(loaded, texts, sources, batch_size, limit)
    else:
        if sources is not None:
            raise InvalidValueError("sources= is only for encoder-decoder models; a causal model scores texts alone.")
        nll, tokens = _causal_nll(loaded, texts, batch_size, limit)
    if tokens == 0:
        raise InvalidValueError("no text has a token to predict (each causal text needs at least 2 tokens)")
    mean = nll / tokens
    return {"perplexity": math.exp(mean) if mean < 700 else math.inf, "nll_per_token": mean, "tokens": tokens}


def _token_ids(tokenizer: Any, texts: Sequence[str], limit: int, what: str, *, target: bool = False) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens); longer than ``limit`` is refused."""
    encoded = tokenizer(text_target=list(texts)) if target else tokenizer(list(texts))
    ids = [list(row) for row in encoded["input_ids"]]
    for index, row in enumerate(ids):
        if len(row) > limit:
            raise PromptTooLongError(
                f"{what} {index} has {len(row)} tokens, more than the {limit} that can be scored at once; "
                "shorten or split it."
            )
    return ids


def _batches(ids: list[list[int]], batch_size: int) -> Iterator[list[int]]:
    # Sorting by length only saves padding: masked padding does not change any score.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _pad_right(rows: list[list[int]], value: int) -> tuple[Any, Any]:
    """(ids, mask), each (B, T_max): rows padded on the right with ``value``, mask 1 on real tokens."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[b, : len(row)] = 1
    return ids, mask


def _summed_nll(logits: Any, labels: Any) -> tuple[float, int]:
    """Sum of -log p(label) over positions whose label is not IGNORE_INDEX, and their count."""
    import torch.nn.functional as F

    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),  # (B*T, V), fp32 even for a bf16 model
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return float(nll.double().sum()), int((labels != IGNORE_INDEX).sum())


def _causal_nll(loaded: LoadedModel, texts: Sequence[str], batch_size: int, limit: int) -> tuple[float, int]:
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    ids = _token_ids(tokenizer, texts, limit, "text")
    scorable = [row for row in ids if len(row) >= 2]  # a 1-token text predicts nothing
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for batch in _batches(scorable, batch_size):
        input_ids, mask = _pad_right([scorable[i] for i in batch], pad_id)  # (B, T)
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits  # (B, T, V)
        # Position t predicts token t+1; padded targets are ignored.
        labels = input_ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX).to(device)  # (B, T-1)
        nll, tokens = _summed_nll(logits[:, :-1], labels)
        total_nll, total_tokens = total_nll + nll, total_tokens + tokens
    return total_nll, total_tokens


def _seq2seq_nll(
    loaded: LoadedModel, targets: Sequence[str], sources: Sequence[str], batch_size: int, limit: int
) -> tuple[float, int]:
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    source_ids = _token_ids(tokenizer, sources, limit, "source")
    for index, row in enumerate(source_ids):
        if not row:
            raise InvalidValueError(f"source {index} is empty: an encoder needs at least one token")
    target_ids = _token_ids(tokenizer, targets, limit, "target", target=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    kept = [i for i, row in enumerate(target_ids) if row]  # an empty target predicts nothing
    total_nll, total_tokens = 0.0, 0
    for batch in _batches([target_ids[i] for i in kept], batch_size):
        rows = [kept[b] for b in batch]
        input_ids, mask = _pad_right([source_ids[i] for i in rows], pad_id)  # (B, S)
        labels, _ = _pad_right([target_ids[i] for i in rows], IGNORE_INDEX)  # (B, T)
        with torch.inference_mode():
            # The model builds decoder inputs by shifting labels right (and -100 back to pad).
            logits = model(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            ).logits  # (B, T, V)
        nll, tokens = _summed_nll(logits, labels.to(device))
        total_nll, total_tokens = total_nll + nll, total_tokens + tokens
    return total_nll, total_tokens
