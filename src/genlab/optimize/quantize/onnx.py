"""``onnx-int8``: a decoder-only LM exported to ONNX with its KV cache, weights quantised by onnxruntime.

Export: one graph for every step, prefill and decode alike. It reads ``input_ids`` (B, T),
``attention_mask`` (B, past + T), ``position_ids`` (B, T) and the cache ``past.<i>.key|value``
(B, kv_heads, past, head_dim) per layer -- ``past`` may be 0, so the same graph prefills -- and returns
``logits`` (B, T, vocab) and ``present.<i>.key|value`` (B, kv_heads, past + T, head_dim). It is traced
with ``torch.onnx.export(dynamo=True)`` from transformers' own model fed a ``DynamicCache``, so the
arithmetic (rotary positions, masking of left padding, grouped-query attention) is the library's.

Quantisation: ``onnxruntime.quantization.quantize_dynamic`` -- int8 weights per output channel,
activations quantised per call (``DynamicQuantizeMatMul`` / ``MatMulInteger``), the same scheme as
``int8-dynamic`` with onnxruntime's kernels. The folder holds ``model.int8.onnx``, the config and the
tokenizer; :func:`load_onnx` wraps an ``onnxruntime.InferenceSession`` in :class:`OnnxCausalLM`,
which answers the calls genlab's generation engine and metrics make on a transformers model.
Encoder-decoder models are not exported (say so, rather than half-work).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, InvalidValueError, ModelLoadError
from genlab.generation.cache_argument import cache_kwargs, cache_of

ONNX_WEIGHTS = "model.int8.onnx"  # its loader is registered by genlab.optimize.loaders


def _cache_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a decoder-only config."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


def _names(layers: int) -> tuple[list[str], list[str]]:
    cache = [f"{i}.{part}" for i in range(layers) for part in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids"] + [f"past.{c}" for c in cache], ["logits"] + [
        f"present.{c}" for c in cache
    ]


def save_onnx_int8(loaded: Any, folder: Path) -> dict[str, Any]:
    """Export ``loaded`` to ONNX, quantise its weights to int8 with onnxruntime, write both into ``folder``."""
    import importlib.util

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        quantize_dynamic = None
    if quantize_dynamic is None or importlib.util.find_spec("onnxscript") is None:
        raise GenlabError("onnx-int8 needs onnxruntime and onnxscript: pip install onnxruntime onnxscript.")
    if loaded.is_encoder_decoder:
        raise InvalidValueError(f"onnx-int8 exports decoder-only models, and {loaded.name} is an encoder-decoder.")
    model = loaded.model.float().eval()
    parameters = int(model.num_parameters())
    with tempfile.TemporaryDirectory(prefix="genlab-onnx-") as scratch:
        fp32 = Path(scratch) / "model.onnx"
        _export(model, fp32)
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.ERROR)  # onnxruntime warns on the root logger to "consider pre-processing"
        try:
            quantize_dynamic(fp32, folder / ONNX_WEIGHTS, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    return {"runtime": "onnxruntime", "parameters": parameters}


def _export(model: Any, path: Path) -> None:
    import torch
    from torch.export import Dim

    layers, kv_heads, head_dim = _cache_shape(model.config)
    batch, steps, past_length = 2, 3, 4  # example sizes; every axis is exported as dynamic
    past = [torch.zeros(batch, kv_heads, past_length, head_dim) for _ in range(2 * layers)]
    example = (
        torch.ones(batch, steps, dtype=torch.long),
        torch.ones(batch, past_length + steps, dtype=torch.long),
        torch.arange(past_length, past_length + steps).expand(batch, steps),
        past,
    )
    b, t, p = Dim("batch"), Dim("steps"), Dim("past")
    dynamic = {
        "input_ids": {0: b, 1: t},
        "attention_mask": {0: b, 1: Dim.AUTO},
        "position_ids": {0: b, 1: t},
        "past": [{0: b, 2: p} for _ in range(2 * layers)],
    }
    inputs, outputs = _names(layers)
    # the exporter reports its steps on stdout, which belongs to the command's own output (--json)
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(
            _step_class()(model).eval(), example, str(path), dynamo=True, input_names=inputs, output_names=outputs,
            dynamic_shapes=dynamic, optimize=True, verbose=False,
        )  # fmt: skip


def _step_class() -> type:
    import torch

    class Step(torch.nn.Module):
        """The model as a function of flat tensors (what an ONNX graph can take): one forward with a cache."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, past: list[Any]) -> tuple[Any, ...]:
            from transformers import DynamicCache

            cache = DynamicCache()
            for i in range(len(past) // 2):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, **cache_kwargs(cache),
            )  # fmt: skip
            flat = [t for layer in cache_of(out).layers for t in (layer.keys, layer.values)]
            return (out.logits, *flat)

    return Step


def load_onnx(folder: Path, dtype: Any) -> tuple[Any, Any]:
    """Load an ``onnx-int8`` folder as an :class:`OnnxCausalLM` and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    if dtype not in (None, torch.float32):
        raise InvalidValueError(f"{folder} is an onnx-int8 model, which computes in fp32; load it with dtype fp32.")
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(f"{folder} is an ONNX model and needs onnxruntime: pip install onnxruntime.") from None
    path = folder / ONNX_WEIGHTS
    if not path.is_file():
        raise ModelLoadError(f"{folder} has no {ONNX_WEIGHTS}, so it is not a complete onnx-int8 model.")
    try:
        config = AutoConfig.from_pretrained(folder)
        generation_config = GenerationConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - damaged files fail in many ways
        raise ModelLoadError(f"could not load the ONNX model in {folder}: {error}") from None
    from genlab.optimize.artifact import read_manifest

    parameters = int((read_manifest(folder) or {}).get("parameters", 0))
    return _onnx_model_class()(session, config, generation_config, parameters), tokenizer


def _onnx_model_class() -> type:
    import numpy as np
    import torch

    class OnnxCausalLM(torch.nn.Module):
        """An onnxruntime session behind the calls a transformers causal LM answers in genlab.

        ``model(input_ids, attention_mask, position_ids, past_key_values, ...)`` returns ``.logits``
        and a ``DynamicCache`` (so the engine's continuous batching merges and trims it as usual);
        ``parameter_count`` is the original model's (the graph's int8 weights are not parameters).
        """

        def __init__(self, session: Any, config: Any, generation_config: Any, parameters: int) -> None:
            super().__init__()
            self.session = session
            self.config = config
            self.generation_config = generation_config
            self.parameter_count = parameters
            self.layers, self.kv_heads, self.head_dim = _cache_shape(config)
            self.input_names, _ = _names(self.layers)
            # metrics ask next(model.parameters()).device; an empty tensor answers "cpu"
            self.device_anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)

        @property
        def device(self) -> Any:
            return torch.device("cpu")

        @property
        def dtype(self) -> Any:
            return torch.float32

        def num_parameters(self, *args: Any, **kwargs: Any) -> int:
            return self.parameter_count

        def get_input_embeddings(self) -> Any:
            raise GenlabError("an onnx-int8 model reads token ids only; soft prompts are not supported.")

        def forward(
            self, input_ids: Any = None, attention_mask: Any = None, position_ids: Any = None,
            past_key_values: Any = None, inputs_embeds: Any = None, logits_to_keep: int = 0, cache: Any = None,
            **_: Any,
        ) -> Any:  # fmt: skip
            from transformers import DynamicCache
            from transformers.modeling_outputs import CausalLMOutputWithPast

            if inputs_embeds is not None or input_ids is None:
                raise GenlabError("an onnx-int8 model reads token ids only; soft prompts are not supported.")
            past_key_values = cache if cache is not None else past_key_values  # transformers' new name, or the old
            batch, steps = input_ids.shape
            past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
            if attention_mask is None:
                attention_mask = torch.ones((batch, past_length + steps), dtype=torch.long)
            if position_ids is None:
                position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -steps:]
            feeds = {
                "input_ids": input_ids.to(torch.long).numpy(),
                "attention_mask": attention_mask.to(torch.long).numpy(),
                "position_ids": position_ids.to(torch.long).numpy(),
            }
            empty = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32)
            for i in range(self.layers):
                layer = past_key_values.layers[i] if past_length else None
                for part in ("key", "value"):
                    tensor = getattr(layer, part + "s") if layer is not None else None
                    feeds[f"past.{i}.{part}"] = empty if tensor is None else np.ascontiguousarray(tensor.numpy())
            outputs = self.session.run(None, feeds)
            logits = torch.from_numpy(outputs[0])
            if logits_to_keep:
                logits = logits[:, -logits_to_keep:, :]
            cache = DynamicCache()
            for i in range(self.layers):
                cache.update(torch.from_numpy(outputs[1 + 2 * i]), torch.from_numpy(outputs[2 + 2 * i]), i)
            return CausalLMOutputWithPast(logits=logits, **cache_kwargs(cache))

    return OnnxCausalLM
