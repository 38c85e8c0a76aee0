"""lm-evaluation-harness run two ways on the same model folder: its own ``hf`` model, and
``local-completions`` against `genlab serve`. Shared by the unit test (a tiny random model) and the
integration test (the default model).

A multiple-choice task on local data (ten questions; a task YAML with ``dataset_path: json`` over a
JSONL file written in the test's folder); the comparison asserts the same accuracy and each choice's
log-likelihood within :data:`LOGLIKELIHOOD_TOL` of the hf model's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lm_eval
from lm_eval.tasks import TaskManager

TASK = "genlab_mc"
LOGLIKELIHOOD_TOL = 1e-3
QUESTIONS = [
    ("What is the capital of France?", ["Paris", "London", "Rome", "Berlin"], 0),
    ("How many legs does a spider have?", ["six", "eight", "ten", "four"], 1),
    ("Which planet is known as the red planet?", ["Venus", "Jupiter", "Mars", "Saturn"], 2),
    ("What do bees make?", ["milk", "silk", "wax paper", "honey"], 3),
    ("Which animal barks?", ["dog", "cat", "fish", "bird"], 0),
    ("What colour is the sky on a clear day?", ["green", "blue", "red", "black"], 1),
    ("How many days are in a week?", ["five", "six", "seven", "nine"], 2),
    ("What is frozen water called?", ["steam", "sand", "glass", "ice"], 3),
    ("Which is the largest ocean?", ["Pacific", "Atlantic", "Indian", "Arctic"], 0),
    ("What do you use to write on a blackboard?", ["a spoon", "chalk", "a shoe", "soap"], 1),
]


def write_task(folder: Path) -> Path:
    """A multiple-choice task over a local JSONL file: lm-eval scores each ' choice' after the question."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "questions.jsonl"
    data.write_text(
        "".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in QUESTIONS), encoding="utf-8"
    )
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: multiple_choice\n"
        "test_split: test\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    return folder


def evaluate(model: str, model_args: str, task_dir: Path) -> tuple[float, dict[int, list[float]]]:
    """(accuracy, {doc id: log-likelihood of each choice}) of one lm-eval run of the task."""
    results: dict[str, Any] = lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=[TASK], task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True, batch_size=1, random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0,
    )  # fmt: skip
    accuracy = float(results["results"][TASK]["acc,none"])
    scores = {s["doc_id"]: [float(r[0]) for r in s["filtered_resps"]] for s in results["samples"][TASK]}
    return accuracy, scores


def compare_with_hf(
    folder: Path, model_id: str, url: str, task_dir: Path, *, remote_tokenizer: bool = False, adapter: Path | None = None
) -> dict[str, Any]:
    """Run the task with lm-eval's hf model and through the server both ways; assert they agree; the figures.

    ``remote_tokenizer``: also a third way, lm-eval's default ``tokenizer_backend=auto`` with no tokenizer
    given, which finds the server's ``/tokenizer_info`` and ``/tokenize`` and tokenises through them.
    """
    peft = f",peft={adapter}" if adapter is not None else ""  # the server serves it as ``model_id``
    reference_acc, reference = evaluate("hf", f"pretrained={folder},dtype=float32,device=cpu{peft}", task_dir)
    figures: dict[str, Any] = {"hf": reference_acc}
    ways = {
        "token ids": f"tokenizer={folder},tokenizer_backend=huggingface,tokenized_requests=True",
        "text": f"tokenizer={folder},tokenizer_backend=huggingface,tokenized_requests=False",
    }
    if remote_tokenizer:
        ways["token ids, server's tokenizer"] = "tokenizer_backend=auto,tokenized_requests=True"
    if adapter is not None:  # the adapter's route differs from the base's in the model id only: lm-eval's default way
        del ways["text"]
    for way, tokenizing in ways.items():
        args = f"model={model_id},base_url={url}/v1/completions,{tokenizing},num_concurrent=1,max_retries=1,timeout=300"
        accuracy, served = evaluate("local-completions", args, task_dir)
        assert served.keys() == reference.keys() and len(served) == len(QUESTIONS)
        worst = max(abs(a - b) for doc in reference for a, b in zip(served[doc], reference[doc], strict=True))
        assert worst < LOGLIKELIHOOD_TOL, f"{way}: a choice's log-likelihood is off by {worst}"
        assert accuracy == reference_acc
        figures[way] = (accuracy, worst)
    return figures
