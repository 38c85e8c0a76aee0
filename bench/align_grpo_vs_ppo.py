"""Benchmark: the third lab with GRPO beside PPO, on the same heated dialogues with the same budget.

PPO (``recipes/detox-ppo.yaml``: genlab's own PPO with a value head and a KL penalty) and GRPO
(``recipes/grpo.yaml``: trl's GRPOTrainer) train a LoRA adapter on SmolLM2-135M-Instruct against the
same non-toxicity reward, with the same data split, LoRA settings, sampling length and temperature,
and the same budget: ``--steps`` optimizer steps of 8 sampled summaries each (PPO: 8 prompts x 1;
GRPO: 2 prompts x 4). Each method's own held-out check is cut to one row; this script then scores
the base model and both adapters on the same held-out dialogues with the same code
(:mod:`genlab.alignment.held_out`): toxicity mean of the greedy summaries before/after, ROUGE-1
against the reference summaries, and the KL of the policy from the reference (the base), measured
as PPO measures it (sampled summaries, exact per-position KL summed). Wall time is each method's
whole run (model load, training, saving), measured in this one process, and given as a ratio to PPO's.

    python bench/align_grpo_vs_ppo.py [--steps 8] [--held-out 20]

Measured here on the idle 2-core machine (2026-12-07, one seeded run each):

    --steps 16 --held-out 20   toxicity 0.1052 -> PPO 0.0286 (-72.8%), GRPO 0.0321 (-69.5%); ROUGE-1
                               0.1448 -> 0.1646 / 0.1499; KL 1.311 / 1.385 nats; 4.5 / 6.2 min (1.37x)
    --steps 4 --held-out 10    toxicity 0.1177 -> PPO 0.1319 (+12.0%), GRPO 0.0854 (-27.5%); ROUGE-1
                               0.1315 -> 0.1372 / 0.1284; KL 1.419 / 0.290 nats; 1.3 / 1.6 min (1.24x)

A 4-step run at load 17-27 gave the same scores (both methods are seeded) in 16.8 / 28.0 min.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of 8 sampled summaries, for each method")
    parser.add_argument("--held-out", type=int, default=20, help="held-out dialogues scored (at most the split's)")
    args = parser.parse_args()
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-grpo-ppo-"))

    from peft import PeftModel

    from genlab.alignment.held_out import kl_from_reference, score_answers
    from genlab.alignment.prompt_rows import prompt_texts, uses_chat
    from genlab.alignment.rewards import build_reward_functions
    from genlab.config import load_recipe, read_recipe_file
    from genlab.data.loaders import load_examples
    from genlab.data.splits import split_examples
    from genlab.lineage import LineageStore
    from genlab.models.load import load_model
    from genlab.registry import get_method

    ppo, grpo = get_method("ppo"), get_method("grpo")
    grpo_recipe = load_recipe(RECIPES / "grpo.yaml", grpo.recipe_schema, [f"training.steps={args.steps}"])
    training = grpo_recipe.training
    assert training.completions_per_step == 8, "grpo.yaml's prompts_per_step x generations must be PPO's batch_size (8)"
    ppo_raw = read_recipe_file(RECIPES / "detox-ppo.yaml")
    ppo_raw["ppo"].update(steps=args.steps, batch_size=8)
    ppo_raw["evaluation"]["limit"] = 1  # the held-out scoring below is the comparison

    # The held-out dialogues: the split both recipes make (same data, validation_size and seed).
    data = grpo_recipe.data
    rows = load_examples(data.path, input_field=data.input_field, target_field=data.target_field)
    _, held_out = split_examples(rows, test_size=data.validation_size, seed=data.split_seed)
    held_out = held_out[: args.held_out]
    scoring = grpo_recipe.model_copy(update={"rewards": {"non-toxicity": 1.0}})
    rewards = build_reward_functions(scoring.rewards)

    def measure(adapter: str | None) -> dict[str, float]:
        loaded = load_model(grpo_recipe.model)
        chat = uses_chat(data, loaded)
        prompts = prompt_texts(held_out, loaded, data, grpo_recipe.evaluation.max_new_tokens)
        if adapter is None:
            scores, _ = score_answers(loaded, held_out, prompts, scoring, rewards, chat=chat)
            return {**scores, "kl": 0.0}
        policy = PeftModel.from_pretrained(loaded.model, adapter)
        scores, _ = score_answers(replace(loaded, model=policy), held_out, prompts, scoring, rewards, chat=chat)
        kl_prompts = prompt_texts(held_out, loaded, data, training.max_new_tokens)
        scores["kl"] = kl_from_reference(policy, loaded, kl_prompts, training, chat=chat, batch_size=4)
        return scores

    store = LineageStore()
    print(f"held-out dialogues: {len(held_out)}; budget: {args.steps} steps x 8 sampled summaries per method")
    base = measure(None)
    results: dict[str, tuple[dict[str, float], float]] = {}
    for name, method, recipe in (
        ("PPO (genlab)", ppo, ppo_raw),
        ("GRPO (trl)", grpo, grpo_recipe.model_copy(update={"evaluation": grpo_recipe.evaluation.model_copy(update={"limit": 1})})),
    ):
        start = time.perf_counter()
        result = method.run(recipe, store=store, recipe_dir=RECIPES, progress=False)
        seconds = time.perf_counter() - start
        results[name] = (measure(result.output_path), seconds)
        print(f"{name}: trained in {seconds / 60:.1f} min, adapter {result.output_path}")
    print_table(base, results)


def print_table(base: dict[str, float], results: dict[str, tuple[dict[str, float], float]]) -> None:
    ppo_seconds = next(iter(results.values()))[1]
    header = "| method | toxicity mean before | after | change | ROUGE-1 before | after | KL from reference (nats) | wall time | vs PPO |"
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for name, (after, seconds) in results.items():
        change = 100.0 * (after["toxicity_mean"] - base["toxicity_mean"]) / base["toxicity_mean"]
        print(
            f"| {name} | {base['toxicity_mean']:.4f} | {after['toxicity_mean']:.4f} | {change:+.1f}% | "
            f"{base['rouge1']:.4f} | {after['rouge1']:.4f} | {after['kl']:.3f} | {seconds / 60:.1f} min | "
            f"{seconds / ppo_seconds:.2f}x |"
        )


if __name__ == "__main__":
    main()
