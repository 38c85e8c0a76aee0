"""Benchmark tasks: multiple choice by log-likelihood and generation by a metric, from YAML.

``run_benchmark(load_task("everyday-facts"), load_model(...))`` scores a task and reports accuracy,
calibration (ECE), robustness to perturbed questions and efficiency.
"""

from genlab.evaluation.benchmarks.calibration import CalibrationBin, calibration_bins, expected_calibration_error
from genlab.evaluation.benchmarks.multiple_choice import ChoiceScores, loglikelihoods, score_choices
from genlab.evaluation.benchmarks.robustness import PERTURBATIONS, perturb
from genlab.evaluation.benchmarks.runner import BenchmarkResult, run_benchmark
from genlab.evaluation.benchmarks.task import (
    TaskError,
    TaskFields,
    TaskRow,
    TaskSpec,
    builtin_task_names,
    load_task,
    load_task_file,
)

__all__ = [
    "PERTURBATIONS",
    "BenchmarkResult",
    "CalibrationBin",
    "ChoiceScores",
    "TaskError",
    "TaskFields",
    "TaskRow",
    "TaskSpec",
    "builtin_task_names",
    "calibration_bins",
    "expected_calibration_error",
    "load_task",
    "load_task_file",
    "loglikelihoods",
    "perturb",
    "run_benchmark",
    "score_choices",
]
