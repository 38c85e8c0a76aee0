"""The starting policy and the prompts of an RL run (PPO, GRPO, RLOO; KTO and ORPO load their policy here too).

Prompts are genlab's prompt template, in the tokenizer's chat format when it has one, built the same
way for every method, so they all sample from the same prompts. trl receives them as
plain text (already formatted) with each row's reference answer in a ``reference`` column, which
trl hands to the reward functions by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.alignment.rewards.text import REFERENCE_COLUMN
from genlab.data.builtin import source_file
from genlab.data.example import Example
from genlab.data.loaders import load_examples
from genlab.data.splits import split_examples
from genlab.models.adapters import merge_adapter, resolve_adapter
from genlab.models.load import LoadedModel, load_model
from genlab.prompting.chat import has_chat_template
from genlab.prompting.icl import build_prompt
from genlab.prompting.templates import get_template
from genlab.tuning.assemble import resolve_data_path


def load_starting_model(model: str, adapter: str | None, run: Any) -> LoadedModel:
    """``model``, with ``adapter`` (a LoRA adapter's name or folder) merged in when given; both recorded as inputs."""
    loaded = load_model(model)
    if loaded.path is not None:
        run.use(loaded.path, "model", {"model": loaded.name})
    if adapter is not None:
        folder = resolve_adapter(adapter)
        run.use(folder, "adapter", {"base": loaded.name, "role": "starting policy"})
        loaded = merge_adapter(loaded, folder)
    return loaded


def split_prompt_rows(data: Any, recipe_dir: Path | None, run: Any) -> tuple[list[Example], list[Example]]:
    """(train, held out) rows of ``data`` (a PromptDataConfig); the data file is recorded as an input."""
    path = resolve_data_path(data.path, recipe_dir)
    rows = load_examples(
        path, input_field=data.input_field, target_field=data.target_field, limit=data.limit,
        require_target=data.target_field is not None,
    )  # fmt: skip
    source = source_file(path)
    if source is not None:
        run.use(source, "dataset", {"input_field": data.input_field, "target_field": data.target_field})
    if data.validation_size == 0:
        return rows, []
    size = int(data.validation_size) if data.validation_size >= 1 else data.validation_size
    return split_examples(rows, test_size=size, seed=data.split_seed)


def uses_chat(data: Any, loaded: LoadedModel) -> bool:
    return data.chat and has_chat_template(loaded.tokenizer) and not loaded.is_encoder_decoder


def prompt_texts(rows: list[Example], loaded: LoadedModel, data: Any, max_new_tokens: int) -> list[str]:
    """Each row's prompt as the model reads it (chat-formatted when ``data.chat`` and the tokenizer allow)."""
    template = get_template(data.template)
    chat = uses_chat(data, loaded)
    return [
        build_prompt(
            template, row, None, 0, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
            max_new_tokens=max_new_tokens, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
        ).text
        for row in rows
    ]


def trl_prompt_rows(rows: list[Example], prompts: list[str]) -> list[dict[str, str]]:
    """trl's prompt-only rows: the formatted prompt and the row's reference answer (empty when it has none)."""
    return [{"prompt": prompt, REFERENCE_COLUMN: row.target or ""} for row, prompt in zip(rows, prompts, strict=True)]
