"""Logit bias and OpenAI's frequency and presence penalties, as logits processors.

OpenAI's formula (API reference, "Frequency and presence penalties"), for the logit of token j:

    mu[j] <- mu[j] - c[j] * alpha_frequency - [c[j] > 0] * alpha_presence

where ``c[j]`` counts how often token j was generated so far in this answer (the prompt does not
count, as in OpenAI's and vLLM's servers). ``logit_bias`` adds its value to the logit of each listed
token (OpenAI's range -100..100). Both act on the raw logits, before any repetition penalty, the
structured-output mask, temperature, top-k and top-p (see :func:`genlab.generation.rows.pick_tokens`).
"""

from __future__ import annotations

from typing import Any

import torch


class LogitBias:
    """Add a fixed bias to chosen tokens' logits: ``scores[:, token] += bias``."""

    def __init__(self, bias: tuple[tuple[int, float], ...]) -> None:
        self.tokens = torch.tensor([token for token, _ in bias], dtype=torch.long)
        self.values = torch.tensor([value for _, value in bias], dtype=torch.float32)

    def __call__(self, history: Any, scores: torch.Tensor) -> torch.Tensor:
        # scores: (1, vocab); a token id beyond the vocabulary was refused before decoding started
        scores = scores.clone()
        scores[:, self.tokens] += self.values.to(scores.dtype)
        return scores


class FrequencyPresencePenalty:
    """OpenAI's frequency and presence penalties over the tokens generated after ``prompt_length``."""

    def __init__(self, frequency: float, presence: float, prompt_length: int) -> None:
        self.frequency = frequency
        self.presence = presence
        self.prompt_length = prompt_length

    def __call__(self, history: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # history: (1, prompt + generated) ids; scores: (1, vocab)
        generated = history[0, self.prompt_length :]
        if generated.numel() == 0:
            return scores
        counts = torch.bincount(generated, minlength=scores.shape[-1])[: scores.shape[-1]].to(scores.dtype)
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence
