"""Chat prompts through the tokenizer's own chat template, and trimming a conversation to fit.

An instruct model was trained on text in its chat format (ChatML for SmolLM2: ``<|im_start|>user\\n
...<|im_end|>\\n<|im_start|>assistant\\n``); a prompt it reads should be in that format too. A model
without a chat template (a base model, FLAN-T5) reads the plain text.

Token counts follow the generation engine: chat-formatted text already holds its special tokens, so
it is encoded without adding more; plain text gets the tokenizer's own (T5's ``</s>``).
"""

from __future__ import annotations

from typing import Any

from genlab.errors import GenlabError, InvalidValueError, PromptTooLongError

ROLES = ("system", "user", "assistant")


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def count_tokens(tokenizer: Any, text: str, *, chat_formatted: bool = False) -> int:
    """How many tokens the model reads for ``text`` (see the module docstring on special tokens)."""
    return len(tokenizer(text, add_special_tokens=not chat_formatted)["input_ids"])


def _check_messages(messages: list[dict[str, Any]]) -> None:
    if not messages:
        raise InvalidValueError("messages=[] is not allowed: a conversation needs at least one message.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidValueError(
                f"messages[{index}] is not allowed: each message needs a role, one of {', '.join(ROLES)}."
            )
        if not isinstance(message.get("content"), str):
            raise InvalidValueError(f"messages[{index}] is not allowed: its content must be text.")


def format_chat(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """The conversation as the model reads it, through the tokenizer's chat template."""
    _check_messages(messages)
    if not has_chat_template(tokenizer):
        raise GenlabError(
            "this tokenizer has no chat template, so it cannot format a conversation; "
            "use a plain prompt or an instruct model."
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def as_user_prompt(tokenizer: Any, text: str, system: str | None = None) -> str:
    """``text`` as one user turn (after an optional system message); unchanged without a chat template."""
    if not has_chat_template(tokenizer):
        return text
    messages = [{"role": "system", "content": system}] if system is not None else []
    return format_chat(tokenizer, [*messages, {"role": "user", "content": text}])


def trim_history(
    tokenizer: Any, messages: list[dict[str, Any]], context_window: int, reserve_tokens: int
) -> list[dict[str, Any]]:
    """Drop the oldest turns until the formatted conversation plus ``reserve_tokens`` fits the window.

    A leading system message and everything from the last user message on are always kept; a turn
    (a user message and the replies after it) is dropped whole, so the history never starts with an
    orphaned assistant reply. Raises :class:`PromptTooLongError` if what is always kept does not fit.
    """
    _check_messages(messages)
    if context_window < 1:
        raise InvalidValueError(f"context_window={context_window!r} is not allowed: it must be at least 1.")
    if reserve_tokens < 0:
        raise InvalidValueError(f"reserve_tokens={reserve_tokens!r} is not allowed: it must be 0 or more.")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise InvalidValueError("messages is not allowed: the conversation has no user message.")
    head = messages[:1] if messages[0]["role"] == "system" else []
    middle = messages[len(head) : users[-1]]
    tail = messages[users[-1] :]

    def tokens(history: list[dict[str, Any]]) -> int:
        return count_tokens(tokenizer, format_chat(tokenizer, [*head, *history, *tail]), chat_formatted=True)

    used = tokens(middle)
    while used + reserve_tokens > context_window and middle:
        cut = 1
        while cut < len(middle) and middle[cut]["role"] != "user":
            cut += 1  # the replies belong to the turn being dropped
        middle = middle[cut:]
        used = tokens(middle)
    if used + reserve_tokens > context_window:
        kept = "the system message and the last user message have" if head else "the last user message has"
        raise PromptTooLongError(
            f"{kept} {used} tokens and {reserve_tokens} are reserved: {used} + {reserve_tokens} "
            f"exceeds the model's context window of {context_window} tokens."
        )
    return [*head, *middle, *tail]
