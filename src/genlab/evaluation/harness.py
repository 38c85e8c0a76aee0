"""lm-evaluation-harness (EleutherAI; Gao et al., "A framework for few-shot language model evaluation")
run through its Python API on the model genlab loaded, in genlab's process.

``lm_eval.simple_evaluate`` receives an ``HFLM`` built around the loaded transformers model and
tokenizer (a pack, a folder, a hub id, a merged or int8-optimised model, or a base with its adapter
merged in by :func:`genlab.evaluation.run.evaluate_harness`), so the harness scores exactly the model
genlab would serve, and its figures are the ones leaderboards print (``acc``, ``acc_norm``, ... with
lm-eval's stderr).

Tasks are found by lm-eval's ``TaskManager`` in genlab's own task folder
(:data:`HARNESS_TASKS_DIR`: ``everyday-facts``, the builtin multiple-choice task as an lm-eval YAML with
``dataset_path: json``), in every ``--harness-include`` folder, and, if a name is in none of them, in
lm-eval's registry (MMLU, ARC, HellaSwag, GSM8K, ...). Registry tasks fetch their datasets from the
Hugging Face hub, so without it they are refused in one sentence that points to ``--harness-include``.

Written here (no library does it): a relative ``data_files`` path in a local task YAML is read from
the YAML's folder (lm-eval would read it from the current folder), so shipped tasks work from
anywhere; the flattening of lm-eval's results into genlab's metric names (``TASK/METRIC``, with
``[FILTER]`` when the filter is not lm-eval's default ``none``) and of its samples into genlab's
predictions rows (``scores`` per row, for bootstrap intervals and paired comparisons).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, InvalidValueError
from genlab.evaluation.bootstrap import Interval, bootstrap_interval
from genlab.models.hub import HubUnavailableError, ensure_hub_reachable
from genlab.models.load import LoadedModel

HARNESS_TASKS_DIR = Path(__file__).with_name("harness_tasks")
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")  # `datasets` builders that read local files
BOOTSTRAP_ITERS = 1000  # lm-eval's own bootstrap, for the stderr of metrics that are not means
SEED = 0


class HarnessError(GenlabError):
    """An lm-eval task that cannot be found or run here."""


@dataclass
class HarnessOutcome:
    metrics: dict[str, float]  # TASK/METRIC -> value, with TASK/METRIC_stderr beside it
    intervals: dict[str, Interval]  # TASK/METRIC -> 95% bootstrap interval (metrics aggregated by mean)
    rows: list[dict[str, Any]]  # genlab predictions rows: id, input, reference, prediction, scores
    samples: list[dict[str, Any]]  # lm-eval's own sample records, with the task's name
    results: dict[str, Any]  # lm-eval's results, configs and versions (JSON-ready)


def parse_harness_tasks(text: str) -> list[str]:
    """``everyday-facts,arc_easy`` -> the task names; one sentence if none is named."""
    names = [name.strip() for name in text.split(",")]
    if not text.strip() or not all(names):
        raise InvalidValueError(f"harness={text!r} is not allowed: name lm-eval tasks separated by commas.")
    return list(dict.fromkeys(names))


def builtin_harness_tasks() -> list[str]:
    return sorted(path.stem for path in HARNESS_TASKS_DIR.glob("*.yaml"))


def task_specs(tasks: Sequence[str], include: Sequence[str | Path] = ()) -> tuple[Any, list[str | dict[str, Any]]]:
    """(lm-eval TaskManager, task specs): local tasks as configs with their data files resolved, others by name."""
    from lm_eval.tasks import TaskManager

    folders = [HARNESS_TASKS_DIR]
    for folder in include:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise HarnessError(f"--harness-include {path} is not a folder of lm-eval task YAMLs.")
        folders.append(path)
    local = TaskManager(include_path=[str(f) for f in folders], include_defaults=False)
    specs: list[str | dict[str, Any]] = []
    registry = []
    for name in tasks:
        entry = local.task_index.get(name)
        if entry is None:
            registry.append(name)
        else:
            specs.append(_local_spec(entry) if entry.cfg and entry.yaml_path else name)
    if not registry:
        return local, specs
    try:
        ensure_hub_reachable(f"lm-eval task {registry[0]}")
    except HubUnavailableError as error:
        raise HarnessError(
            f"lm-eval task {registry[0]!r} is not a local task (genlab's: {', '.join(builtin_harness_tasks())}), and "
            f"lm-eval's registry tasks need their datasets from the Hugging Face hub, which cannot be reached "
            f"({_reason(error)}): point --harness-include at a folder of task YAMLs over local files "
            f"(dataset_path: json)."
        ) from None
    manager = TaskManager(include_path=[str(f) for f in folders])
    unknown = [name for name in registry if name not in manager.task_index]
    if unknown:
        raise HarnessError(f"unknown lm-eval task {unknown[0]!r}: see `lm-eval ls tasks`, or give --harness-include DIR.")
    return manager, specs + registry


def _reason(error: HubUnavailableError) -> str:
    text = str(error)
    return "HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in text else "no connection"


def _local_spec(entry: Any) -> dict[str, Any]:
    """The task's config with relative local data files made absolute against the YAML's folder."""
    config = copy.deepcopy(entry.cfg)
    kwargs = config.get("dataset_kwargs") or {}
    files = kwargs.get("data_files")
    if config.get("dataset_path") in LOCAL_BUILDERS and files is not None:
        base = Path(entry.yaml_path).parent
        kwargs["data_files"] = _resolve_files(files, base, config.get("task", "?"))
    return config


def _resolve_files(files: Any, base: Path, task: str) -> Any:
    if isinstance(files, dict):
        return {split: _resolve_files(value, base, task) for split, value in files.items()}
    if isinstance(files, list):
        return [_resolve_files(value, base, task) for value in files]
    path = Path(str(files)).expanduser()
    path = path if path.is_absolute() else (base / path).resolve()
    if not path.is_file():
        raise HarnessError(f"lm-eval task {task!r}: its data file {path} does not exist.")
    return str(path)


def run_harness(
    loaded: LoadedModel,
    tasks: Sequence[str],
    *,
    include: Sequence[str | Path] = (),
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    resolved: tuple[Any, list[str | dict[str, Any]]] | None = None,
) -> HarnessOutcome:
    """Score ``loaded`` on lm-eval ``tasks`` with ``lm_eval.simple_evaluate`` (seeded, samples logged).

    ``resolved``: what :func:`task_specs` returned for these tasks, when the caller checked them already.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    if limit is not None and limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not allowed: evaluate at least 1 example.")
    if num_fewshot is not None and num_fewshot < 0:
        raise InvalidValueError(f"num_fewshot={num_fewshot!r} is not allowed: use 0 or more.")
    manager, specs = resolved or task_specs(tasks, include)
    backend = "seq2seq" if loaded.is_encoder_decoder else "causal"
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, backend=backend, batch_size=batch_size)
    try:
        output = lm_eval.simple_evaluate(
            model=lm, tasks=specs, task_manager=manager, num_fewshot=num_fewshot, limit=limit, log_samples=True,
            bootstrap_iters=BOOTSTRAP_ITERS, random_seed=SEED, numpy_random_seed=SEED, torch_random_seed=SEED,
            fewshot_random_seed=SEED,
        )  # fmt: skip
    except (ConnectionError, OSError) as error:  # a dataset lm-eval could not fetch
        raise HarnessError(f"lm-eval could not read a task's dataset ({error}); use --harness-include DIR.") from None
    return _outcome(output)


def _outcome(output: dict[str, Any]) -> HarnessOutcome:
    metrics: dict[str, float] = {}
    for task, values in output["results"].items():
        for key, value in values.items():
            if "," not in key or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            metric, filter_name = key.split(",", 1)
            metrics[_metric_name(task, metric, filter_name)] = float(value)
    rows, samples, per_metric = [], [], {}
    for task, task_samples in output.get("samples", {}).items():
        mean_metrics = _mean_metrics(output["configs"].get(task, {}))
        for sample in task_samples:
            scores = {
                _metric_name(task, m, sample.get("filter", "none")): float(sample[m])
                for m in mean_metrics
                if isinstance(sample.get(m), int | float)
            }
            for name, value in scores.items():
                per_metric.setdefault(name, []).append(value)
            rows.append(_prediction_row(task, sample, scores))
            samples.append({"task": task, **sample})
    intervals = {name: bootstrap_interval(values) for name, values in per_metric.items()}
    results = {key: output.get(key) for key in ("results", "configs", "versions", "n-shot", "higher_is_better")}
    return HarnessOutcome(metrics, intervals, rows, samples, results)


def _metric_name(task: str, metric: str, filter_name: str) -> str:
    return f"{task}/{metric}" if filter_name == "none" else f"{task}/{metric}[{filter_name}]"


def _mean_metrics(config: dict[str, Any]) -> list[str]:
    """The task's metrics aggregated by a mean over rows (those get a bootstrap interval of the mean)."""
    return [m["metric"] for m in config.get("metric_list", []) if m.get("aggregation", "mean") == "mean"]


def _prediction_row(task: str, sample: dict[str, Any], scores: dict[str, float]) -> dict[str, Any]:
    """One lm-eval sample as a genlab predictions row (the id is stable across runs of the task)."""
    arguments = sample.get("arguments") or []
    context = _first_argument(arguments)
    doc = sample.get("doc") or {}
    choices = doc.get("choices") if isinstance(doc, dict) else None
    target = sample.get("target")
    responses = sample.get("filtered_resps") or []
    prediction: Any = responses[0] if responses and not isinstance(responses[0], list) else responses
    if isinstance(choices, list) and responses and all(isinstance(r, list | tuple) for r in responses):
        lls = [float(r[0]) for r in responses]
        prediction = choices[max(range(len(lls)), key=lambda i: (lls[i], -i))]
        target = choices[target] if isinstance(target, int) and 0 <= target < len(choices) else target
    return {
        "id": f"{task}:{sample.get('doc_id')}", "task": task, "input": context, "reference": str(target),
        "prediction": str(prediction), "scores": scores,
    }  # fmt: skip


def _first_argument(arguments: Any) -> str:
    """The context of a sample's first request (lm-eval logs arguments as a list or as gen_args_N dicts)."""
    first = arguments[0] if isinstance(arguments, list) and arguments else None
    if isinstance(arguments, dict) and arguments:
        first = next(iter(arguments.values()))
    if isinstance(first, dict):
        first = list(first.values())
    return str(first[0]) if isinstance(first, list | tuple) and first else ""
