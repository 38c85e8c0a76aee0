"""PPO's rollouts: sampled responses and their scores under the policy and the reference, for causal and seq2seq LMs.

Part of :mod:`genlab.alignment.ppo` (split off to keep each module readable); hand-written for the
same reason. Sampling is transformers' ``generate``; what is added here:

- causal prompts are left-padded, and a full forward uses positions counted from the attention mask
  (``cumsum - 1``), as ``generate`` does, so both see the same positions; for seq2seq models the
  response is the decoder sequence after its start token;
- the first eos belongs to the response and every token after it is masked out;
- the sampling pass keeps the policy's logits (``output_logits``) and the LM head's input at each step
  (a forward pre-hook on the output embeddings), so the old log-probs and the values need no second
  policy forward; a test checks they equal a full forward's;
- the reference is the LoRA policy with its adapter switched off (``disable_adapter``), or a frozen
  deep copy of a full-weight policy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Rollout:
    inputs: dict[str, torch.Tensor]  # the prompt: input_ids, attention_mask (B, P)
    response: torch.Tensor  # (B, T) sampled token ids; seq2seq: the decoder sequence without its start token
    mask: torch.Tensor  # (B, T) 1 up to and including the first eos
    texts: list[str]  # the decoded responses
    logits: torch.Tensor | None = None  # (B, T, V) the policy's logits while sampling (freed once scored)
    hidden: torch.Tensor | None = None  # (B, T, H) the LM head's inputs while sampling

    def select(self, rows: torch.Tensor) -> Rollout:
        return Rollout({k: v[rows] for k, v in self.inputs.items()}, self.response[rows], self.mask[rows], [])


def response_mask(response: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """(B, T) 1.0 up to and including each row's first eos, 0.0 after it."""
    is_eos = torch.isin(response, torch.tensor(list(eos_ids))).long()
    return ((is_eos.cumsum(1) - is_eos) == 0).float()


def is_peft_model(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


class Sampler:
    """Samples from ``policy`` and scores responses under it and under its reference.

    ``add_special_tokens=False`` for prompts already in the tokenizer's chat format (they hold their
    own special tokens); True for plain text (T5 appends its ``</s>``).
    """

    def __init__(self, policy: Any, tokenizer: Any, settings: Any, *, add_special_tokens: bool = True) -> None:
        self.policy, self.tokenizer, self.settings = policy, tokenizer, settings  # settings: a PPOConfig
        self.add_special_tokens = add_special_tokens
        self.base = base = policy.get_base_model() if is_peft_model(policy) else policy
        self.is_encoder_decoder = bool(getattr(base.config, "is_encoder_decoder", False))
        # Copied before the hook below is registered, so the reference's forwards are not captured.
        self.reference = None if is_peft_model(policy) else copy.deepcopy(policy).eval().requires_grad_(False)
        self._hidden: torch.Tensor | None = None  # the LM head's input, captured on every policy forward
        self._steps: list[torch.Tensor] | None = None  # while sampling: the LM head's input at each step
        self.hook = base.get_output_embeddings().register_forward_pre_hook(self._capture_hidden)
        self.hidden_size = int(getattr(base.config, "hidden_size", None) or base.config.d_model)
        eos = base.generation_config.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None})
        if tokenizer.eos_token_id is not None and int(tokenizer.eos_token_id) not in self.eos_ids:
            self.eos_ids.append(int(tokenizer.eos_token_id))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def _capture_hidden(self, module: Any, args: tuple[Any, ...]) -> None:
        self._hidden = args[0]
        if self._steps is not None:
            self._steps.append(args[0][:, -1:])  # the position that predicts the next token

    def generate(self, prompts: Sequence[str], seed: int) -> Rollout:
        """One response per prompt from the current policy, sampled at the settings' temperature (seeded)."""
        settings, tokenizer = self.settings, self.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "right" if self.is_encoder_decoder else "left"
        try:
            encoded = tokenizer(
                list(prompts), padding=True, add_special_tokens=self.add_special_tokens, return_tensors="pt"
            )
        finally:
            tokenizer.padding_side = side
        inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        self._steps = steps = []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = self.policy.generate(
                    **inputs, do_sample=True, temperature=settings.temperature, top_k=settings.top_k,
                    top_p=settings.top_p, max_new_tokens=settings.max_new_tokens, pad_token_id=self.pad_id,
                    eos_token_id=self.eos_ids, repetition_penalty=1.0, num_beams=1, output_logits=True,
                    return_dict_in_generate=True,
                )  # fmt: skip
        finally:
            self._steps = None
        start = 1 if self.is_encoder_decoder else inputs["input_ids"].shape[1]  # skip the decoder start / the prompt
        response = out.sequences[:, start:]
        length = response.shape[1]  # one forward per generated token: T logits and T hidden states
        logits = torch.stack(out.logits, dim=1) if len(out.logits) == length else None
        hidden = torch.cat(steps, dim=1) if len(steps) == length else None
        mask = response_mask(response, self.eos_ids)
        texts = []
        for row, kept in zip(response, mask.sum(1).long().tolist(), strict=True):
            ids = row[:kept].tolist()
            if ids and ids[-1] in self.eos_ids:
                ids = ids[:-1]
            texts.append(tokenizer.decode(ids, skip_special_tokens=True))
        return Rollout(inputs, response, mask, texts, logits, hidden)

    def forward(self, model: Any, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, V) logits for the response tokens, and (B, T, H) hidden states when ``model`` is the policy."""
        ids, attention = rollout.inputs["input_ids"], rollout.inputs["attention_mask"]
        length = rollout.response.shape[1]
        self._hidden = None
        if self.is_encoder_decoder:
            start = torch.full_like(rollout.response[:, :1], int(self.base.config.decoder_start_token_id))
            decoder_ids = torch.cat([start, rollout.response[:, :-1]], dim=1)
            out = model(input_ids=ids, attention_mask=attention, decoder_input_ids=decoder_ids, use_cache=False)
            return out.logits, self._hidden
        full_ids = torch.cat([ids, rollout.response], dim=1)  # (B, P + T)
        full_attention = torch.cat([attention, torch.ones_like(rollout.response)], dim=1)
        positions = (full_attention.long().cumsum(-1) - 1).clamp(min=0)  # left padding: as generate counts
        out = model(
            input_ids=full_ids, attention_mask=full_attention, position_ids=positions, logits_to_keep=length + 1,
            use_cache=False,
        )  # fmt: skip
        hidden = self._hidden[:, :-1] if self._hidden is not None else None  # the state before each response token
        return out.logits[:, :-1], hidden  # logits at P-1 .. P+T-2 predict the response tokens

    def reference_logits(self, rollout: Rollout) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is not None:
                return self.forward(self.reference, rollout)[0]
            with self.policy.disable_adapter():
                return self.forward(self.policy, rollout)[0]

    def policy_logits(self, rollout: Rollout, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's logits and hidden states for ``rows``: from the sampling pass when it kept them."""
        if rollout.logits is not None and rollout.hidden is not None:
            return rollout.logits[rows], rollout.hidden[rows]
        return self.forward(self.policy, rollout.select(rows))

    def logprobs(self, logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs of ``tokens`` under softmax(logits / T), and each position's entropy; both (B, T)."""
        logp = torch.log_softmax(logits.float() / self.settings.temperature, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy

    def kl_from_reference(self, prompts: Sequence[str], *, seed: int, batch_size: int) -> float:
        """Mean over ``prompts`` of KL(pi_theta || pi_ref) per sequence, in nats.

        Responses are sampled from the policy; along each, the exact per-position KL over the whole
        vocabulary is summed. By the chain rule its expectation is the sequence-level KL, with less
        variance than the sampled log-ratio; it is never negative.
        """
        totals: list[float] = []
        for start in range(0, len(prompts), batch_size):
            rollout = self.generate(prompts[start : start + batch_size], seed=seed + start)
            with torch.no_grad():
                logits = self.policy_logits(rollout, torch.arange(rollout.response.shape[0]))[0]
                logp = torch.log_softmax(logits.float() / self.settings.temperature, -1)
                ref = torch.log_softmax(self.reference_logits(rollout).float() / self.settings.temperature, -1)
                per_position = (logp.exp() * (logp - ref)).sum(-1)  # (B, T)
            totals.extend((per_position * rollout.mask).sum(1).tolist())
        return sum(totals) / len(totals) if totals else 0.0
