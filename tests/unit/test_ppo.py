"""PPO with a KL penalty on tiny random models: the arithmetic by hand, the reference, learning, the KL trade-off."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from genlab.alignment.ppo.algorithm import (
    AdaptiveKLController,
    PPOConfig,
    PPOTrainer,
    gae,
    whiten,
)
from genlab.alignment.ppo_rollout import response_mask
from genlab.models.tiny import tiny_model, tiny_tokenizer

PROMPTS = [
    "Dialogue: #Person1#: Where is the report? #Person2#: On your desk. What was going on?",
    "Dialogue: #Person1#: Lunch at noon? #Person2#: Sure, see you there. What was going on?",
    "Dialogue: #Person1#: The bus is late again. #Person2#: Let's walk. What was going on?",
    "Dialogue: #Person1#: Can you fix my laptop? #Person2#: Tomorrow. What was going on?",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


def peaked_model(kind: str, tokenizer: Any, seed: int = 0) -> Any:
    """A tiny random model whose next-token distributions are peaked, like a trained LM's.

    Fresh, its logits stay within about +-0.6 (an RMS-normed hidden state of size 32 against
    embeddings of std 0.02): nearly uniform over 512 tokens, and nothing short of the embeddings can
    move them much. Scaling the final norm by 10 gives peaked distributions a LoRA update can shift.
    """
    model = tiny_model(kind, seed=seed, tokenizer=tokenizer).model  # type: ignore[arg-type]
    if kind == "causal":
        model.model.norm.weight.data.fill_(10.0)
    return model


def lora_policy(kind: str, tokenizer: Any, *, seed: int = 0, init_lora_weights: bool = True) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    model = peaked_model(kind, tokenizer, seed)
    torch.manual_seed(seed)  # LoRA's A (and, with init_lora_weights=False, B) are drawn here
    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=init_lora_weights,
        task_type=TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else TaskType.CAUSAL_LM,
    )  # fmt: skip
    return get_peft_model(model, config)


def letter_count(prompts: list[str], responses: list[str]) -> list[float]:
    """A toy reward from the decoded text: +1 per letter 'e' in the response."""
    return [float(response.count("e")) for response in responses]


def config(**changes: Any) -> PPOConfig:
    settings = {
        "steps": 12, "batch_size": 8, "mini_batch_size": 4, "ppo_epochs": 4, "learning_rate": 3e-3,
        "kl_coef": 0.0, "max_new_tokens": 4, "seed": 0,
    }  # fmt: skip
    return PPOConfig(**{**settings, **changes})


# --- the arithmetic ----------------------------------------------------------------------------------


def test_gae_against_a_hand_computed_example() -> None:
    # gamma = 0.9, lam = 0.8; the third token is past the end (mask 0), so its reward and value are ignored.
    #   delta_1 = 1.0 + 0.9 * 0   - 0.4 = 0.6                     A_1 = 0.6
    #   delta_0 = 0.5 + 0.9 * 0.4 - 0.2 = 0.66                    A_0 = 0.66 + 0.9 * 0.8 * 0.6 = 1.092
    #   returns = A + V = [1.292, 1.0, 0]
    rewards = torch.tensor([[0.5, 1.0, 7.0]])
    values = torch.tensor([[0.2, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(advantages, torch.tensor([[1.092, 0.6, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[1.292, 1.0, 0.0]]))


def test_gae_with_gamma_and_lambda_one_is_the_return_minus_the_value() -> None:
    # Monte Carlo: A_t = (sum of rewards from t on) - V_t = 1 - V_t, and every return is 1.
    rewards, values = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.1, 0.2, 0.3]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(advantages, torch.tensor([[0.9, 0.8, 0.7]]))
    torch.testing.assert_close(returns, torch.ones(1, 3))


def test_whitening_uses_only_response_tokens() -> None:
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    white = whiten(values, mask)
    kept = white[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (kept**2).mean().item() == pytest.approx(1.0, abs=1e-4)  # population variance 1
    assert white[0, 2].item() == 0.0


def test_response_mask_keeps_the_first_eos_and_drops_what_follows() -> None:
    eos = 2
    response = torch.tensor([[5, 6, 2, 0, 0], [2, 7, 2, 7, 7], [5, 6, 7, 8, 9]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(response_mask(response, [eos]), expected)


def test_adaptive_controller_moves_beta_toward_the_target_kl() -> None:
    # Ziegler et al.: e = clip(KL / target - 1, -0.2, 0.2); beta *= 1 + e * n / horizon.
    controller = AdaptiveKLController(beta=0.1, target=6.0, horizon=100)
    assert controller.update(kl=12.0, n_sequences=10) == pytest.approx(0.1 * 1.02)  # error clipped to +0.2
    assert controller.update(kl=6.6, n_sequences=10) == pytest.approx(0.1 * 1.02 * 1.01)  # error +0.1
    assert controller.update(kl=0.0, n_sequences=10) == pytest.approx(0.1 * 1.02 * 1.01 * 0.98)  # clipped to -0.2


@pytest.mark.parametrize(
    "changes", [{"mini_batch_size": 3, "batch_size": 8}, {"temperature": 0.0}, {"clip_range": 1.5}, {"unknown": 1}]
)
def test_config_refuses_bad_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PPOConfig(**changes)


# --- the reference -----------------------------------------------------------------------------------


def test_lora_reference_is_the_base_model_and_the_policy_is_not(tokenizer: Any) -> None:
    base = copy.deepcopy(peaked_model("causal", tokenizer))  # the weights before wrapping
    policy = lora_policy("causal", tokenizer, init_lora_weights=False)  # random B: the adapter changes the output
    trainer = PPOTrainer(policy, tokenizer, letter_count, config(), add_special_tokens=False)
    rollout = trainer.sampler.generate(PROMPTS, seed=0)
    with torch.no_grad():
        base_logits = trainer.sampler.forward(base, rollout)[0]
        policy_logits = trainer.sampler.forward(policy, rollout)[0]
    torch.testing.assert_close(trainer.sampler.reference_logits(rollout), base_logits)
    assert not torch.allclose(policy_logits, base_logits, atol=1e-3)
    assert trainer.sampler.reference is None  # no second copy of the weights


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_sampling_pass_scores_as_a_full_forward_does(kind: str, tokenizer: Any) -> None:
    # The old log-probs and values come from the sampling pass (KV cache, left padding); the update
    # recomputes them with one full forward: they must agree, or the first ratio is not 1.
    policy = lora_policy(kind, tokenizer, init_lora_weights=False)
    trainer = PPOTrainer(policy, tokenizer, letter_count, config(max_new_tokens=6), add_special_tokens=False)
    rollout = trainer.sampler.generate(PROMPTS, seed=5)
    assert rollout.logits is not None and rollout.hidden is not None
    with torch.no_grad():
        logits, hidden = trainer.sampler.forward(policy, rollout)
    mask = rollout.mask.bool()
    torch.testing.assert_close(rollout.logits[mask], logits[mask], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rollout.hidden[mask], hidden[mask], atol=1e-4, rtol=1e-4)


def test_full_weight_policy_trains_while_its_frozen_copy_stays(tokenizer: Any) -> None:
    model = peaked_model("causal", tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = PPOTrainer(model, tokenizer, letter_count, config(steps=1), add_special_tokens=False)
    trainer.train(PROMPTS)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "no policy weight moved"
    for name, p in trainer.sampler.reference.named_parameters():
        assert torch.equal(p, before[name]) and not p.requires_grad, name


# --- learning --------------------------------------------------------------------------------------


def test_a_step_reports_finite_stats_and_starts_on_policy(tokenizer: Any) -> None:
    trainer = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, config(kl_coef=0.3))
    stats = trainer.step(PROMPTS * 2)
    values = stats.to_dict()
    assert all(math.isfinite(v) for v in values.values()), values
    assert stats.kl == pytest.approx(0.0, abs=1e-4)  # LoRA starts with B = 0: policy == reference
    assert stats.beta == 0.3 and 1 <= stats.response_length <= 4
    assert stats.entropy > 0


def test_same_seed_same_run(tokenizer: Any) -> None:
    runs = []
    for _ in range(2):
        trainer = PPOTrainer(lora_policy("causal", tokenizer, seed=1), tokenizer, letter_count, config(steps=2))
        runs.append([s.to_dict() for s in trainer.train(PROMPTS)])
    assert runs[0] == runs[1]


def test_mean_reward_rises_without_a_kl_penalty(tokenizer: Any) -> None:
    # A full-weight policy: a 32-wide LoRA on a random model learns too slowly for a short test (seen
    # here: 12 steps lift the mean count of 'e' from about 1 to 3-8 over seeds 0-2 in full, barely with LoRA).
    trainer = PPOTrainer(peaked_model("causal", tokenizer), tokenizer, letter_count, config(learning_rate=1e-3))
    history = trainer.train(PROMPTS)
    first = sum(s.reward_mean for s in history[:3]) / 3
    last = sum(s.reward_mean for s in history[-3:]) / 3
    assert last > first + 1.0, [round(s.reward_mean, 2) for s in history]


def test_kl_penalty_keeps_the_policy_closer_to_the_reference(tokenizer: Any) -> None:
    # Same seed, same budget, LoRA policies; seen here over seeds 0-2: KL 4.9-7.1 nats at beta = 0
    # against 0.6-1.8 at beta = 0.5.
    drift = {}
    for beta in (0.0, 0.5):
        trainer = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, config(steps=16, kl_coef=beta))
        trainer.train(PROMPTS)
        drift[beta] = trainer.kl_from_reference(PROMPTS * 2, seed=11)
    assert drift[0.0] > 1.0
    assert drift[0.0] > 2 * drift[0.5], drift


def test_adaptive_beta_falls_while_the_kl_is_below_target(tokenizer: Any) -> None:
    settings = config(steps=3, kl_coef=0.5, adaptive_kl=True, target_kl=50.0, kl_horizon=16)
    history = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, settings).train(PROMPTS)
    betas = [s.beta for s in history]
    assert betas[0] == 0.5 and betas[1] < betas[0] and betas[2] < betas[1], betas
    assert all(s.kl < 50.0 for s in history)


def test_seq2seq_ppo_runs_with_finite_stats(tokenizer: Any) -> None:
    trainer = PPOTrainer(lora_policy("seq2seq", tokenizer), tokenizer, letter_count, config(steps=2, kl_coef=0.2))
    history = trainer.train(PROMPTS)
    assert trainer.sampler.is_encoder_decoder
    for stats in history:
        assert all(math.isfinite(v) for v in stats.to_dict().values()), stats
    assert trainer.kl_from_reference(PROMPTS) >= 0


# --- checkpoints ---------------------------------------------------------------------------------------


def test_a_checkpoint_continues_to_the_uninterrupted_run(tokenizer: Any, tmp_path: Any) -> None:
    from genlab.alignment.ppo.checkpointing import load_checkpoint, save_checkpoint

    settings = config(steps=3, batch_size=2, mini_batch_size=1, ppo_epochs=1, kl_coef=0.1, adaptive_kl=True, target_kl=0.01)
    straight = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, settings)
    straight_stats = straight.train(PROMPTS[:3])  # 3 prompts, batches of 2: the prompt order spans steps

    first = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, settings)
    first_stats = first.train(PROMPTS[:3], steps=1)
    checkpoint = save_checkpoint(first, tmp_path / "checkpoints", first_stats)
    assert checkpoint.name == "checkpoint-1" and (checkpoint / "trainer_state.json").is_file()

    again = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, settings)  # a fresh process's trainer
    history = load_checkpoint(again, checkpoint)
    assert again.steps_done == 1 and [s.step for s in history] == [1]
    assert again.beta == first.beta != settings.kl_coef  # the adaptive beta moved and was restored
    rest = again.train(PROMPTS[:3])
    assert [s.step for s in rest] == [2, 3]  # only the steps after the checkpoint ran
    assert [s.reward_mean for s in history + rest] == [s.reward_mean for s in straight_stats]
    for (name, expected), (_, got) in zip(straight.model.named_parameters(), again.model.named_parameters(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(again.value_head.linear.weight, straight.value_head.linear.weight, rtol=0, atol=1e-6)


def test_a_checkpoint_of_another_model_is_refused(tokenizer: Any, tmp_path: Any) -> None:
    from genlab.alignment.ppo.checkpointing import save_checkpoint
    from genlab.errors import InvalidValueError

    settings = config(steps=1, batch_size=2, mini_batch_size=1, ppo_epochs=1)
    trainer = PPOTrainer(lora_policy("causal", tokenizer), tokenizer, letter_count, settings)
    checkpoint = save_checkpoint(trainer, tmp_path, trainer.train(PROMPTS[:2]))
    other = PPOTrainer(peaked_model("causal", tokenizer), tokenizer, letter_count, settings)  # full weights, no LoRA
    with pytest.raises(InvalidValueError, match="does not fit"):
        other.load_state_dict(torch.load(checkpoint / "ppo_state.pt", weights_only=True))
