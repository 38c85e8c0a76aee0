"""Post-training quantisation: int8 weights with dynamically quantised activations, fp16/bf16, ONNX int8.

Methods (``QuantizeConfig.method``, :mod:`genlab.optimize.quantize.recipe`):

- ``int8-dynamic`` -- every ``nn.Linear``, the LM head included, gets int8 weights, symmetric per
  output channel, and int8 activations quantised on the fly per call (Jacob et al. 2018,
  https://arxiv.org/abs/1712.05877):

      s_j = max_i |W_ji| / 127,   q_ji = round(W_ji / s_j) in [-127, 127],   y = (x_q @ q^T) * s_x * s + b

  The folder stores ``q`` (int8) and ``s`` (fp32) in ``model.int8.safetensors`` -- no pickles, no
  runtime-specific packing -- and :func:`load_quantized` rebuilds the model on the meta device and
  puts int8 modules in place, so loading never holds the fp32 weights. A tied input embedding is
  stored once: it reads rows of the LM head's int8 matrix times their scale (:class:`Int8Embedding`).
  The head's errors land directly on the next-token distribution, so its ``head_rescore_top_k`` (64)
  best logits at each decoding step are recomputed from the unrounded activations
  (:class:`RescoredInt8Head`): the int8 product picks the candidates, an fp32 product over 64 rows
  ranks them. With ``quantize_lm_head=False`` (``--fp32-lm-head``) the head and its tied embedding
  stay fp32, as many int8 schemes keep them.
- ``fp16`` / ``bf16`` -- the weights cast and saved with ``save_pretrained``: a plain transformers
  folder that loads anywhere (load it with ``--dtype fp16|bf16`` to compute in that type).
- ``onnx-int8`` -- see :mod:`genlab.optimize.quantize.onnx`.

Which int8 kernel, and why (the issue asked; ``torch.ao.quantization`` is deprecated). The kernel
is fbgemm's dynamic int8 Linear (``torch.ao.nn.quantized.dynamic.Linear``, the module behind
``torch.ao.quantization.quantize_dynamic``), built here directly from the stored int8 weights rather
than through the deprecated ``quantize_dynamic`` workflow; onnxruntime is the other path offered
(``onnx-int8``). torchao 0.18 (tried with torch 2.13 here) was not chosen:

- its CPU int8 paths are written for ``torch.compile``: in eager mode
  ``Int8DynamicActivationInt8WeightConfig`` multiplies in int32 (``_int_scaled_matmul_cpu``
  leaves the fusion to Inductor) and ``Int8WeightOnlyConfig`` converts the whole int8 weight to
  fp32 on every call; compiling does not fit a decode loop whose KV cache grows every step;
- measured: only roughly so far. The machine was shared with other benchmarks (load average 9-13
  on 2 cores), so fp32 itself ran at ~1 token/s instead of 15.3. In one pass of a first,
  one-process-per-kernel version of the comparison (4 prompts x 32 tokens each) fp32 and fbgemm
  took about 3.5 and 3 minutes, while torchao's dynamic and weight-only configs were each still
  running after 5 minutes and were stopped. The earlier figure for fbgemm on an idle machine is
  39.8 tokens/s against 15.3 for fp32 (2.6x). ``bench/quantize.py --kernels`` now runs the
  kernels interleaved in one process, which is fairer on a busy machine; its figures are still
  to be taken on a quiet one.
- installing it makes transformers import it on every model load (and print warnings about its
  CUDA libraries), so it is not a genlab dependency.

Quality, measured on the default model (2 cores, idle; ``genlab optimize quantize --method
int8-dynamic``, decode tokens/s at batch 1, ROUGE-1 of greedy summaries against fp32's):

    LM head fp32 (--fp32-lm-head):  2.44x smaller (538 -> 220 MB), 1.78-1.89x tokens/s,
                                    ROUGE-1 +0.08 points (64 builtin dialogues), +0.46 (100 DialogSum)
    LM head int8, no rescoring:     3.97x smaller (538 -> 135 MB), 2.60x tokens/s,
                                    ROUGE-1 -1.38 points (64 builtin), +0.14 (100 DialogSum)
    LM head int8, top 64 rescored:  3.97x smaller, 2.01-2.51x tokens/s (2.27x interleaved in one process),
    (the default)                   ROUGE-1 -0.20 points (64 builtin), +0.67 (100 DialogSum)

Those speed-ups were measured against fp32 as torch runs it. Since then the generation engine runs
fp32 Linear layers on oneDNN with reordered weights (:mod:`genlab.generation.packed_linear`, 1.3-1.4x
at batch 1), and int8 decoding calls fbgemm's op without the module around it. Against that faster
fp32 (2026-12-06, idle): ``genlab optimize quantize`` (20 builtin dialogues) 22.6 -> 48.9 tokens/s
(2.16x; an earlier run of the same command before holding the reordered weights gave 2.00x), peak
memory 1889 -> 1255 MB (the fp32 figure includes the reordered copy), ROUGE-1 0.2033 -> 0.1929
(-1.04 points on these 20; -0.20 on 64). ``bench/quantize.py --kernels``: fbgemm int8 2.21x fp32 on
oneDNN, 2.87x fp32 on torch's Linear.

Once the rest is int8, an fp32 head is half of what a decoding step reads (113 of 220 MB: SmolLM2's
49152 x 576 vocabulary matrix), which is why quantising it is worth the speed; rescoring costs a
64 x 576 product per step.

fbgemm's one activation scale per call was the first version's undoing (ROUGE-1 -13.6 points): a
few tokens of a prompt carry activations hundreds of times larger than the rest (the MLP's
``down_proj`` inputs above all). Perplexity of 30 summaries: fp32 166.4; int8 with one scale per
call 498 (torch's own per-tensor ``quantize_dynamic``: 793); with one scale per token 161
(simulated) -- hence :class:`~genlab.optimize.quantize.int8_layers.PerTokenInt8Linear`.

torch 2.13 warns that quantized tensors (which fbgemm's module holds) will be removed; the stored
format does not depend on them, so moving to another kernel (onnxruntime, or torchao once its
eager CPU path is fast) is a change to :func:`int8_linear` alone. No maintained eager CPU int4 path
exists in torchao 0.18 (its int4 packings target CUDA/XPU), so there is no int4 method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.errors import InvalidValueError, ModelLoadError
from genlab.lineage import LineageStore, record_run
from genlab.optimize.artifact import INT8_LOADER, ONNX_LOADER
from genlab.optimize.quantize.int8_layers import (
    int8_embedding_class,
    int8_linear,
    quantize_weight,
    rescored_head_class,
)
from genlab.optimize.quantize.recipe import QuantizeConfig, QuantizeRecipe
from genlab.optimize.report import OptimizationReport

INT8_WEIGHTS = "model.int8.safetensors"


# --- the methods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantMethod:
    name: str
    save: Callable[[Any, Path, QuantizeConfig], dict[str, Any]]  # (loaded model, folder, config) -> manifest details
    loader: str | None  # the registered loader, or None for a plain transformers folder
    measure_dtype: str  # the dtype the result is measured (and best loaded) in
    summary: str


def _save_int8_dynamic(loaded: Any, folder: Path, config: QuantizeConfig) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    model = loaded.model
    head = model.get_output_embeddings()
    linears = {
        name: module for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (config.quantize_lm_head or module is not head)
    }  # fmt: skip
    if not linears:
        raise InvalidValueError(f"{loaded.name} has no Linear layers, so int8-dynamic has nothing to quantise.")
    tensors: dict[str, Any] = {}
    for name, module in linears.items():
        q, scale = quantize_weight(module.weight)
        tensors[f"{name}.weight_int8"], tensors[f"{name}.weight_scale"] = q, scale
        if module.bias is not None:
            tensors[f"{name}.bias"] = module.bias.detach().float().contiguous()
    tied_embedding = _tied_embedding_name(model, linears)
    covered = {f"{name}.weight" for name in linears} | {f"{name}.bias" for name in linears}
    if tied_embedding is not None:
        covered.add(f"{tied_embedding}.weight")
    fp32_head_tied = _fp32_head_tied_to_embedding(model, head, linears)
    if fp32_head_tied:
        covered.add(next(f"{name}.weight" for name, module in model.named_modules() if module is head))
    for name, tensor in model.state_dict().items():
        if name not in covered:
            tensors[name] = tensor.detach().float().contiguous()
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_file(tensors, folder / INT8_WEIGHTS, metadata={"format": "genlab-int8-dynamic"})
    return {
        "quantized_linears": len(linears), "tied_embedding": tied_embedding, "lm_head": "int8" if head in linears.values() else "fp32",
        "head_rescore_top_k": config.head_rescore_top_k if head in linears.values() else 0,
        "fp32_head_tied": fp32_head_tied, "kernel": "fbgemm dynamic int8",
    }  # fmt: skip


def _fp32_head_tied_to_embedding(model: Any, head: Any, linears: dict[str, Any]) -> bool:
    """True when the LM head stays fp32 and shares its weight with the input embedding (stored once, as the embedding)."""
    embedding = model.get_input_embeddings()
    return head is not None and embedding is not None and head.weight is embedding.weight and not any(
        module is head for module in linears.values()
    )


def _tied_embedding_name(model: Any, linears: dict[str, Any]) -> str | None:
    """The input embedding's module name when it shares its weight with a quantised Linear (the LM head)."""
    embedding = model.get_input_embeddings()
    output = model.get_output_embeddings()
    if output is None or embedding is None or output.weight is not embedding.weight:
        return None
    if not any(module is output for module in linears.values()):
        return None
    return next(name for name, module in model.named_modules() if module is embedding)


def _save_cast(dtype_name: str) -> Callable[[Any, Path, QuantizeConfig], dict[str, Any]]:
    def save(loaded: Any, folder: Path, config: QuantizeConfig) -> dict[str, Any]:
        from genlab.models.load import torch_dtype

        loaded.model.to(torch_dtype(dtype_name)).save_pretrained(folder)
        return {"dtype": dtype_name}

    return save


def _save_onnx_int8(loaded: Any, folder: Path, config: QuantizeConfig) -> dict[str, Any]:
    from genlab.optimize.quantize.onnx import save_onnx_int8

    return save_onnx_int8(loaded, folder)


METHODS: dict[str, QuantMethod] = {
    "int8-dynamic": QuantMethod(
        "int8-dynamic", _save_int8_dynamic, INT8_LOADER, "fp32", "int8 weights per channel, int8 activations per call"
    ),
    "fp16": QuantMethod("fp16", _save_cast("fp16"), None, "fp16", "weights cast to float16"),
    "bf16": QuantMethod("bf16", _save_cast("bf16"), None, "bf16", "weights cast to bfloat16"),
    "onnx-int8": QuantMethod(
        "onnx-int8", _save_onnx_int8, ONNX_LOADER, "fp32", "ONNX graph with KV cache, onnxruntime dynamic int8"
    ),
}


# --- the library entry point -----------------------------------------------------------------------


def quantize(recipe: QuantizeRecipe, *, store: LineageStore) -> OptimizationReport:
    """Quantise ``recipe.model``, save it atomically, record the run into ``store``, and measure it against the original.

    ``recipe.measure=False`` skips the two measuring processes (the report then holds zeros); the
    folder, manifest and lineage are written either way.
    """
    from genlab.models.load import load_model
    from genlab.optimize.artifact import optimized_folder, read_manifest
    from genlab.optimize.measure import measure_pair

    model, config, spec = recipe.model, recipe.quantize, recipe.evaluation
    if recipe.measure:
        spec.check_data()
    chosen = METHODS[config.method]
    folder = _output_folder(model, chosen.name, recipe.output)
    if folder.exists() and any(folder.iterdir()) and read_manifest(folder) is None:
        raise InvalidValueError(f"{folder} exists and is not an optimised model folder; choose another --output.")
    run_config = {
        "model": model, "method": chosen.name, "quantize_lm_head": config.quantize_lm_head, "output": str(folder),
        "eval": spec.model_dump(),
    }  # fmt: skip
    with record_run("optimize", run_config, store=store) as run:
        loaded = load_model(model)
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": loaded.name})
        manifest = {"method": chosen.name, "loader": chosen.loader, "base_model": model, "run_id": run.id}
        with optimized_folder(folder, manifest) as tmp:
            details = chosen.save(loaded, tmp, config)
            loaded.tokenizer.save_pretrained(tmp)
            manifest.update(details)  # written by optimized_folder after this block, so it holds the details
        del loaded
        run.log_artifact(folder, "model", {"method": chosen.name, "base": model})
        original, result = measure_pair(model, str(folder), spec, dtype=chosen.measure_dtype, enabled=recipe.measure)
        report = OptimizationReport(chosen.name, run.id, str(folder), original, result, details=details)
        run.log_metrics(report.metrics())
    return report


def _output_folder(model: str, method: str, output: str | Path | None) -> Path:
    from genlab.home import genlab_home
    from genlab.training.saving import free_folder

    if output is not None:
        return Path(output).expanduser()
    name = Path(model.rstrip("/")).name or "model"
    return free_folder(genlab_home() / "optimized", f"{name}-{method}")


# --- loading ---------------------------------------------------------------------------------------


def load_quantized(folder: Path, dtype: Any) -> tuple[Any, Any]:
    """Load an ``int8-dynamic`` folder: the architecture on the meta device, int8 modules put in place."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if dtype not in (None, torch.float32):
        raise InvalidValueError(f"{folder} is an int8-dynamic model, which computes in fp32; load it with dtype fp32.")
    weights = folder / INT8_WEIGHTS
    if not weights.is_file():
        raise ModelLoadError(f"{folder} has no {INT8_WEIGHTS}, so it is not a complete int8-dynamic model.")
    try:
        config = AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tensors = load_file(weights)
    except Exception as error:  # noqa: BLE001 - damaged files fail in many ways
        raise ModelLoadError(f"could not read the int8 model in {folder}: {error}") from None
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config)
    model.generation_config = _generation_config(folder, model.generation_config)
    for name in [key.removesuffix(".weight_int8") for key in tensors if key.endswith(".weight_int8")]:
        q, scale = tensors.pop(f"{name}.weight_int8"), tensors.pop(f"{name}.weight_scale")
        _set_module(model, name, int8_linear(q, scale, tensors.pop(f"{name}.bias", None)))
    manifest_tied = _manifest_value(folder, "tied_embedding")
    if manifest_tied:
        head = model.get_output_embeddings()
        q, scale = head.packed()
        old = model.get_input_embeddings()
        model.set_input_embeddings(int8_embedding_class()(q, scale, getattr(old, "padding_idx", None)))
    top_k = _manifest_value(folder, "head_rescore_top_k")  # absent in folders saved before rescoring
    if top_k:
        embedding = model.get_input_embeddings()
        shared = (embedding.weight_int8, embedding.weight_scale) if manifest_tied else None
        model.set_output_embeddings(rescored_head_class()(model.get_output_embeddings(), int(top_k), shared))
    for name, tensor in tensors.items():  # the rest (norms, embeddings, an fp32 LM head): fp32, as saved
        _assign(model, name, tensor, folder)
    if _manifest_value(folder, "fp32_head_tied"):  # stored once, as the embedding
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    _initialise_meta_buffers(model)
    left = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left:
        raise ModelLoadError(f"{folder} lacks weights the model needs, e.g. {left[0]}.")
    model.eval()
    return model, tokenizer


def _generation_config(folder: Path, default: Any) -> Any:
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(folder)
    except OSError:
        return default


def _manifest_value(folder: Path, key: str) -> Any:
    from genlab.optimize.artifact import read_manifest

    return (read_manifest(folder) or {}).get(key)


def _set_module(model: Any, name: str, module: Any) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _assign(model: Any, name: str, tensor: Any, folder: Path) -> None:
    import torch

    parent_name, _, attribute = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
    except AttributeError:
        parent = None
    if parent is None or not hasattr(parent, attribute):
        raise ModelLoadError(f"{folder} holds a weight this architecture does not have: {name}.")
    if attribute in parent._parameters:
        setattr(parent, attribute, torch.nn.Parameter(tensor, requires_grad=False))
    else:
        parent.register_buffer(attribute, tensor)


def _initialise_meta_buffers(model: Any) -> None:
    """Non-persistent buffers (rotary ``inv_freq``) are not in any state dict: compute them as transformers does."""
    for module in model.modules():
        if any(buffer.is_meta for buffer in module.buffers(recurse=False)):
            module.to_empty(device="cpu", recurse=False)
            model._init_weights(module)

