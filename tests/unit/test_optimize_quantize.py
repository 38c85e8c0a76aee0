"""Post-training quantisation on tiny random models: the artifact, its loader, lineage, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
import torch

from genlab.errors import InvalidValueError
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.lineage.store import LineageStore
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model
from genlab.optimize.artifact import read_manifest, weights_size
from genlab.optimize.measure import EvalSpec
from genlab.optimize.quantize import METHOD
from genlab.optimize.quantize import run as quantize_module
from genlab.optimize.quantize.int8_layers import int8_linear, quantize_weight, rescored_head_class
from genlab.optimize.quantize.recipe import QuantizeConfig, QuantizeRecipe, QuantMethodName
from genlab.optimize.report import OptimizationReport
from tests.conftest import run_cli

SPEC = EvalSpec(limit=2, max_new_tokens=4, speed_prompts=1, speed_tokens=4)
TOKENS = torch.tensor([[5, 17, 42, 99, 7, 230, 64, 12]])
PROMPTS = ["#Person1#: Hello, how are you?", "Summarize: the meeting is moved to Friday."]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def original(base: Path):
    return load_model(str(base))


def quantize(
    base: Path, method: str, spec: EvalSpec = SPEC, output: Path | None = None, *, measure_models: bool = True,
    quantize_lm_head: bool = True,
) -> OptimizationReport:
    """``genlab.optimize.quantize.run.quantize`` of a recipe made of these arguments, recorded into the test's store."""
    recipe = QuantizeRecipe(
        model=str(base), quantize=QuantizeConfig(method=method, quantize_lm_head=quantize_lm_head), evaluation=spec,
        measure=measure_models, output=None if output is None else str(output),
    )  # fmt: skip
    with LineageStore() as store:
        return quantize_module.quantize(recipe, store=store)


def _logits(loaded) -> torch.Tensor:
    with torch.inference_mode():
        return loaded.model(input_ids=TOKENS).logits


def _greedy(loaded) -> list[tuple[int, ...]]:
    completions = GenerationEngine(loaded, batch_size=2).generate(PROMPTS, GenerationSettings(max_new_tokens=6))
    return [c.choices[0].token_ids for c in completions]


def test_quantize_weight_is_symmetric_per_channel_int8() -> None:
    weight = torch.tensor([[0.5, -1.0, 0.25], [2.0, 1.0, -0.5]])
    q, scale = quantize_weight(weight)
    # By hand: scales are max|row| / 127 = 1/127 and 2/127; q = round(w / scale).
    assert scale.tolist() == pytest.approx([1 / 127, 2 / 127])
    assert q.dtype == torch.int8
    assert q.tolist() == [[64, -127, 32], [127, 64, -32]]


def test_an_int8_head_recomputes_its_best_logits_from_unrounded_activations() -> None:
    torch.manual_seed(0)
    weight = torch.randn(300, 32)
    q, scale = quantize_weight(weight)
    plain = int8_linear(q, scale, None)
    head = rescored_head_class()(int8_linear(q, scale, None), top_k=8)
    x = torch.randn(3, 1, 32) * torch.tensor([1.0] * 31 + [40.0])  # one outlier channel: int8 activations blur the rest
    with torch.inference_mode():
        int8, rescored = plain(x), head(x)
        exact = x @ (q.float() * scale[:, None]).T  # fp32 activations, the int8 weights
    top = rescored.topk(8, dim=-1).indices
    torch.testing.assert_close(rescored.gather(-1, top), exact.gather(-1, top), rtol=1e-5, atol=1e-5)
    assert torch.equal(rescored.argmax(-1), exact.argmax(-1))
    others = torch.ones_like(rescored, dtype=torch.bool).scatter(-1, top, False)
    assert torch.equal(rescored[others], int8[others])  # the rest of the vocabulary keeps its int8 logits
    assert (int8 - exact).abs().max() > 10 * (rescored.gather(-1, top) - exact.gather(-1, top)).abs().max()


def test_int8_dynamic_can_keep_the_tied_lm_head_in_fp32(base: Path, original) -> None:
    report = quantize(base, "int8-dynamic", SPEC, measure_models=False, quantize_lm_head=False)
    assert read_manifest(report.artifact)["lm_head"] == "fp32"
    quantized = load_model(report.artifact)

    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    model = quantized.model
    assert sum(isinstance(m, DynamicInt8Linear) for m in model.modules()) == 2 * 7  # the LM head is not among them
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    assert type(head) is torch.nn.Linear and head.weight is embedding.weight  # tied again, stored once
    assert torch.equal(embedding.weight, original.model.get_input_embeddings().weight)
    before, after = _logits(original), _logits(quantized)
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    assert _greedy(quantized) == _greedy(original)
    assert weights_size(report.artifact) < weights_size(base)


def test_int8_dynamic_folder_loads_through_the_model_layer_and_stays_close(base: Path, original) -> None:
    report = quantize(base, "int8-dynamic", SPEC, measure_models=False)  # the LM head in int8 by default
    folder = Path(report.artifact)
    assert folder.parent.name == "optimized"
    assert read_manifest(folder)["lm_head"] == "int8" and read_manifest(folder)["head_rescore_top_k"] == 64
    quantized = load_model(str(folder))

    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    modules = list(quantized.model.modules())
    assert sum(isinstance(m, DynamicInt8Linear) for m in modules) == 2 * 7 + 1  # 7 per layer, the LM head too
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert type(quantized.model.get_output_embeddings()).__name__ == "RescoredInt8Head"
    embedding = quantized.model.get_input_embeddings()
    assert type(embedding).__name__ == "Int8Embedding"  # tied: stored once, and the head shares its int8 rows
    assert quantized.model.get_output_embeddings().weight_int8 is embedding.weight_int8
    before, after = _logits(original), _logits(quantized)
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.75
    assert _greedy(quantized) == _greedy(original)  # the engine (prefill, cache, continuous batching) runs on it
    assert weights_size(folder) < 0.5 * weights_size(base)


def test_manifest_and_lineage_are_written(base: Path, genlab_home: Path) -> None:
    report = quantize(base, "int8-dynamic", SPEC, measure_models=False, quantize_lm_head=False)
    manifest = read_manifest(report.artifact)
    assert manifest["method"] == "int8-dynamic" and manifest["loader"] == "int8-dynamic"
    assert manifest["run_id"] == report.run_id and manifest["fp32_head_tied"] is True
    store = LineageStore()
    run = store.get_run(report.run_id)
    assert run.kind == "optimize" and run.status == "completed"
    assert [a.path for a in store.artifacts_of(run.id, "input")] == [str(base)]
    assert [a.path for a in store.artifacts_of(run.id, "output")] == [report.artifact]
    assert "speedup" in store.metrics(run.id)
    second = quantize(base, "int8-dynamic", SPEC, measure_models=False, quantize_lm_head=False)
    assert second.artifact == report.artifact + "-2"  # an earlier result is never overwritten


@pytest.mark.parametrize("method, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_cast_methods_write_plain_transformers_folders(base: Path, original, method: str, dtype) -> None:
    from transformers import AutoModelForCausalLM

    report = quantize(base, method, SPEC, measure_models=False)
    assert read_manifest(report.artifact)["loader"] is None
    plain = AutoModelForCausalLM.from_pretrained(report.artifact, dtype="auto")
    assert next(plain.parameters()).dtype == dtype
    assert weights_size(report.artifact) < 0.6 * weights_size(base)
    loaded = load_model(report.artifact, dtype=method)
    assert (_logits(loaded).float() - _logits(original)).abs().max() < 0.05


def test_bad_method_is_one_sentence_and_writes_nothing(base: Path, genlab_home: Path) -> None:
    with LineageStore() as store, pytest.raises(InvalidValueError) as caught:
        METHOD.run({"model": str(base), "quantize": {"method": "int4"}, "measure": False}, store=store)
    message = str(caught.value)
    assert "quantize.method='int4'" in message and "int8-dynamic" in message and "onnx-int8" in message
    assert "\n" not in message
    assert not (genlab_home / "optimized").exists() and LineageStore().list_runs() == []


def test_every_method_of_the_recipe_has_a_way_to_save() -> None:
    assert set(get_args(QuantMethodName)) == set(quantize_module.METHODS)


def test_unreadable_eval_data_is_refused_before_anything_is_quantised(base: Path, genlab_home: Path) -> None:
    from genlab.data.loaders import DataError

    with pytest.raises(DataError, match="no such data file"):
        quantize(base, "int8-dynamic", SPEC.model_copy(update={"data": str(genlab_home / "missing.jsonl")}))
    with pytest.raises(DataError, match="no field 'nope'"):
        quantize(base, "int8-dynamic", SPEC.model_copy(update={"input_field": "nope"}))
    assert not (genlab_home / "optimized").exists()
    assert LineageStore().list_runs() == []


def test_a_failed_save_leaves_no_partial_folder(base: Path, genlab_home: Path, monkeypatch) -> None:
    def half_then_fail(loaded, folder: Path, config) -> dict:
        (folder / "model.int8.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    method = quantize_module.METHODS["int8-dynamic"]
    monkeypatch.setitem(quantize_module.METHODS, "int8-dynamic", method.__class__(**{**method.__dict__, "save": half_then_fail}))
    target = genlab_home / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        quantize(base, "int8-dynamic", SPEC, output=target, measure_models=False)
    assert not target.exists() and not list(genlab_home.glob(".tmp-*"))
    (failed,) = LineageStore().list_runs(kind="optimize")
    assert failed.status == "failed" and "disk full" in failed.error


def test_output_over_a_folder_that_is_not_an_optimised_model_is_refused(base: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="not an optimised model folder"):
        quantize(base, "int8-dynamic", SPEC, output=base, measure_models=False)
    assert (base / "config.json").is_file()


def test_onnx_int8_runs_in_onnxruntime_through_the_engine(base: Path, original) -> None:
    pytest.importorskip("onnxruntime")
    report = quantize(base, "onnx-int8", SPEC, measure_models=False)
    quantized = load_model(report.artifact)
    assert type(quantized.model).__name__ == "OnnxCausalLM"
    before, after = _logits(original), _logits(quantized)
    assert after.shape == before.shape
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    assert _greedy(quantized) == _greedy(original)
    assert quantized.model.num_parameters() == original.model.num_parameters()


def test_cli_json_measures_original_and_result(base: Path, genlab_home: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from genlab.cli import app
    from genlab.optimize import measure

    # The real measurement, but in this process (not one fresh process per model) and on fewer tokens.
    small = {"speed_prompts": 2, "speed_tokens": 16, "max_new_tokens": 4}
    monkeypatch.setattr(
        measure, "measure", lambda model, spec, dtype="fp32": measure.measure_here(model, spec.model_copy(update=small), dtype)
    )
    args = ["optimize", "quantize", "--model", str(base), "--method", "int8-dynamic", "--quantize-lm-head", "--eval-limit", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "int8-dynamic"
    assert report["speedup"] > 0 and report["size_ratio"] > 2
    assert set(report["original"]["quality"]) == set(report["result"]["quality"]) == {"rouge1"}
    assert report["result"]["parameters"] == report["original"]["parameters"]  # tied weights counted once
    assert "rouge1_change_points" in report and Path(report["artifact"]).is_dir()


def test_cli_bad_method_exits_with_one_line() -> None:
    result = run_cli("optimize", "quantize", "--model", "smollm2-135m-instruct", "--method", "int3")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "'int3'" in result.stderr


def test_an_outlier_token_does_not_ruin_the_other_tokens() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(1, 6, 64)
    x[0, 0] *= 300.0  # one token with massive activations, as a prompt's first token often has
    q, scale = quantize_weight(linear.weight)
    per_token = int8_linear(q, scale, linear.bias)
    expected = linear(x).detach()

    def error(y: torch.Tensor) -> float:  # relative error on the ordinary tokens
        return float((y[0, 1:] - expected[0, 1:]).norm() / expected[0, 1:].norm())

    one_scale = error(per_token.inner(x))  # fbgemm alone: one activation scale for the whole prompt
    assert one_scale > 0.05
    assert error(per_token(x)) < 0.01  # prefill: fp32 activations
    decoded = torch.cat([per_token(x[:, t : t + 1]) for t in range(6)], dim=1)  # decoding: one token at a time
    assert error(decoded) < 0.03 < one_scale
    batch = per_token(x.transpose(0, 1))  # (6 sequences, 1 token): one scale per sequence
    assert error(batch.transpose(0, 1)) < 0.03
