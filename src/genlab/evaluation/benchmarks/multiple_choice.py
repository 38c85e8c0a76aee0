"""Multiple-choice scoring by log-likelihood, as lm-evaluation-harness does it.

For a context c (the prompt) and a continuation x = (x_1..x_T) (a choice, after its prefix), the
score is the log-likelihood of the continuation given the context (the harness's ``loglikelihood``
request, ``lm_eval/api/model.py``; ``HFLM._loglikelihood_tokens``):

    LL(x | c) = Σ_t log p(x_t | c, x_<t)

The predicted choice maximises LL (``acc``). ``acc_norm`` divides each LL by the number of
*characters* of the choice text, as the harness's ``ConfigurableTask.process_results`` does
(``completion_len = np.array([float(len(i)) for i in choices])``), so long choices are not
penalised for having more tokens. Probabilities over the choices are softmax(LL), and the
confidence of a prediction (for calibration) is the probability of the predicted choice.

Context and continuation are tokenised separately and their ids concatenated, so the split between
them is exact (the continuation without the tokenizer's special tokens; the context with them, so a
BOS or T5's ``</s>`` is kept). Pairs are scored in batches:

- decoder-only: the sequence c + x without its last token, left-padded, with an attention mask and
  position ids counted from each row's first real token; the logits of the last context token onward
  predict x (only those last T positions go through the LM head);
- encoder-decoder: c goes to the encoder (right-padded, masked), x is the decoder's labels (padded
  with -100 on the right; the decoder is causal, so padding after x changes nothing before it).

Padding never reaches a real token, so a score does not depend on the batch size or on what shares
its batch (tested down to 1e-5 on a model whose attention is sharpened so that a leak would show).
The log-softmax and the sums are taken in float64, so the only batch-shape effect left is float32
rounding inside the model (about 1e-7 of a log-likelihood on a tiny model, 1e-6 on SmolLM2-135M).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from genlab.errors import InvalidValueError, PromptTooLongError
from genlab.models.load import LoadedModel


@dataclass(frozen=True)
class ChoiceScores:
    """One question's scores over its choices."""

    loglikelihoods: tuple[float, ...]  # LL of each choice given the context
    probabilities: tuple[float, ...]  # softmax over the choices' LLs
    predicted: int  # argmax LL (acc); the first on a tie, as numpy's argmax
    predicted_norm: int  # argmax LL / len(choice text) (acc_norm)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]


@dataclass(frozen=True)
class _Pair:
    index: int  # position in the caller's list
    context: list[int]
    continuation: list[int]


def score_choices(
    loaded: LoadedModel,
    contexts: Sequence[str],
    choices: Sequence[Sequence[str]],
    *,
    choice_prefix: str = " ",
    batch_size: int = 8,
) -> list[ChoiceScores]:
    """Score every choice of every question: ``contexts[i]`` is question i's prompt, ``choices[i]`` its choices."""
    if len(contexts) != len(choices):
        raise ValueError(f"{len(contexts)} contexts but {len(choices)} lists of choices")
    requests = [(context, choice_prefix + choice) for context, options in zip(contexts, choices) for choice in options]
    flat = loglikelihoods(loaded, requests, batch_size=batch_size)
    results, start = [], 0
    for options in choices:
        lls = tuple(flat[start : start + len(options)])
        start += len(options)
        normalised = [ll / len(choice) for ll, choice in zip(lls, options, strict=True)]
        results.append(ChoiceScores(lls, _softmax(lls), _argmax(lls), _argmax(normalised)))
    return results


def loglikelihoods(loaded: LoadedModel, requests: Sequence[tuple[str, str]], *, batch_size: int = 8) -> list[float]:
    """LL(continuation | context) for each (context, continuation) pair, in the order given."""
    import torch

    if batch_size < 1:
        raise InvalidValueError(f"batch_size={batch_size!r} is not allowed: use 1 or more.")
    pairs = [_encode(loaded, index, context, continuation) for index, (context, continuation) in enumerate(requests)]
    # Longest first, so each batch holds similar lengths (little padding); the order cannot change a score.
    ordered = sorted(pairs, key=lambda p: -(len(p.context) + len(p.continuation)))
    scores = [0.0] * len(pairs)
    score_batch = _score_encoder_decoder if loaded.is_encoder_decoder else _score_decoder_only
    with torch.inference_mode():
        for start in range(0, len(ordered), batch_size):
            batch = ordered[start : start + batch_size]
            for pair, score in zip(batch, score_batch(loaded, batch), strict=True):
                scores[pair.index] = score
    return scores


def _encode(loaded: LoadedModel, index: int, context: str, continuation: str) -> _Pair:
    tokenizer = loaded.tokenizer
    context_ids = list(tokenizer(context, add_special_tokens=True)["input_ids"])
    continuation_ids = list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    if not continuation_ids:
        raise InvalidValueError(f"the continuation {continuation!r} has no tokens: a choice cannot be empty.")
    if not loaded.is_encoder_decoder:
        if not context_ids:  # the first continuation token needs something to be predicted from
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            context_ids = [start]
        length = len(context_ids) + len(continuation_ids) - 1
        if length > loaded.context_window:
            raise PromptTooLongError(
                f"a prompt and choice take {length} tokens, more than the model's context window of "
                f"{loaded.context_window} tokens (use fewer shots)."
            )
    elif len(context_ids) > loaded.context_window:
        raise PromptTooLongError(
            f"a prompt has {len(context_ids)} tokens, more than the encoder's window of {loaded.context_window} tokens."
        )
    return _Pair(index, context_ids, continuation_ids)


def _pad_id(loaded: LoadedModel) -> int:
    tokenizer = loaded.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _score_decoder_only(loaded: LoadedModel, batch: list[_Pair]) -> list[float]:
    import torch

    sequences = [(p.context + p.continuation)[:-1] for p in batch]  # the last token predicts nothing we need
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(batch), width), _pad_id(loaded), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):  # left padding: every row ends in the last column
        input_ids[i, width - len(sequence) :] = torch.tensor(sequence)
        mask[i, width - len(sequence) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # each row counts from its first real token
    keep = max(len(p.continuation) for p in batch)
    out = loaded.model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep
    )
    logprobs = out.logits.double().log_softmax(dim=-1)  # (B, keep, V): the last `keep` positions
    scores = []
    for i, pair in enumerate(batch):
        n = len(pair.continuation)
        target = torch.tensor(pair.continuation).unsqueeze(-1)  # (n, 1)
        scores.append(float(logprobs[i, keep - n :].gather(-1, target).sum()))
    return scores


def _score_encoder_decoder(loaded: LoadedModel, batch: list[_Pair]) -> list[float]:
    import torch

    width = max(len(p.context) for p in batch)
    steps = max(len(p.continuation) for p in batch)
    input_ids = torch.full((len(batch), width), _pad_id(loaded), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), steps), -100, dtype=torch.long)  # -100: ignored, shifted in as padding
    for i, pair in enumerate(batch):
        input_ids[i, : len(pair.context)] = torch.tensor(pair.context)
        mask[i, : len(pair.context)] = 1
        labels[i, : len(pair.continuation)] = torch.tensor(pair.continuation)
    out = loaded.model(input_ids=input_ids, attention_mask=mask, labels=labels, use_cache=False)
    logprobs = out.logits.double().log_softmax(dim=-1)  # (B, steps, V)
    scores = []
    for i, pair in enumerate(batch):
        n = len(pair.continuation)
        target = torch.tensor(pair.continuation).unsqueeze(-1)
        scores.append(float(logprobs[i, :n].gather(-1, target).sum()))
    return scores


def _softmax(values: Sequence[float]) -> tuple[float, ...]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return tuple(e / total for e in exps)


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))  # the first index on a tie

