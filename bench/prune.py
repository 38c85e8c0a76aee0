"""Benchmark: magnitude pruning of the default model, each setting measured against the original.

Every setting runs through :func:`genlab.optimize.prune.run.prune` (the product's path): prune, optionally
a LoRA recovery fine-tune, save, then measure the original and the pruned model in fresh processes
(size on disk, parameters, peak memory, tokens/s at batch 1, ROUGE-1 of greedy summaries of the eval
rows). The original is measured again in each run, so every ratio compares two measurements taken
minutes apart on the same (shared) machine. Printed: each run's report table, then one summary.

    python bench/prune.py [--model NAME] [--settings neurons:0.3,unstructured:0.5] [--eval-limit 20]
                          [--recover-steps 0] [--recover-data FILE]

Recovery rows should not be the eval rows: the default eval set is genlab's builtin dialogues, and
``--recover-data`` defaults to ../shared/datasets/dialogsum/dev.jsonl (other dialogues).

Measured figures are in the docstring of :mod:`genlab.optimize.prune.run` and the commit that added them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_RECOVERY = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "dialogsum" / "dev.jsonl"


def parse_settings(text: str) -> list[tuple[str, float]]:
    pairs = []
    for item in text.split(","):
        method, _, sparsity = item.partition(":")
        pairs.append((method.strip(), float(sparsity)))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--settings", default="neurons:0.3,unstructured:0.5", help="method:sparsity, comma-separated")
    parser.add_argument("--eval-data", default="builtin")
    parser.add_argument("--eval-limit", type=int, default=20)
    parser.add_argument("--recover-steps", type=int, default=0, help="also run each setting with this many LoRA steps")
    parser.add_argument("--recover-data", default=str(DEFAULT_RECOVERY))
    parser.add_argument("--json", action="store_true", help="print the reports as JSON lines too")
    args = parser.parse_args()

    from genlab.cli.output import print_table
    from genlab.lineage import LineageStore
    from genlab.optimize.measure import EvalSpec
    from genlab.optimize.prune.recipe import PruneRecipe, prune_settings
    from genlab.optimize.prune.run import prune

    spec = EvalSpec(data=args.eval_data, limit=args.eval_limit)
    summary = []
    for method, sparsity in parse_settings(args.settings):
        for steps in sorted({0, args.recover_steps}):
            settings = prune_settings(
                method=method, sparsity=sparsity, recover_steps=steps, recover_data=args.recover_data if steps else None
            )
            start = time.perf_counter()
            with LineageStore() as store:
                report = prune(PruneRecipe(model=args.model, prune=settings, evaluation=spec), store=store, progress=False)
            seconds = time.perf_counter() - start
            title, columns, rows = report.table()
            print_table(title, columns, rows)
            if args.json:
                print(json.dumps(report.to_dict()))
            details = report.details
            achieved = details.get("sparsity", details.get("parameters_removed_fraction", 0.0))
            o, r = report.original, report.result
            summary.append([
                f"{method} {sparsity:g}" + (f" +{steps} LoRA steps" if steps else ""),
                f"{achieved:.3f}", f"{r.parameters / 1e6:.1f} / {o.parameters / 1e6:.1f}",
                f"{report.size_ratio:.2f}x", f"{r.tokens_per_second:.1f} / {o.tokens_per_second:.1f} ({report.speedup:.2f}x)",
                f"{r.quality['rouge1']:.4f} / {o.quality['rouge1']:.4f}" if "rouge1" in r.quality else "-",
                f"{seconds:.0f}",
            ])  # fmt: skip
    print_table(
        f"pruning {args.model} (ROUGE-1 on {args.eval_limit} {args.eval_data} rows; pruned / original)",
        ["setting", "sparsity or params removed", "params (M)", "smaller", "tokens/s", "ROUGE-1", "seconds"],
        summary,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
