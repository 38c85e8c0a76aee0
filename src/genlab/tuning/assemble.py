"""Turn a recipe's data section into training and validation features.

The main task is split (seeded) into training and validation rows; validation rows are never trained
on and are the rows scored after training. Mixture tasks add training rows only, in the proportions
their weights give. Continued pre-training reads raw text and packs it into blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genlab.atomic import atomic_write_text
from genlab.data.example import Example
from genlab.models.load import LoadedModel
from genlab.tuning.data import hold_out_test
from genlab.tuning.recipe import DataConfig, FinetuneRecipe


@dataclass
class TrainingData:
    train: object  # genlab.tuning.data.FeatureSet
    validation: object  # FeatureSet
    validation_rows: list[Example]  # the held-out rows, for scoring generations after training
    sources: list[str]  # data files read (for lineage)
    test_rows: list[Example] = field(default_factory=list)  # data.test_size: the held-out test part
    test_path: str | None = None  # data.test: the separate test file


def resolve_data_path(path: str, recipe_dir: Path | None) -> str:
    """A relative path is read from the current folder, or else from the recipe's folder."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return str(candidate)
    if not candidate.is_absolute() and recipe_dir is not None and (recipe_dir / candidate).exists():
        return str(recipe_dir / candidate)
    return path  # "builtin", a hub id, or a missing file that the loader reports


def assemble(recipe: FinetuneRecipe, loaded: LoadedModel, recipe_dir: Path | None = None, *, raw_text: bool = False) -> TrainingData:
    """The recipe's rows as training features: instructions from input/target pairs, or (``raw_text``,
    continued pre-training) documents from ``data.text_field`` packed into blocks."""
    from genlab.data.loaders import load_examples
    from genlab.data.splits import split_examples

    data = recipe.data
    main_path = resolve_data_path(data.path, recipe_dir)
    rows = load_examples(
        main_path,
        input_field=data.text_field if raw_text else data.input_field,
        target_field=None if raw_text else data.target_field,
        limit=data.limit,
        require_target=not raw_text,
    )
    test_rows: list[Example] = []
    if data.test_size:  # held out before validation: never trained on, never used to stop or choose
        rows, test_rows = hold_out_test(rows, data.test_size, data.split_seed)
    test_path = resolve_data_path(data.test, recipe_dir) if data.test is not None else None
    size = int(data.validation_size) if data.validation_size >= 1 else data.validation_size
    train_rows, validation_rows = split_examples(rows, test_size=size, seed=data.split_seed)
    if raw_text:
        validation = _packed_validation(validation_rows, loaded, data)
        return TrainingData(_packed(train_rows, loaded, data), validation, validation_rows, [main_path], test_rows, test_path)
    train = _instructions(train_rows, loaded, data, data.template)
    validation = _instructions(validation_rows, loaded, data, data.template)
    sources = [main_path]
    if data.mixture:
        parts = [(train, data.weight)]
        for task in data.mixture:
            path = resolve_data_path(task.path, recipe_dir)
            task_rows = load_examples(
                path, input_field=task.input_field, target_field=task.target_field, limit=task.limit
            )
            parts.append((_instructions(task_rows, loaded, data, task.template), task.weight))
            sources.append(path)
        from genlab.tuning.data import mix_tasks

        train = mix_tasks(parts, seed=recipe.training.seed)
    return TrainingData(train, validation, validation_rows, sources, test_rows, test_path)


def _instructions(rows: list[Example], loaded: LoadedModel, data: DataConfig, template: str) -> object:
    from genlab.tuning.data import build_instruction_features

    return build_instruction_features(
        rows, loaded, template=template, chat=data.chat, max_length=data.max_length,
        completion_only=data.completion_only,
    )  # fmt: skip


def _packed(rows: list[Example], loaded: LoadedModel, data: DataConfig) -> object:
    from genlab.tuning.data import pack_texts

    return pack_texts([row.input for row in rows], loaded.tokenizer, block_size=data.block_size)


def _packed_validation(rows: list[Example], loaded: LoadedModel, data: DataConfig) -> object:
    """Validation blocks; held-out text shorter than one block gives none (no validation loss), not an error."""
    from genlab.tuning.features import FeatureSet

    texts = [row.input for row in rows if row.input.strip()]
    encoded = loaded.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    tokens = sum(len(ids) + 1 for ids in encoded)  # each document is followed by eos
    if tokens < data.block_size:
        return FeatureSet()
    return _packed(rows, loaded, data)


def write_validation_file(rows: list[Example], folder: Path, data: DataConfig, name: str = "validation.jsonl") -> Path:
    """The held-out rows as JSONL with the recipe's field names, so ``genlab eval`` can read them too."""
    lines = [
        json.dumps({"id": row.id, data.input_field: row.input, data.target_field: row.target}) + "\n" for row in rows
    ]
    return atomic_write_text(folder / name, "".join(lines))


def write_test_split(data: TrainingData, folder: Path, config: DataConfig) -> Path | None:
    """The test split to score once after training: the separate file, or the held-out test rows written out."""
    if data.test_path is not None:
        return Path(data.test_path)
    return write_validation_file(data.test_rows, folder, config, "test.jsonl") if data.test_rows else None
