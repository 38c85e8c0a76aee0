"""PPO with a KL penalty to a frozen reference: the policy step of RLHF, for causal and seq2seq LMs.

Papers: PPO -- Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347;
RLHF with a per-token KL penalty -- Ziegler et al. 2019, "Fine-Tuning Language Models from Human
Preferences", arXiv:1909.08593, and Ouyang et al. 2022 (InstructGPT), arXiv:2203.02155; GAE --
Schulman et al. 2016, arXiv:1506.02438.

Written here because trl 1.x removed its PPOTrainer and value-head models (its GRPO/RLOO trainers
have no value function and no seq2seq support). What stays the libraries': the models, peft's LoRA
and its adapter switch, transformers' ``generate`` for sampling, torch's AdamW. Hand-written: the
rollout, the rewards, GAE, the losses and the KL controller below.

One :meth:`PPOTrainer.step` on a batch of prompts x:

1. Rollout: sample y ~ pi_theta(.|x) at temperature T. Causal prompts are left-padded (positions
   from the attention mask, as ``generate`` uses); for seq2seq the response is the decoder sequence.
   The first eos belongs to the response, every token after it is masked out (m_t = 0).
2. Scores: log pi_theta(y_t|.) and the values V(s_t) from a value head (a Linear on the policy's
   last hidden state: the input of its LM head) come from the sampling pass itself (its logits and
   hidden states; a test checks they equal a full forward's), log pi_ref(y_t|.) from one reference
   forward, and the reward model's score R(x, y) = reward_fn(prompts, responses). Per-token reward::

       r_t = -beta * (log pi_theta(y_t|.) - log pi_ref(y_t|.))  +  [t = last token] * R(x, y)

   The sum over t of the log-ratio is the sampled estimate of KL(pi_theta || pi_ref) for the
   sequence; a step reports its mean over the batch ("kl", nats per sequence).
3. GAE, with V = 0 after the last token::

       delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
       A_t = sum_l (gamma * lam)^l * delta_{t+l},     G_t = A_t + V(s_t)  (the value targets)

   and A whitened over the batch's response tokens when ``whiten_advantages``.
4. ``ppo_epochs`` passes over the batch in shuffled minibatches of ``mini_batch_size``, minimising::

       rho_t = pi_theta(y_t|.) / pi_old(y_t|.)
       L_clip = -E_t[ min(rho_t * A_t, clip(rho_t, 1 - eps, 1 + eps) * A_t) ]
       L_V = 1/2 * E_t[ max((V - G_t)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - G_t)^2) ]
       L = L_clip + vf_coef * L_V

   with the gradient norm clipped to ``max_grad_norm``. The policy's mean token entropy is reported.
5. Adaptive beta (Ziegler et al. 2019, section 2.2): e = clip(KL / target_kl - 1, -0.2, 0.2) and
   beta <- beta * (1 + e * n / horizon), n = sequences per step.

The reference of a LoRA policy is the same model with its adapter switched off (``with
model.disable_adapter():``), so the weights are held once; a full-weight policy's reference is a
frozen deep copy. The policy runs with dropout off, so the update's first pass reproduces the
rollout's log-probs (rho = 1). Log-probs are those of softmax(logits / T), the distribution sampled
from; top-k/top-p truncation is not reflected in them (as in trl's former trainer): keep them off
for exactly on-policy ratios. Sampling is seeded per step, so a run repeats exactly. Rollouts
(sampling, masks, the scores of the policy and the reference) live in :mod:`genlab.alignment.ppo_rollout`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from genlab.alignment.ppo.recipe import PPOConfig
from genlab.alignment.ppo_rollout import Rollout, Sampler
from genlab.errors import InvalidValueError

RewardFn = Callable[[list[str], list[str]], Sequence[float]]



class AdaptiveKLController:
    """Ziegler et al.'s proportional controller: beta grows when the KL is above target, shrinks below it."""

    def __init__(self, beta: float, target: float, horizon: int) -> None:
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n_sequences: int) -> float:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_sequences / self.horizon
        return self.beta


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) rewards, values and 0/1 response mask (a prefix per row) -> (advantages, returns)."""
    rewards, values = rewards * mask, values * mask  # V = 0 and r = 0 after the last token
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, advantages + values


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask


@dataclass
class PPOStats:
    step: int
    reward_mean: float
    reward_std: float
    kl: float  # mean over sequences of sum_t (log pi - log pi_ref), nats
    entropy: float  # mean token entropy of the policy on its samples, nats
    policy_loss: float
    value_loss: float
    clip_fraction: float  # share of response tokens whose ratio left [1 - eps, 1 + eps]
    beta: float  # the KL coefficient this step used
    response_length: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class ValueHead(torch.nn.Module):
    """V(s_t) from the policy's last hidden state; starts at zero, so early advantages are the rewards."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.linear(hidden.float()).squeeze(-1)


class PPOTrainer:
    """PPO on ``model`` (a peft LoRA model, or any causal/seq2seq LM trained in full) against ``reward_fn``.

    ``add_special_tokens=False`` for prompts already in the tokenizer's chat format (they hold their
    own special tokens); True for plain text (T5 appends its ``</s>``).
    """

    def __init__(
        self, model: Any, tokenizer: Any, reward_fn: RewardFn, config: PPOConfig, *, add_special_tokens: bool = True
    ) -> None:
        self.model, self.reward_fn, self.config = model, reward_fn, config
        self.sampler = Sampler(model, tokenizer, config, add_special_tokens=add_special_tokens)
        self.value_head = ValueHead(self.sampler.hidden_size)
        self.trainable = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate)
        self.kl_controller = AdaptiveKLController(config.kl_coef, config.target_kl, config.kl_horizon)
        self.steps_done = 0
        self._order = random.Random(config.seed)  # the prompt order: reshuffled each pass over the prompts
        self._queue: list[int] = []  # prompt indices left in this pass
        self.model.eval()  # dropout off throughout (see the module docstring); gradients still flow

    @property
    def beta(self) -> float:
        return self.kl_controller.beta

    def _score(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        """Old log-probs, reference log-probs, values and entropies of a rollout, minibatch by minibatch."""
        parts: dict[str, list[torch.Tensor]] = {"logprobs": [], "ref_logprobs": [], "values": [], "entropy": []}
        size = self.config.mini_batch_size
        with torch.no_grad():
            for start in range(0, rollout.response.shape[0], size):
                rows = torch.arange(start, min(start + size, rollout.response.shape[0]))
                piece = rollout.select(rows)
                logits, hidden = self.sampler.policy_logits(rollout, rows)
                logprobs, entropy = self.sampler.logprobs(logits, piece.response)
                parts["logprobs"].append(logprobs)
                parts["entropy"].append(entropy)
                parts["values"].append(self.value_head(hidden))
                reference = self.sampler.reference_logits(piece)
                parts["ref_logprobs"].append(self.sampler.logprobs(reference, piece.response)[0])
        rollout.logits = rollout.hidden = None  # (B, T, V) floats: free them before the update
        return {name: torch.cat(tensors) for name, tensors in parts.items()}

    # --- one PPO step -----------------------------------------------------------------------------

    def step(self, prompts: Sequence[str]) -> PPOStats:
        config = self.config
        rollout = self.sampler.generate(prompts, seed=config.seed * 1_000_003 + self.steps_done)
        scored = self._score(rollout)
        scores = [float(s) for s in self.reward_fn(list(prompts), rollout.texts)]
        if len(scores) != len(rollout.texts):
            raise ValueError(f"the reward function returned {len(scores)} scores for {len(rollout.texts)} responses")
        score = torch.tensor(scores, dtype=torch.float32)
        mask = rollout.mask
        beta = self.beta
        log_ratio = (scored["logprobs"] - scored["ref_logprobs"]) * mask  # (B, T)
        rewards = -beta * log_ratio
        last = mask.sum(1).long() - 1  # (B,) the last response token of each row
        rewards[torch.arange(len(scores)), last] += score
        advantages, returns = gae(rewards, scored["values"], mask, config.gamma, config.lam)
        if config.whiten_advantages:
            advantages = whiten(advantages, mask)
        losses = self._update(rollout, scored, advantages, returns)
        kl = float(log_ratio.sum(1).mean())
        stats = PPOStats(
            step=self.steps_done + 1, reward_mean=float(score.mean()),
            reward_std=float(score.std()) if len(scores) > 1 else 0.0, kl=kl,
            entropy=float(masked_mean(scored["entropy"], mask)), beta=beta,
            response_length=float(mask.sum(1).mean()), **losses,
        )  # fmt: skip
        if config.adaptive_kl:
            self.kl_controller.update(kl, len(scores))
        self.steps_done += 1
        return stats

    def _update(
        self, rollout: Rollout, scored: dict[str, torch.Tensor], advantages: torch.Tensor, returns: torch.Tensor
    ) -> dict[str, float]:
        config = self.config
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0}
        updates = 0
        generator = torch.Generator().manual_seed(config.seed * 7_919 + self.steps_done)
        size = rollout.response.shape[0]
        for _ in range(config.ppo_epochs):
            order = torch.randperm(size, generator=generator)
            for start in range(0, size, config.mini_batch_size):
                rows = order[start : start + config.mini_batch_size]
                piece, mask = rollout.select(rows), rollout.mask[rows]
                logits, hidden = self.sampler.forward(self.model, piece)
                logprobs, _ = self.sampler.logprobs(logits, piece.response)
                ratio = torch.exp(logprobs - scored["logprobs"][rows])
                advantage = advantages[rows]
                clipped = torch.clamp(ratio, 1 - config.clip_range, 1 + config.clip_range)
                policy_loss = masked_mean(torch.max(-advantage * ratio, -advantage * clipped), mask)
                values, old_values, target = self.value_head(hidden), scored["values"][rows], returns[rows]
                eps_v = config.clip_range_value
                values_clipped = old_values + torch.clamp(values - old_values, -eps_v, eps_v)
                value_loss = 0.5 * masked_mean(torch.max((values - target) ** 2, (values_clipped - target) ** 2), mask)
                loss = policy_loss + config.vf_coef * value_loss
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.trainable, config.max_grad_norm)
                self.optimizer.step()
                totals["policy_loss"] += policy_loss.item()
                totals["value_loss"] += value_loss.item()
                totals["clip_fraction"] += masked_mean(((ratio - 1).abs() > config.clip_range).float(), mask).item()
                updates += 1
        return {name: total / updates for name, total in totals.items()}

    def next_batch(self, prompts: Sequence[str]) -> list[str]:
        """``batch_size`` prompts, drawn without replacement from a pass over ``prompts`` reshuffled each time."""
        batch = []
        while len(batch) < self.config.batch_size:
            if not self._queue:
                self._queue = list(range(len(prompts)))
                self._order.shuffle(self._queue)
            batch.append(prompts[self._queue.pop()])
        return batch

    def train(
        self, prompts: Sequence[str], *, steps: int | None = None, callback: Callable[[PPOStats], None] | None = None
    ) -> list[PPOStats]:
        """PPO steps on batches of ``prompts`` until ``steps`` (default: the config's) are done in all,
        counting those of a loaded checkpoint (:meth:`load_state_dict`)."""
        if not prompts:
            raise InvalidValueError("PPO needs at least one prompt to sample responses for.")
        history = []
        while self.steps_done < (steps if steps is not None else self.config.steps):
            stats = self.step(self.next_batch(prompts))
            history.append(stats)
            if callback is not None:
                callback(stats)
        return history

    # --- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on: trainable weights, value head, optimiser, beta, step and prompt order.

        Sampling and minibatch order are seeded by the step number, so a trainer loaded from this state
        takes the same steps as the one that wrote it."""
        trainable = {name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad}
        return {
            "model": trainable, "value_head": self.value_head.state_dict(), "optimizer": self.optimizer.state_dict(),
            "beta": self.kl_controller.beta, "steps_done": self.steps_done, "order": self._order.getstate(),
            "queue": list(self._queue),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        parameters = dict(self.model.named_parameters())
        missing = sorted(set(state["model"]) ^ {name for name, p in parameters.items() if p.requires_grad})
        if missing:
            raise InvalidValueError(f"the PPO checkpoint does not fit this model: its trainable weights differ ({missing[0]}, ...).")
        with torch.no_grad():
            for name, tensor in state["model"].items():
                parameters[name].copy_(tensor)
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_controller.beta = float(state["beta"])
        self.steps_done = int(state["steps_done"])
        self._order.setstate(state["order"])
        self._queue = list(state["queue"])

    def kl_from_reference(self, prompts: Sequence[str], *, seed: int = 0) -> float:
        """KL(pi_theta || pi_ref) per sequence on ``prompts``, in nats (see :meth:`Sampler.kl_from_reference`)."""
        return self.sampler.kl_from_reference(prompts, seed=seed, batch_size=self.config.mini_batch_size)
