"""The shared method matrix (peft's pattern): every registered method through the same checks.

For each method in :func:`genlab.registry.methods`, on a tiny random model and ``STEPS`` steps, run
through the contract (``METHOD.run(recipe, store=...)``), as ``genlab`` runs it:

- it logs a loss (the result's loss history);
- it changes its trainable parameters, every one of them, and no other (a callback snapshots the
  Trainer's model as training begins and ends; trl's tests assert the same);
- stopped by Ctrl-C after step ``INTERRUPT_AT`` and resumed, it ends with the same saved weights as
  an uninterrupted run;
- it writes one lineage record (its run, completed, with its output; other new runs only below it);
- it prints its table.

A one-shot transform (quantisation, pruning: ``transform=True`` in its case) trains nothing, so instead:
it writes one lineage record, prints its table, leaves a folder that ``load_model`` loads and that gives
finite logits other than the input model's, and refuses ``resume`` in one sentence.

A method that cannot do one of these says why in its case (tests/unit/method_cases.py), and the
matrix checks that it refuses in one sentence instead. A registered method without a case fails.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from genlab.cli import output
from genlab.errors import GenlabError
from genlab.lineage import LineageStore
from genlab.methods import Method, MethodResult
from genlab.registry import methods
from genlab.training.checkpoints import TrainingInterrupted, last_checkpoint
from tests.unit.method_cases import (
    CASES,
    INTERRUPT_AT,
    MethodCase,
    TinyWorld,
    write_world,
)

METHODS = methods()


class ParameterWatch(TrainerCallback):
    """The Trainer's model parameters as training begins and as it ends, and which were trainable."""

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.after = {name: p.detach().clone() for name, p in model.named_parameters()}


class CtrlCAfter(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)  # CheckpointOnInterrupt: finish the step, checkpoint, stop


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return write_world(tmp_path_factory.mktemp("method-matrix"))


def saved_tensors(result: MethodResult) -> dict[str, torch.Tensor]:
    files = sorted(Path(result.output_path).glob("*.safetensors"))
    assert files, f"{result.method} saved no safetensors in {result.output_path}"
    return {f"{file.name}:{name}": tensor for file in files for name, tensor in load_file(str(file)).items()}


def test_every_registered_method_has_a_case() -> None:
    assert sorted(CASES) == sorted(method.name for method in METHODS)


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.name)
def test_method(method: Method, world: TinyWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case: MethodCase = CASES[method.name]
    with LineageStore() as store:
        if case.unavailable_here:
            with pytest.raises(GenlabError) as refused:
                method.run(case.recipe(world, "refused"), store=store, progress=False)
            assert len(str(refused.value).splitlines()) == 1
            assert store.list_runs() == []  # refused before any run was recorded
            return
        if case.transform:
            check_transform(method, case, world, store, monkeypatch, capsys)
            return

        watch = ParameterWatch()
        result = method.run(
            case.recipe(world, "straight"), store=store, progress=False, callbacks=[watch] if case.watch_parameters else ()
        )
        assert result.method == method.name and result.output_kind in ("adapter", "model", "dataset")

        # It logs a loss.
        losses = [entry["loss"] for entry in result.loss_history if "loss" in entry]
        assert losses and all(math.isfinite(loss) for loss in losses)

        # It changes its trainable parameters and only those.
        if case.watch_parameters:
            changed = {name for name in watch.before if not torch.equal(watch.before[name], watch.after[name])}
            assert watch.trainable and changed == watch.trainable
        else:  # a peft adapter whose B matrices start at zero: trained, they are not
            tensors = saved_tensors(result)
            assert all(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)

        # It writes one lineage record: its run, completed; any other new run (a pipeline's stages) sits below
        # it, and the output is recorded by it or by one of those.
        run = store.get_run(result.run_id)
        assert run.status == "completed"
        below = {link.run_id for link in store.runs_linked_under(result.run_id)}
        assert {r.id for r in store.list_runs(limit=1000)} - {result.run_id} <= below
        outputs = {Path(a.path).resolve() for rid in (result.run_id, *below) for a in store.artifacts_of(rid, "output")}
        assert Path(result.output_path).resolve() in outputs

        # It prints its table.
        assert_prints_its_table(result, monkeypatch, capsys)

        # It resumes after an interruption to the weights of the uninterrupted run.
        if case.resume_refused:
            with pytest.raises(GenlabError, match="resume") as refused:
                method.run(case.recipe(world, "stopped"), store=store, progress=False, resume=True)
            assert len(str(refused.value).splitlines()) == 1
            return
        with pytest.raises(TrainingInterrupted, match="--resume"):
            method.run(case.recipe(world, "stopped"), store=store, progress=False, callbacks=[CtrlCAfter(INTERRUPT_AT)])
        # ... into the folder the method names (the lifecycle resumes from there too)
        assert last_checkpoint(method.checkpoint_folder(case.recipe(world, "stopped"))) is not None
        resumed = method.run(case.recipe(world, "stopped"), store=store, progress=False, resume=True)
        straight, again = saved_tensors(result), saved_tensors(resumed)
        assert straight.keys() == again.keys()
        for name in straight:
            torch.testing.assert_close(again[name], straight[name], rtol=0, atol=1e-6, msg=name)


def assert_prints_its_table(result: MethodResult, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output.console, "width", 400)
    output.print_table(*result.table.as_tuple())
    printed = capsys.readouterr().out
    assert result.table.title.split()[0] in printed and result.table.rows
    assert all(str(row[0]) in printed for row in result.table.rows)


def check_transform(
    method: Method, case: MethodCase, world: TinyWorld, store: LineageStore, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The matrix for a one-shot transform of the model (see the module docstring)."""
    from genlab.models.load import load_model

    result = method.run(case.recipe(world, "straight"), store=store, progress=False)
    assert result.method == method.name and result.output_kind == "model"

    # It writes one lineage record: its run, completed, with the transformed folder as its output.
    assert [run.id for run in store.list_runs(limit=1000)] == [result.run_id]
    assert store.get_run(result.run_id).status == "completed"
    outputs = [Path(a.path).resolve() for a in store.artifacts_of(result.run_id, "output")]
    assert outputs == [Path(result.output_path).resolve()]

    # It prints its table.
    assert_prints_its_table(result, monkeypatch, capsys)

    # Its folder loads through the model layer and computes another function of the same input, finite.
    ids = torch.tensor([[5, 17, 42, 99, 7, 64, 12, 3]])
    with torch.inference_mode():
        before = load_model(str(world.model)).model(input_ids=ids).logits
        after = load_model(result.output_path).model(input_ids=ids).logits
    assert after.shape == before.shape and bool(torch.isfinite(after).all())
    assert not torch.equal(after, before)

    # It keeps no checkpoints, so resume is refused in one sentence.
    with pytest.raises(GenlabError, match="resume") as refused:
        method.run(case.recipe(world, "again"), store=store, progress=False, resume=True)
    assert len(str(refused.value).splitlines()) == 1
