"""Pruning on tiny random models: exact sparsities, the right weights, smaller configs that compute the
same function as the original with the pruned units zeroed, saved folders that load and generate,
recovery that keeps the sparsity, one-sentence errors, and the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genlab.errors import GenlabError, InvalidValueError
from genlab.models.tiny import save_tiny_model, tiny_model
from genlab.optimize.measure import EvalSpec
from genlab.optimize.prune import METHOD
from genlab.optimize.prune.recipe import prune_settings
from genlab.optimize.prune.run import prune_model, recover_pruned, save_pruned
from genlab.optimize.prune.unstructured import prunable_linears

IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 64], [8, 9, 10, 11, 12, 13, 14, 15]])


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: module.weight.detach().clone() for name, module in prunable_linears(model)}


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_global_unstructured_zeroes_exactly_the_smallest_weights_of_the_whole_model() -> None:
    model = tiny_model().model
    before = _weights(model)
    assert all(int((w == 0).sum()) == 0 for w in before.values())  # random init: no zeros to start with
    total = sum(w.numel() for w in before.values())
    head = model.get_output_embeddings().weight.detach().clone()

    pruned = prune_model(model, prune_settings(method="unstructured", sparsity=0.3))

    after = _weights(model)
    zeroed = torch.cat([before[n][after[n] == 0].abs() for n in before])
    kept = torch.cat([before[n][after[n] != 0].abs() for n in before])
    assert zeroed.numel() == round(0.3 * total)  # torch's L1Unstructured prunes round(amount * n)
    assert pruned.details["zeros"] == zeroed.numel()
    assert pruned.details["sparsity"] == pytest.approx(zeroed.numel() / total)
    assert zeroed.max() <= kept.min()  # every zeroed weight is smaller than every kept one
    for name in before:  # kept weights are untouched
        assert torch.equal(after[name][after[name] != 0], before[name][after[name] != 0])
    # ranked globally, the layers end with different sparsities
    assert len({round(s, 6) for s in pruned.details["layer_sparsity"].values()}) > 1
    assert torch.equal(model.get_output_embeddings().weight, head)  # the tied head is left dense


def test_layer_unstructured_gives_every_layer_the_same_exact_sparsity() -> None:
    model = tiny_model().model
    before = _weights(model)
    pruned = prune_model(model, prune_settings(method="unstructured", sparsity=0.45, scope="layer"))
    after = _weights(model)
    for name, weight in before.items():
        mask = after[name] == 0
        assert int(mask.sum()) == round(0.45 * weight.numel()), name
        assert weight[mask].abs().max() <= weight[~mask].abs().min(), name
        assert pruned.details["layer_sparsity"][name] == pytest.approx(round(0.45 * weight.numel()) / weight.numel())
    assert not any(hasattr(m, "weight_mask") for _, m in prunable_linears(model))  # made permanent


def test_neuron_pruning_equals_the_original_with_those_neurons_zeroed() -> None:
    model = tiny_model().model
    pruned = prune_model(model, prune_settings(method="neurons", sparsity=0.25))
    smaller = pruned.model
    assert smaller.config.intermediate_size == 48  # 64 - round(0.25 * 64)
    assert all(layer.mlp.down_proj.weight.shape == (32, 48) for layer in smaller.model.layers)
    removed = 2 * 16 * 3 * 32  # layers x neurons x (gate row, up row, down column) x hidden
    assert pruned.details["parameters_removed"] == removed
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in smaller.parameters()) == removed

    assert not torch.allclose(_logits(model), _logits(smaller), atol=1e-4)  # pruning did change the function
    with torch.no_grad():  # zero the pruned neurons' down columns in the original
        for i, layer in enumerate(model.model.layers):
            dropped = sorted(set(range(64)) - set(pruned.plan[i]))
            assert len(dropped) == 16
            scores = (
                layer.mlp.gate_proj.weight.pow(2).sum(1) + layer.mlp.up_proj.weight.pow(2).sum(1)
                + layer.mlp.down_proj.weight.pow(2).sum(0)
            )  # fmt: skip
            assert scores[dropped].max() <= scores[pruned.plan[i]].min()  # the lowest-norm neurons went
            layer.mlp.down_proj.weight[:, dropped] = 0
    torch.testing.assert_close(_logits(smaller), _logits(model), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("unit", "heads", "kv_heads"), [("group", 2, 1), ("query", 2, 2)])
def test_head_pruning_equals_the_original_with_those_heads_zeroed(unit: str, heads: int, kv_heads: int) -> None:
    model = tiny_model().model  # 4 query heads sharing 2 KV heads, head_dim 8
    pruned = prune_model(model, prune_settings(method="heads", sparsity=0.5, heads_unit=unit))
    smaller = pruned.model
    assert (smaller.config.num_attention_heads, smaller.config.num_key_value_heads) == (heads, kv_heads)
    assert smaller.config.head_dim == 8
    assert smaller.model.layers[0].self_attn.o_proj.weight.shape == (32, heads * 8)
    assert smaller.model.layers[0].self_attn.k_proj.weight.shape == (kv_heads * 8, 32)
    if unit == "query":  # one query head kept in each group, so each KV head still has its reader
        assert all([h // 2 for h in kept] == [0, 1] for kept in pruned.plan.values())

    assert not torch.allclose(_logits(model), _logits(smaller), atol=1e-4)
    with torch.no_grad():  # a head with zero o_proj columns adds nothing to the output
        for i, layer in enumerate(model.model.layers):
            for head in sorted(set(range(4)) - set(pruned.plan[i])):
                layer.self_attn.o_proj.weight[:, head * 8 : (head + 1) * 8] = 0
    torch.testing.assert_close(_logits(smaller), _logits(model), atol=1e-5, rtol=1e-5)


def test_structured_pruning_refuses_other_architectures_in_one_sentence() -> None:
    model = tiny_model("seq2seq").model
    with pytest.raises(GenlabError, match="Llama-style decoders only") as caught:
        prune_model(model, prune_settings(method="neurons", sparsity=0.5))
    assert "'t5'" in str(caught.value) and "\n" not in str(caught.value)
    prune_model(model, prune_settings(method="unstructured", sparsity=0.5))  # unstructured works on any model


def test_a_sparsity_that_removes_no_whole_unit_is_refused() -> None:
    with pytest.raises(GenlabError, match="removes 0 of the 2 key/value head groups"):
        prune_model(tiny_model().model, prune_settings(method="heads", sparsity=0.2))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sparsity": 1.5}, "sparsity=1.5 is not allowed: sparsity is the fraction removed, strictly between 0 and 1"),
        ({"sparsity": 0.0}, "sparsity=0.0 is not allowed"),
        ({"sparsity": 0.5, "method": "channels"}, "method='channels' is not allowed"),
        ({"sparsity": 0.5, "method": "neurons", "scope": "global"}, "--scope must be layer"),
        ({"sparsity": 0.5, "recover_steps": 3}, "--recover-steps needs --recover-data"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(values: dict, message: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        prune_settings(**values)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and str(caught.value).endswith(".")


@pytest.mark.parametrize("method", ["neurons", "heads", "unstructured"])
def test_a_saved_pruned_folder_loads_through_the_model_layer_and_generates(tmp_path: Path, method: str) -> None:
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.models.load import load_model
    from genlab.optimize.artifact import read_manifest

    loaded = tiny_model()
    pruned = prune_model(loaded.model, prune_settings(method=method, sparsity=0.5))
    folder = save_pruned(pruned, loaded.tokenizer, tmp_path / "pruned", {"method": f"prune-{method}", "sparsity": 0.5})

    reloaded = load_model(str(folder))
    assert read_manifest(folder) == {"method": f"prune-{method}", "sparsity": 0.5}
    assert reloaded.model.config.intermediate_size == pruned.model.config.intermediate_size
    assert reloaded.model.config.num_attention_heads == pruned.model.config.num_attention_heads
    torch.testing.assert_close(_logits(reloaded.model), _logits(pruned.model))
    if method == "unstructured":
        zeros = sum(int((m.weight == 0).sum()) for _, m in prunable_linears(reloaded.model))
        assert zeros == pruned.details["zeros"]
    [completion] = GenerationEngine(reloaded).generate(["Summarize: hello"], GenerationSettings(max_new_tokens=4))
    assert completion.new_tokens >= 1


def test_recovery_trains_merges_and_keeps_the_exact_sparsity() -> None:
    loaded = tiny_model()
    settings = prune_settings(
        method="unstructured", sparsity=0.5, recover_steps=3, recover_data="builtin", recover_batch_size=2,
        recover_learning_rate=1e-2,
    )  # fmt: skip
    pruned = prune_model(loaded.model, settings)
    before = _weights(pruned.model)
    recover_pruned(loaded, pruned, settings, EvalSpec(), progress=False)

    after = {name: module.weight.detach() for name, module in prunable_linears(pruned.model)}
    assert set(after) == set(before)  # merged: plain Linear layers again, no LoRA modules left
    assert not any("lora" in name for name, _ in pruned.model.named_modules())
    changed = 0
    for name, weight in before.items():
        assert torch.equal(after[name] == 0, weight == 0), name  # the same zeros, not one more or less
        changed += int((after[name] != weight).sum())
    assert changed > 0.5 * sum(w.numel() for w in before.values()) * 0.5  # the merged update reached kept weights
    assert pruned.details["sparsity"] == 0.5 and pruned.details["recover_steps"] == 3
    assert pruned.details["recover_loss_start"] > 0


def test_cli_prune_json_measures_both_models_and_records_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import genlab.optimize.measure as measure_module
    from genlab.cli import app
    from genlab.lineage.store import LineageStore

    # measured in this process, not two fresh ones: the same measurement without two interpreter starts
    monkeypatch.setattr(measure_module, "measure", lambda model, spec, **_: measure_module.measure_here(model, spec))
    model = save_tiny_model(tmp_path / "tiny")
    output = tmp_path / "pruned"
    result = CliRunner().invoke(
        app,
        [
            "optimize", "prune", "--model", str(model), "--method", "neurons", "--sparsity", "0.5",
            "--eval-limit", "2", "--output", str(output), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "prune-neurons" and report["artifact"] == str(output)
    assert report["details"]["intermediate_size_after"] == 32
    assert report["result"]["parameters"] == report["original"]["parameters"] - 2 * 32 * 3 * 32
    assert report["size_ratio"] > 1.0
    assert 0.0 <= report["result"]["quality"]["rouge1"] <= 1.0
    manifest = json.loads((output / "genlab_optimized.json").read_text())
    assert manifest["method"] == "prune-neurons" and manifest["run_id"] == report["run_id"]
    run = LineageStore().get_run(report["run_id"])
    assert run.kind == "optimize" and run.status == "completed"


def test_a_rule_across_the_recipe_section_reads_as_one_plain_sentence() -> None:
    with pytest.raises(InvalidValueError) as caught:
        METHOD.validate({"prune": {"method": "neurons", "sparsity": 0.5, "scope": "global"}})
    message = str(caught.value)
    assert message.startswith("prune: --method neurons removes the same number of units") and message.endswith("(in prune).")
    assert "the given value" not in message and "\n" not in message
