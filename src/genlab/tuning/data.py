"""Supervised fine-tuning rows: the prompt evaluation will show, the target, and where the loss falls.

Instruction tuning trains on (prompt, target) pairs (Wei et al. 2021, "Finetuned Language Models Are
Zero-Shot Learners", arXiv:2109.01652). With completion-only loss a causal model learns only the
answer, not to reproduce prompts:

    L = -(1 / |T|) * sum_{t in T} log p(x_t | x_<t),   T = the target and end-token positions

(``completion_only=False`` sums over every position instead.)

**Causal models.** A fine-tuned model is evaluated on zero-shot prompts, so training shows it exactly
those: the prompt is :func:`genlab.prompting.icl.build_prompt`'s text for the row with no examples,
encoded as the generation engine encodes it (chat-formatted text without added special tokens,
plain text with them). Then

    input_ids = prompt_ids + target_ids + end_ids,   labels = [-100] * len(prompt_ids) + target_ids + end_ids

*Target tokens.* The target is the text the model would write right after the prompt. With a chat
template, the assistant's reply starts right after the generation prompt (ChatML:
``<|im_start|>assistant\\n`` then the reply, no space), and whatever the template puts before the
reply is kept. Without one, the reply follows the rendered prompt; if that ends in a visible character
(``Answer:``) one space is put before the target, as every builtin template does for its solved
examples (``Answer: {{ example.target }}``); after a newline (``What was going on?\\n``), none. The
target's ids are the tail of the tokenised ``prompt + target``, so they are the ids the tokenizer
gives that text in context (a SentencePiece word-start marker, a space merged into the word); if
tokenising them together would change the prompt's own ids, the target is tokenised on its own.

*End token.* The token the engine stops on: for a chat template, what the template puts after an
assistant reply, up to and including the first token in ``GenerationEngine.eos_ids`` (ChatML's
``<|im_end|>``; the newline after it is never generated, as the engine stops first); if the template
shows none, or for plain prompts, ``tokenizer.eos_token_id``.

**Encoder-decoder models** (T5, BART). The encoder reads the rendered template (no chat), encoded as
the engine does (with the tokenizer's own special tokens, T5's ``</s>``); ``labels`` are the
tokenised target with eos at the end (T5's tokenizer adds it; it is appended if the tokenizer does
not). ``max_length`` applies to the encoder input.

A row longer than ``max_length`` is dropped and listed in ``FeatureSet.dropped``; it is never
truncated (a truncated target teaches the model to stop mid-sentence).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genlab.data.example import Example
from genlab.errors import InvalidValueError
from genlab.models.load import LoadedModel
from genlab.prompting.chat import format_chat, has_chat_template
from genlab.prompting.icl import build_prompt
from genlab.prompting.templates import PromptTemplate, get_template
from genlab.tuning.features import IGNORE_INDEX, Feature, FeatureSet, training_collator
from genlab.tuning.mixture import mix_tasks
from genlab.tuning.packing import pack_texts

__all__ = ["FeatureSet", "build_instruction_features", "mix_tasks", "pack_texts", "training_collator"]

# build_prompt raises when a prompt does not fit the model; here a long row is dropped against
# max_length instead, so the window it checks against is made never to bind.
_NO_WINDOW = sys.maxsize
_REPLY_PROBE = "GENLAB-REPLY-PROBE"  # stands for a reply when reading how the chat template frames one


@dataclass
class _EncodedRow:
    prompt_ids: list[int]  # what the model reads
    answer_ids: list[int]  # what it learns to produce: target and end tokens (seq2seq: the labels)


def build_instruction_features(
    rows: Sequence[Example],
    loaded: LoadedModel,
    *,
    template: str | PromptTemplate = "summarize",
    chat: bool = True,
    max_length: int = 512,
    completion_only: bool = True,
) -> FeatureSet:
    """Training features for (input, target) rows; see the module docstring for the exact layout.

    ``chat`` uses the tokenizer's chat template when it has one, as evaluation does; ``max_length``
    bounds prompt + target tokens of a causal row and the encoder input of a seq2seq row.
    """
    if max_length < 1:
        raise InvalidValueError(f"max_length={max_length!r} is not allowed: it must be at least 1.")
    if not loaded.is_encoder_decoder and max_length > loaded.context_window:
        raise InvalidValueError(
            f"max_length={max_length} is not allowed: the model reads at most {loaded.context_window} tokens."
        )
    _require_targets(rows)
    prompt_template = template if isinstance(template, PromptTemplate) else get_template(template)
    if loaded.is_encoder_decoder:
        encoder: _Seq2SeqRows | _CausalRows = _Seq2SeqRows(loaded, prompt_template)
    else:
        encoder = _CausalRows(loaded, prompt_template, chat=chat)
    features = FeatureSet()
    longest = 0
    for row in rows:
        encoded = encoder.encode(row)
        length = len(encoded.prompt_ids) + (0 if loaded.is_encoder_decoder else len(encoded.answer_ids))
        if length > max_length:
            features.dropped.append(row.id)
            longest = max(longest, length)
            continue
        feature = _feature(encoded, loaded, completion_only)
        features.append(row.id, feature, len(encoded.prompt_ids), len(encoded.answer_ids))
    if rows and not features.features:
        raise InvalidValueError(
            f"all {len(rows)} rows are longer than max_length={max_length} tokens (the longest has {longest}), "
            "so none is left to train on; raise max_length or shorten the inputs."
        )
    return features


def _require_targets(rows: Sequence[Example]) -> None:
    for row in rows:
        if row.target is None or not row.target.strip():
            raise InvalidValueError(f"row {row.id!r} has no target, and fine-tuning needs one on every row.")


def _feature(encoded: _EncodedRow, loaded: LoadedModel, completion_only: bool) -> Feature:
    if loaded.is_encoder_decoder:
        input_ids, labels = encoded.prompt_ids, encoded.answer_ids
    else:
        input_ids = encoded.prompt_ids + encoded.answer_ids
        prompt_labels = [IGNORE_INDEX] * len(encoded.prompt_ids) if completion_only else encoded.prompt_ids
        labels = prompt_labels + encoded.answer_ids
    return {"input_ids": list(input_ids), "attention_mask": [1] * len(input_ids), "labels": list(labels)}


class _CausalRows:
    """Encode rows for a decoder-only model, the prompt exactly as evaluation builds and encodes it."""

    def __init__(self, loaded: LoadedModel, template: PromptTemplate, *, chat: bool) -> None:
        from genlab.generation.engine import GenerationEngine

        self.loaded = loaded
        self.template = template
        self.chat = chat and has_chat_template(loaded.tokenizer)
        self.engine = GenerationEngine(loaded)  # its encoding and stop tokens are the ones generation uses
        eos = _end_of_sequence_id(loaded.tokenizer, self.engine.eos_ids)
        if self.chat:
            self.reply_lead, self.end_ids = _chat_reply_frame(loaded.tokenizer, self.engine.eos_ids, eos)
        else:
            self.reply_lead, self.end_ids = "", [eos]

    def encode(self, row: Example) -> _EncodedRow:
        built = build_prompt(
            self.template, row, None, 0, tokenizer=self.loaded.tokenizer, context_window=_NO_WINDOW,
            max_new_tokens=0, chat=self.chat, is_encoder_decoder=False,
        )  # fmt: skip
        prompt_ids = self.engine.encode(built.text, formatted_chat=built.chat)
        target = str(row.target)
        lead = self.reply_lead if built.chat else _plain_reply_lead(built.text, target)
        target_ids = _continuation_ids(self.loaded.tokenizer, built.text, lead + target)
        return _EncodedRow(prompt_ids, target_ids + self.end_ids)


class _Seq2SeqRows:
    """Encode rows for an encoder-decoder model: the rendered template in, the target out."""

    def __init__(self, loaded: LoadedModel, template: PromptTemplate) -> None:
        from genlab.generation.engine import GenerationEngine

        self.loaded = loaded
        self.template = template
        self.engine = GenerationEngine(loaded)
        self.eos = _end_of_sequence_id(loaded.tokenizer, self.engine.eos_ids)

    def encode(self, row: Example) -> _EncodedRow:
        built = build_prompt(
            self.template, row, None, 0, tokenizer=self.loaded.tokenizer, context_window=_NO_WINDOW,
            max_new_tokens=0, chat=False, is_encoder_decoder=True,
        )  # fmt: skip
        labels = list(self.loaded.tokenizer(text_target=str(row.target))["input_ids"])
        if not labels or labels[-1] not in self.engine.eos_ids:
            labels.append(self.eos)  # a tokenizer that adds no eos: the model must still learn to stop
        return _EncodedRow(self.engine.encode(built.text), labels)


def _end_of_sequence_id(tokenizer: Any, stop_ids: set[int]) -> int:
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    if stop_ids:
        return min(stop_ids)
    raise InvalidValueError(
        "the tokenizer has no end-of-sequence token, so a training row cannot teach the model where to stop."
    )


def _chat_reply_frame(tokenizer: Any, stop_ids: set[int], eos: int) -> tuple[str, list[int]]:
    """What the chat template puts before an assistant reply (after the generation prompt) and the
    ids after it up to the first stop token; ``("", [eos])`` if the template cannot be read that way."""
    user = [{"role": "user", "content": "hi"}]
    asking = format_chat(tokenizer, user, add_generation_prompt=True)
    reply = {"role": "assistant", "content": _REPLY_PROBE}
    answered = format_chat(tokenizer, [*user, reply], add_generation_prompt=False)
    if not answered.startswith(asking) or _REPLY_PROBE not in answered[len(asking) :]:
        return "", [eos]
    lead, trail = answered[len(asking) :].split(_REPLY_PROBE, 1)
    trail_ids = list(tokenizer(trail, add_special_tokens=False)["input_ids"])
    stop_at = next((index for index, token in enumerate(trail_ids) if token in stop_ids), None)
    return lead, trail_ids[: stop_at + 1] if stop_at is not None else [eos]


def _plain_reply_lead(prompt: str, target: str) -> str:
    """One space between a prompt ending in a visible character and the target, as templates show answers."""
    return " " if prompt and not prompt[-1].isspace() and not target[:1].isspace() else ""


def _continuation_ids(tokenizer: Any, context: str, continuation: str) -> list[int]:
    """The ids of ``continuation`` as the tokenizer splits it after ``context`` (see the module docstring)."""
    context_ids = list(tokenizer(context, add_special_tokens=False)["input_ids"])
    joint_ids = list(tokenizer(context + continuation, add_special_tokens=False)["input_ids"])
    if joint_ids[: len(context_ids)] == context_ids:
        return joint_ids[len(context_ids) :]
    return list(tokenizer(continuation, add_special_tokens=False)["input_ids"])


def hold_out_test(rows: Sequence[Example], test_size: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(rows left for training and validation, test rows): a seeded test part (a fraction < 1 or a count)."""
    from genlab.data.splits import split_examples

    size = int(test_size) if test_size >= 1 else test_size
    return split_examples(list(rows), test_size=size, seed=seed)
