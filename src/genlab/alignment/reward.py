"""Rewards for reinforcement learning from feedback: one interface, three kinds.

A reward is a callable ``(prompts, responses) -> list[float]``: one score per (prompt, response)
pair, higher is better. genlab's PPO takes any of them; :func:`as_trl_reward_func` hands the same
object to trl's GRPO and RLOO trainers.

- :class:`NonToxicityReward`: ``r = 1 - P(toxic | response)`` from a toxicity scorer
  (:mod:`genlab.evaluation.metrics.toxicity`: the alt-profanity-check pack by default, or any
  Hugging Face classifier with its toxic label named).
- :class:`ClassifierReward`: ``r = P(label | response)`` of any Hugging Face sequence classifier,
  the label named explicitly (label order is each model's own choice).
- :class:`TrainedRewardModel`: ``r = r_θ(prompt, response)``, the scalar head of a reward model
  trained by :mod:`genlab.alignment.reward_model.training` on prompt + response formatted exactly as in
  training (:func:`reward_input_ids`).

:func:`load_reward` turns a spec string from a recipe into one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from genlab.errors import GenlabError, InvalidValueError, ModelLoadError, ModelNotFoundError

Formatting = Literal["chat", "plain"]
REWARD_RECORD = "genlab_reward.json"
SPEC_FORMS = (
    "non-toxicity, non-toxicity:<classifier folder or hub id>:<toxic label>, "
    "classifier:<folder or hub id>:<label>, or a trained reward model's folder or name"
)


class RewardSpecError(GenlabError):
    """A reward spec that names no reward genlab knows."""


@runtime_checkable
class RewardFunction(Protocol):
    """Scores each (prompt, response) pair; higher is better."""

    name: str

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


def _check_lengths(prompts: Sequence[str], responses: Sequence[str]) -> None:
    if len(prompts) != len(responses):
        raise InvalidValueError(f"a reward needs one prompt per response (got {len(prompts)} prompts, {len(responses)} responses).")


# --- classifier rewards ------------------------------------------------------------------------------


class NonToxicityReward:
    """``1 - P(toxic)`` of each response; the prompt is not scored (it is not the policy's text)."""

    def __init__(self, classifier: str = "profanity-check", toxic_label: str | None = None, *, scorer: Any = None) -> None:
        from genlab.evaluation.metrics.toxicity import load_toxicity_scorer

        self.scorer = scorer if scorer is not None else load_toxicity_scorer(classifier, toxic_label)
        self.name = "non-toxicity" if toxic_label is None else f"non-toxicity:{classifier}:{toxic_label}"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        _check_lengths(prompts, responses)
        return [1.0 - float(p) for p in self.scorer.score(list(responses))] if responses else []


def _classifier_folder(model: str) -> Path:
    from genlab.models.hub import download_from_hub, looks_like_hub_id

    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if looks_like_hub_id(model):
        return download_from_hub(model)  # fails within seconds offline
    raise ModelNotFoundError(f"no such classifier folder or hub id: {model}.")


class ClassifierReward:
    """``P(label)`` of a Hugging Face sequence classifier for each response (or prompt + response)."""

    def __init__(self, model: str, label: str, *, include_prompt: bool = False, batch_size: int = 16) -> None:
        from transformers import AutoConfig

        from genlab.evaluation.metrics.toxicity import HFClassifierScorer

        folder = _classifier_folder(model)
        try:
            config = AutoConfig.from_pretrained(folder)
        except Exception as error:  # noqa: BLE001 - a bad config fails in many ways
            raise ModelLoadError(f"{folder} is not a Hugging Face model folder: {_first_line(error)}.") from None
        labels = [str(name) for _, name in sorted(dict(config.id2label).items())]
        if label.strip().lower() not in {name.lower() for name in labels}:
            raise InvalidValueError(
                f"label {label!r} is not one of the labels of {model}: {', '.join(labels)}; name the one to reward."
            )
        self.scorer = HFClassifierScorer(str(folder), label, batch_size=batch_size)
        self.include_prompt = include_prompt
        self.name = f"classifier:{model}:{label}"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        _check_lengths(prompts, responses)
        texts = [p + r for p, r in zip(prompts, responses)] if self.include_prompt else list(responses)
        return self.scorer.score(texts) if texts else []


# --- trained reward models ---------------------------------------------------------------------------


def reward_input_ids(tokenizer: Any, prompt: str, response: str, formatting: Formatting) -> list[int]:
    """The token ids a reward model reads for one (prompt, response): the same in training and scoring.

    ``chat``: the tokenizer's chat template over a user turn (the prompt) and an assistant turn (the
    response), as an instruction-tuned policy sees its conversation; ``plain``: ``prompt + "\\n" +
    response`` and the EOS token. The head reads the hidden state of the last non-padding token.
    A prompt that arrives already chat-formatted (one user turn and the generation cue, as genlab's
    PPO passes it) is unwrapped first, so it is not wrapped twice.
    """
    if formatting == "chat":
        messages = [{"role": "user", "content": _user_text(tokenizer, prompt)}, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    else:
        text = f"{prompt.rstrip()}\n{response}{tokenizer.eos_token or ''}"
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


_MARKER = "\x00genlab-user-text\x00"


def _user_text(tokenizer: Any, prompt: str) -> str:
    """The user's text inside ``prompt`` if it is this tokenizer's rendering of one user turn, else ``prompt``."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": _MARKER}], tokenize=False, add_generation_prompt=True)
    prefix, _, suffix = rendered.partition(_MARKER)
    if prefix and prompt.startswith(prefix) and prompt.endswith(suffix) and len(prompt) >= len(prefix) + len(suffix):
        return prompt[len(prefix) : len(prompt) - len(suffix)]
    return prompt


def score_token_ids(model: Any, sequences: Sequence[Sequence[int]], pad_token_id: int, *, batch_size: int = 8) -> list[float]:
    """The scalar reward of each token sequence (right-padded batches, longest first for less padding)."""
    import torch

    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    scores = [0.0] * len(sequences)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(sequences[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, : len(sequences[i])] = torch.tensor(list(sequences[i]), dtype=torch.long)
            mask[row, : len(sequences[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, 1)
        for row, i in enumerate(chunk):
            scores[i] = float(logits[row, 0])
    return scores


def reward_models_dir() -> Path:
    from genlab.home import genlab_home

    return genlab_home() / "reward_models"


def find_reward_model(name_or_path: str) -> Path | None:
    """A folder with a ``genlab_reward.json``: the path itself, or a name under ``$GENLAB_HOME/reward_models``."""
    path = Path(name_or_path).expanduser()
    if (path / REWARD_RECORD).is_file():
        return path.resolve()
    if not path.is_absolute() and "/" not in name_or_path:
        named = reward_models_dir() / name_or_path
        if (named / REWARD_RECORD).is_file():
            return named.resolve()
    return None


class TrainedRewardModel:
    """A reward model saved by :func:`genlab.alignment.reward_model.training.train_reward_model`.

    Inputs longer than the model's context window keep their last tokens (the response's end).
    """

    def __init__(self, name_or_path: str | Path, *, batch_size: int = 8) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = find_reward_model(str(name_or_path))
        if folder is None:
            raise ModelNotFoundError(f"no trained reward model {str(name_or_path)!r}: {_known_reward_models()}.")
        try:
            self.record = json.loads((folder / REWARD_RECORD).read_text(encoding="utf-8"))
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        except Exception as error:  # noqa: BLE001 - damaged files fail in many ways
            raise ModelLoadError(f"could not load the reward model in {folder}: {_first_line(error)}.") from None
        self.path = folder
        self.formatting: Formatting = self.record.get("formatting", {}).get("style", "chat")
        self.batch_size = batch_size
        self.name = folder.name
        self.pad_token_id = self.model.config.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.max_tokens = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        _check_lengths(prompts, responses)
        sequences = [
            reward_input_ids(self.tokenizer, p, r, self.formatting)[-self.max_tokens :] for p, r in zip(prompts, responses)
        ]
        return score_token_ids(self.model, sequences, self.pad_token_id, batch_size=self.batch_size)


def _known_reward_models() -> str:
    folder = reward_models_dir()
    names = sorted(p.name for p in folder.iterdir() if (p / REWARD_RECORD).is_file()) if folder.is_dir() else []
    return f"not a reward model folder, nor a name in {folder} (known: {', '.join(names) or 'none yet'})"


# --- specs and trl -----------------------------------------------------------------------------------


def _model_and_label(spec: str, prefix: str, what: str) -> tuple[str, str]:
    model, sep, label = spec.removeprefix(prefix).rpartition(":")  # a label has no colon; a path might
    if not sep or not model.strip() or not label.strip():
        raise RewardSpecError(f"reward {spec!r} needs a model and a label: write {prefix}<folder or hub id>:<{what}>.")
    return model.strip(), label.strip()


def load_reward(spec: str) -> RewardFunction:
    """The reward a spec names: ``non-toxicity``, ``non-toxicity:<classifier>:<toxic label>``,
    ``classifier:<model>:<label>``, or a trained reward model (a folder, or a name under
    ``$GENLAB_HOME/reward_models``)."""
    spec = spec.strip()
    if spec == "non-toxicity":
        return NonToxicityReward()
    if spec.startswith("non-toxicity:"):
        return NonToxicityReward(*_model_and_label(spec, "non-toxicity:", "toxic label"))
    if spec.startswith("classifier:"):
        return ClassifierReward(*_model_and_label(spec, "classifier:", "label"))
    if find_reward_model(spec) is not None:
        return TrainedRewardModel(spec)
    raise RewardSpecError(f"unknown reward {spec!r}: use {SPEC_FORMS} ({_known_reward_models()}).")


def _message_text(value: Any, role: str | None) -> str:
    """Plain text of a trl prompt or completion: a string, or a conversation (a list of messages)."""
    if isinstance(value, str):
        return value
    messages = [m for m in value if role is None or m.get("role") == role] or list(value)
    content = messages[-1].get("content", "") if messages else ""
    if isinstance(content, list):  # multimodal parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def as_trl_reward_func(reward: RewardFunction) -> Callable[..., list[float]]:
    """``reward`` as a trl reward function, ``(prompts, completions, **kwargs) -> list[float]``.

    trl's GRPO and RLOO trainers call it with plain strings, or with conversations (lists of
    ``{"role", "content"}`` messages); for those the last user message is the prompt and the last
    assistant message the response. The function's ``__name__`` is the reward's name, which trl logs.
    """

    def reward_func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        texts = [_message_text(p, "user") for p in prompts]
        responses = [_message_text(c, "assistant") for c in completions]
        return [float(score) for score in reward(texts, responses)]

    reward_func.__name__ = reward.name.replace("/", "_").replace(":", "_")
    reward_func.__qualname__ = reward_func.__name__
    return reward_func


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__
