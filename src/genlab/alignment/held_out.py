"""The held-out check of an RL run (PPO, GRPO, RLOO), before and after training, the same for each.

On the held-out prompts, greedy answers give the toxicity mean and (population) std, ROUGE-1 against
the references (when the data has them) and, for GRPO and RLOO, the mean of the recipe's own weighted
reward ``Σ_k w_k · r_k``; the KL of the policy from the reference is measured as PPO measures it
(:meth:`genlab.alignment.ppo_rollout.Sampler.kl_from_reference`: sampled answers, the exact
per-position KL summed along each), so GRPO, RLOO and PPO compare on one scale.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.alignment.ppo_rollout import Sampler
from genlab.alignment.rewards.text import REFERENCE_COLUMN
from genlab.data.example import Example
from genlab.evaluation.metrics.rouge import rouge
from genlab.evaluation.metrics.toxicity import load_toxicity_scorer
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.models.load import LoadedModel
from genlab.prompting.templates import get_template


@dataclass(frozen=True)
class KlSampling:
    """The sampling settings :class:`Sampler` reads, those of training (no top-k/top-p truncation)."""

    temperature: float
    max_new_tokens: int
    top_k: int = 0
    top_p: float = 1.0


def score_answers(
    loaded: LoadedModel,
    rows: list[Example],
    prompts: list[str],
    recipe: Any,
    rewards: tuple[list[Callable[..., list[float]]], list[float]] | None,
    *,
    chat: bool,
) -> tuple[dict[str, float], list[str]]:
    """Greedy answers to ``prompts``: toxicity mean/std, ROUGE-1 (with references) and the recipe's reward (if given)."""
    settings = GenerationSettings(max_new_tokens=recipe.evaluation.max_new_tokens)
    stop = get_template(recipe.data.template).stop
    if not chat and stop:  # a plain prompt's answer ends where the template's next shot would start
        settings = settings.with_overrides(stop=stop)
    was_training = loaded.model.training
    loaded.model.eval()
    completions = GenerationEngine(loaded, batch_size=recipe.evaluation.batch_size).generate(
        prompts, settings, preformatted=chat
    )
    loaded.model.train(was_training)
    texts = [completion.text.strip() for completion in completions]
    toxic = load_toxicity_scorer().score(texts)
    scores = {"toxicity_mean": statistics.fmean(toxic), "toxicity_std": statistics.pstdev(toxic)}
    references = [row.target or "" for row in rows]
    if all(references):
        scores["rouge1"] = rouge(texts, references)["rouge1"]
    if rewards is None:
        return scores, texts
    functions, weights = rewards
    total = [0.0] * len(texts)
    for function, weight in zip(functions, weights, strict=True):
        for i, value in enumerate(function(prompts=prompts, completions=texts, **{REFERENCE_COLUMN: references})):
            total[i] += weight * float(value)
    scores["reward_mean"] = statistics.fmean(total)
    return scores, texts


def kl_from_reference(
    policy: Any, loaded: LoadedModel, prompts: list[str], training: Any, *, chat: bool, batch_size: int
) -> float:
    """KL(π_θ || π_ref) per answer on ``prompts``, in nats; the reference is ``policy`` with its adapter off."""
    settings = KlSampling(temperature=training.temperature, max_new_tokens=training.max_new_tokens)
    sampler = Sampler(policy, loaded.tokenizer, settings, add_special_tokens=not chat)
    try:
        was_training = policy.training
        policy.eval()
        kl = sampler.kl_from_reference(prompts, seed=training.seed, batch_size=batch_size)
        policy.train(was_training)
        return kl
    finally:
        sampler.hook.remove()
