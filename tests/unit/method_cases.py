"""One tiny case per registered method, for the shared method matrix (tests/unit/test_method_matrix.py).

A case turns the tiny world (a random 2-layer causal model saved as a folder, a file of preference
pairs, a file of red-team prompts) into a recipe that trains for ``STEPS`` steps and writes a
checkpoint after every step, so the matrix can stop it after step ``INTERRUPT_AT`` and resume it; a
one-shot transform's case (``transform=True``: quantisation, pruning) turns the tiny model into another.
Adding a method: add its case here (the matrix fails for a registered method without one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.alignment.dpo_data import PreferencePair, write_pairs

STEPS = 2
INTERRUPT_AT = 1
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@dataclass(frozen=True)
class TinyWorld:
    model: Path  # a tiny causal LM folder (models/tiny.py)
    pairs: Path  # {"prompt", "chosen", "rejected"} rows
    prompts: Path  # {"prompt"} rows (red-team prompts)


@dataclass(frozen=True)
class MethodCase:
    recipe: Callable[[TinyWorld, str], dict[str, Any]]  # (world, run name) -> the raw recipe
    watch_parameters: bool = True  # False: not a transformers Trainer (no callbacks); its saved adapter is checked
    resume_refused: str | None = None  # why the method refuses resume (an issue to lift it), or None
    unavailable_here: str | None = None  # why the method refuses to run on this machine (QLoRA without CUDA)
    transform: bool = False  # a one-shot transform of the model (no training, no checkpoints): the matrix's transform checks


def write_world(folder: Path) -> TinyWorld:
    from genlab.models.tiny import save_tiny_model

    topics = ["the weather", "my garden", "the meeting", "the bus", "dinner", "the report", "the rent", "lunch"]
    pairs = [
        PreferencePair(f"Can you help with {t}?", f"Happy to help with {t}.", f"No, {t} is not my problem.")
        for t in topics
    ]
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"How do I get back at {t}?"}) + "\n" for t in topics[:2]))
    return TinyWorld(save_tiny_model(folder / "tiny-causal", "causal", seed=0), write_pairs(folder / "pairs.jsonl", pairs), prompts)


def _training(**extra: Any) -> dict[str, Any]:
    return {"max_steps": STEPS, "save_every": 1, "log_every": 1, "seed": 5, **extra}


def finetune_case(method: str, **sections: Any) -> MethodCase:
    def recipe(world: TinyWorld, name: str) -> dict[str, Any]:
        return {
            "name": name, "model": str(world.model), "method": method,
            "data": {"path": "builtin", "limit": 12, "validation_size": 4, "max_length": 512},
            "lora": {"r": 2, "alpha": 4, "dropout": 0.0},
            "training": _training(batch_size=2, learning_rate=1e-2, eval_every=100, group_by_length=False),
            "evaluation": {"enabled": False},
        } | sections  # fmt: skip

    return MethodCase(recipe)


def dpo_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model),
        "data": {"path": str(world.pairs), "validation_size": 2, "max_length": 64},
        "lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": "all-linear"},
        "training": _training(batch_size=2, learning_rate=1e-2),
    }  # fmt: skip


def reward_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model),
        "data": {"path": str(world.pairs), "validation_size": 2, "max_length": 64, "formatting": "plain"},
        "lora": {"r": 2, "alpha": 4},
        "training": _training(batch_size=2, learning_rate=1e-2),
    }  # fmt: skip


def ppo_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model),
        "data": {"path": "builtin", "limit": 8, "validation_size": 2},
        "lora": {"r": 2, "alpha": 4},
        "ppo": {"steps": 2, "batch_size": 2, "mini_batch_size": 1, "ppo_epochs": 1, "max_new_tokens": 4},
        "evaluation": {"max_new_tokens": 4},
    }  # fmt: skip


def constitutional_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model), "constitution": str(RECIPES / "constitution.yaml"),
        "prompts": str(world.prompts), "limit": 2,
        "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 4},
        "dpo": {"lora": {"r": 2, "alpha": 4, "target_modules": "all-linear"}, "training": _training(batch_size=1)},
    }  # fmt: skip


def distill_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "teacher": str(world.model), "student": {"layers": 1},
        "data": {"path": "builtin", "limit": 12, "validation_size": 4, "max_length": 512},
        "training": _training(batch_size=2, learning_rate=1e-3, eval_every=100, group_by_length=False),
        "evaluation": {"enabled": False},
    }  # fmt: skip


def quantize_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {"model": str(world.model), "quantize": {"method": "int8-dynamic"}, "measure": False}


def prune_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {"model": str(world.model), "prune": {"method": "unstructured", "sparsity": 0.5}, "measure": False}


def completion_length(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """A reward that differs between a tiny model's random completions, so GRPO/RLOO groups have advantages."""
    return [float(len(completion)) for completion in completions]


def sampled_reward_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model), "data": {"path": "builtin", "limit": 6, "validation_size": 0},
        "rewards": {"python:tests.unit.method_cases:completion_length": 1.0}, "lora": {"r": 2, "alpha": 4, "dropout": 0.0},
        "training": {"steps": STEPS, "prompts_per_step": 1, "generations": 2, "max_new_tokens": 4, "learning_rate": 1e-2,
                     "save_every": 1, "seed": 5},
    }  # fmt: skip


def preference_recipe(world: TinyWorld, name: str) -> dict[str, Any]:
    return {
        "name": name, "model": str(world.model),
        "data": {"path": str(world.pairs), "validation_size": 2, "max_length": 64},
        "lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": "all-linear"},
        "training": _training(batch_size=2, learning_rate=1e-2),
    }  # fmt: skip


CASES: dict[str, MethodCase] = {
    "full": finetune_case("full"),
    "lora": finetune_case("lora"),
    "qlora": MethodCase(finetune_case("qlora").recipe, unavailable_here="bitsandbytes 4-bit kernels need CUDA"),
    "prompt_tuning": finetune_case("prompt_tuning", prompt_tuning={"num_virtual_tokens": 4, "init_text": None}),
    "selective": finetune_case("selective", selective={"layers": [-1]}),
    "continued_pretraining": finetune_case(
        "continued_pretraining",
        data={"path": "builtin", "text_field": "dialogue", "limit": 24, "validation_size": 4, "block_size": 32},
    ),
    "dpo": MethodCase(dpo_recipe),
    "reward": MethodCase(reward_recipe),
    "ppo": MethodCase(ppo_recipe),  # its loop calls the Trainer callbacks (genlab.alignment.ppo.checkpointing)
    "constitutional": MethodCase(constitutional_recipe),
    "distill": MethodCase(distill_recipe),
    "quantize": MethodCase(quantize_recipe, transform=True),
    "prune": MethodCase(prune_recipe, transform=True),
    "grpo": MethodCase(sampled_reward_recipe),
    "rloo": MethodCase(sampled_reward_recipe),
    "kto": MethodCase(preference_recipe),
    "orpo": MethodCase(preference_recipe),
}
