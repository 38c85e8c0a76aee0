"""Benchmark: what MLflow tracking costs (issue 23) -- live logging while training, and `genlab runs export`.

1. Live logging: the same fine-tune (same recipe, rows and steps, a loss logged every step: the worst
   case) trained without and with ``tracking: {mlflow: sqlite:///...}``, alternated in one process,
   R rounds each; the median seconds per step of each and their ratio (tracked / untracked).
2. Export: a lineage store of T lifecycle-shaped trees (a lifecycle, 4 steps, a fine-tune with P
   loss points and an evaluation under it) exported into a new MLflow store, then exported again
   (nothing new: the re-export finds every run and logs no point twice); seconds and runs per second.

    python bench/tracking.py [--model tiny|NAME] [--steps 20] [--rounds 3] [--trees 10] [--points 200]

The default is the tiny random model, where a training step takes milliseconds and logging is the
largest share it can be; on the default model (``--model smollm2-135m-instruct``) a step takes
seconds. Figures depend on the machine's load: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def train_once(model: str, steps: int, tracking_uri: str | None, name: str) -> float:
    """One fine-tune through the registry, as `genlab finetune` runs it; its seconds per step."""
    from genlab.lineage import LineageStore
    from genlab.registry import get_method
    from genlab.tracking.live import live_tracking
    from genlab.tuning.recipe import FinetuneRecipe

    recipe = FinetuneRecipe.model_validate({
        "name": name, "model": model, "method": "lora", "lora": {"r": 8, "alpha": 16},
        "data": {"path": "builtin", "validation_size": 4, "max_length": 512},
        "training": {"max_steps": steps, "batch_size": 2, "log_every": 1, "eval_every": 10_000, "save_every": 10_000},
        "evaluation": {"enabled": False},
        **({"tracking": {"mlflow": tracking_uri, "experiment": "bench"}} if tracking_uri else {}),
    })  # fmt: skip
    with LineageStore() as store, live_tracking(recipe.tracking, store):
        result = get_method("lora").run(recipe, store=store, progress=False)
    return result.metrics["seconds_per_step"]


def bench_live(args: argparse.Namespace, folder: Path) -> None:
    model = args.model
    if model == "tiny":
        from genlab.models.tiny import save_tiny_model

        model = str(save_tiny_model(folder / "tiny"))
    uri = f"sqlite:///{folder / 'live.db'}"
    train_once(model, 2, uri, "warm-up")  # imports, the MLflow store's creation, the model's first load
    off, on = [], []
    for round_ in range(args.rounds):  # alternated, so load changes hit both alike
        off.append(train_once(model, args.steps, None, f"off-{round_}"))
        on.append(train_once(model, args.steps, uri, f"on-{round_}"))
    print(f"live logging, {args.model}, {args.steps} steps, a loss logged every step, {args.rounds} rounds each:")
    print(f"  untracked  median {statistics.median(off) * 1000:8.1f} ms/step   {[round(s * 1000, 1) for s in off]}")
    print(f"  tracked    median {statistics.median(on) * 1000:8.1f} ms/step   {[round(s * 1000, 1) for s in on]}")
    print(f"  ratio tracked/untracked: {statistics.median(on) / statistics.median(off):.3f}x")


def write_trees(store: object, trees: int, points: int, folder: Path) -> int:
    from genlab.lineage import record_run

    data = folder / "train.jsonl"
    data.write_text('{"dialogue": "A: hi", "summary": "greeting"}\n')
    count = 0
    for tree in range(trees):
        with record_run("lifecycle", {"recipe": {"name": f"bench-{tree}"}}, store=store) as life:
            for step in ("scope", "select", "adapt.lora", "evaluate"):
                with record_run(f"lifecycle.{step.split('.')[0]}", {"step": step}, store=store) as run:
                    life.add_child(run)
                    run.use(data, "dataset", {"label": "train split"})
                    if step == "adapt.lora":
                        with record_run("finetune", {"recipe": {"name": f"bench-{tree}-lora"}}, store=store) as ft:
                            for number in range(1, points + 1):
                                ft.log_metric("train_loss", 3.0 / number, step=number)
                            with record_run("eval", {"metrics": ["rouge"]}, store=store) as evaluation:
                                evaluation.log_metric("rouge1", 0.3)
                            store.link(("run", ft.id), ("run", evaluation.id), "tuned")  # type: ignore[attr-defined]
                        store.link(("run", run.id), ("run", ft.id), "child")  # type: ignore[attr-defined]
                        count += 2
            count += 5
    return count


def bench_export(args: argparse.Namespace, folder: Path) -> None:
    from genlab.lineage import LineageStore
    from genlab.tracking.config import TrackingConfig
    from genlab.tracking.mlflow_export import export_runs
    from genlab.tracking.mlflow_target import open_mlflow

    with LineageStore(folder / "export-lineage.sqlite") as store:
        runs = write_trees(store, args.trees, args.points, folder)
        config = TrackingConfig(mlflow=f"sqlite:///{folder / 'export.db'}")
        start = time.perf_counter()
        target = open_mlflow(config)
        opened = time.perf_counter() - start
        print(f"export ({runs} runs in {args.trees} trees, {args.points} loss points per fine-tune; "
              f"opening a new MLflow store, its migrations included: {opened:.2f} s):")
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            result = export_runs(store, config, target=target)
            timings.append(time.perf_counter() - start)
            points = sum(run.metric_points_logged for run in result.runs)
            print(f"  {'first export' if len(timings) == 1 else 're-export   '}: {timings[-1]:6.2f} s for {len(result.runs)} runs "
                  f"({len(result.runs) / timings[-1]:5.1f} runs/s), {result.created} created, {points} metric points logged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (a random 2-layer model) or a model name/folder")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from genlab.home import models_dir

        os.environ["GENLAB_MODELS_DIR"] = str(models_dir())  # packs converted before are used as they are
        os.environ["GENLAB_HOME"] = str(folder / "home")  # the bench's runs stay out of the user's lineage
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
        bench_export(args, folder)
        bench_live(args, folder)
        print(f"load average at end: {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
