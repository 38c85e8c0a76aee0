"""Structured magnitude pruning: remove whole MLP neurons or attention heads, so the model gets smaller.

A unit (one MLP neuron, one attention head or one group of heads sharing a key/value head) is scored
by the L2 norm of every weight that is removed with it -- the structured form of magnitude pruning
(Li et al. 2017, "Pruning Filters for Efficient ConvNets", arXiv:1608.08710, who rank conv filters
by weight norm; LLM-Pruner, Ma et al. 2023, arXiv:2305.11627, prunes the same coupled structures in
LLaMA):

    neuron j:        s_j = || [W_gate[j, :], W_up[j, :], W_down[:, j]] ||_2
    query head h:    s_h = || [W_q[h*d:(h+1)*d, :], W_o[:, h*d:(h+1)*d]] ||_2
    KV group g:      s_g = || [W_q rows of its G query heads, W_k[g*d:(g+1)*d, :], W_v[g rows], W_o columns] ||_2

and the lowest-scoring ``round(sparsity * units)`` units of every layer are removed. A transformers
config holds one ``intermediate_size``, one ``num_attention_heads`` and one ``num_key_value_heads``
for all layers, so every layer loses the same number of units (``scope=layer``); which units go is
decided per layer.

Heads of a grouped-query attention model (Llama-style GQA: ``num_key_value_heads`` < heads; the
default model has 9 query heads sharing 3 KV heads) are pruned consistently, one of two ways:
``heads_unit=group`` removes whole KV groups (the KV head with its G query heads: fewer KV heads, a
smaller KV cache); ``heads_unit=query`` removes the same number of query heads from every group and
keeps every KV head.

The pruned model is rebuilt from its new config (``head_dim`` written explicitly, since it no longer
equals hidden_size / heads) and gets the kept rows and columns, so it is an ordinary model folder.

Only Llama-style decoders are supported: model types ``llama``, ``mistral`` and ``qwen2``, whose
layers have ``self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj``; every other architecture
(T5, GPT-2, Gemma, ...) is refused with a :class:`GenlabError` (use unstructured pruning there).
"""

from __future__ import annotations

import copy
from typing import Any

from genlab.errors import GenlabError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")

# layer index -> kept unit indices (neurons, query heads or KV heads), ascending
KeepPlan = dict[int, list[int]]


def check_supported(model: Any, method: str) -> None:
    model_type = getattr(model.config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise GenlabError(
            f"--method {method} removes neurons or heads from Llama-style decoders only (model types "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}), so {model_type!r} models are not supported: use --method unstructured."
        )


def _layers(model: Any) -> Any:
    return model.model.layers


def units_to_remove(sparsity: float, units: int, what: str) -> int:
    """``round(sparsity * units)``, refused when it would remove nothing or everything."""
    remove = round(sparsity * units)
    if remove < 1 or remove >= units:
        raise GenlabError(
            f"sparsity={sparsity} removes {remove} of the {units} {what} in each layer, which must be between 1 "
            f"and {units - 1}: choose a sparsity between {0.5 / units:.3f} and {1 - 0.5 / units:.3f}."
        )
    return remove


def _keep_top(scores: Any, keep: int) -> list[int]:
    import torch

    return sorted(torch.topk(scores, keep).indices.tolist())


# ---- MLP neurons -------------------------------------------------------------------------------


def neuron_scores(mlp: Any) -> Any:
    """(intermediate_size,) L2 norm of each neuron's gate row, up row and down column."""
    squares = mlp.gate_proj.weight.pow(2).sum(1) + mlp.up_proj.weight.pow(2).sum(1) + mlp.down_proj.weight.pow(2).sum(0)
    return squares.sqrt()


def plan_neurons(model: Any, sparsity: float) -> KeepPlan:
    size = model.config.intermediate_size
    keep = size - units_to_remove(sparsity, size, "MLP neurons")
    return {i: _keep_top(neuron_scores(layer.mlp).detach(), keep) for i, layer in enumerate(_layers(model))}


def prune_neurons(model: Any, sparsity: float) -> tuple[Any, KeepPlan]:
    """A smaller model without the lowest-scoring MLP neurons of each layer, and what it kept."""
    plan = plan_neurons(model, sparsity)
    state = model.state_dict()
    for i, kept in plan.items():
        prefix = f"model.layers.{i}.mlp."
        for name in ("gate_proj", "up_proj"):
            _take(state, f"{prefix}{name}.weight", kept, dim=0)
            _take(state, f"{prefix}{name}.bias", kept, dim=0)
        _take(state, f"{prefix}down_proj.weight", kept, dim=1)
    size = len(next(iter(plan.values())))
    return _rebuild(model, {"intermediate_size": size}, state), plan


# ---- attention heads ---------------------------------------------------------------------------


def _head_shape(config: Any) -> tuple[int, int, int]:
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv_heads, head_dim


def _rows(units: list[int], width: int) -> list[int]:
    """The weight rows (or columns) of units of ``width`` consecutive rows each."""
    return [unit * width + r for unit in units for r in range(width)]


def head_scores(attention: Any, config: Any, unit: str) -> Any:
    """(query heads,) or (KV heads,) L2 norms of the weights each head or KV group takes with it."""
    heads, kv_heads, d = _head_shape(config)
    q = attention.q_proj.weight.detach().pow(2).reshape(heads, d, -1).sum((1, 2))
    o = attention.o_proj.weight.detach().pow(2).reshape(-1, heads, d).sum((0, 2))
    per_query = q + o  # (heads,)
    if unit == "query":
        return per_query.sqrt()
    k = attention.k_proj.weight.detach().pow(2).reshape(kv_heads, d, -1).sum((1, 2))
    v = attention.v_proj.weight.detach().pow(2).reshape(kv_heads, d, -1).sum((1, 2))
    # query head h reads KV head h // G (transformers' repeat_kv), so a group is G consecutive heads
    return (per_query.reshape(kv_heads, heads // kv_heads).sum(1) + k + v).sqrt()


def plan_heads(model: Any, sparsity: float, unit: str) -> tuple[KeepPlan, KeepPlan]:
    """Per layer: the query heads kept and the KV heads kept."""
    config = model.config
    heads, kv_heads, _ = _head_shape(config)
    group = heads // kv_heads
    query_plan: KeepPlan = {}
    kv_plan: KeepPlan = {}
    for i, layer in enumerate(_layers(model)):
        scores = head_scores(layer.self_attn, config, unit)
        if unit == "group":
            kept_kv = _keep_top(scores, kv_heads - units_to_remove(sparsity, kv_heads, "key/value head groups"))
            kv_plan[i] = kept_kv
            query_plan[i] = [g * group + j for g in kept_kv for j in range(group)]
        else:
            if group == 1:
                raise GenlabError(
                    "heads_unit=query needs grouped-query attention (fewer KV heads than query heads); "
                    "this model has one KV head per query head, so use heads_unit=group."
                )
            keep = group - units_to_remove(sparsity, group, "query heads of a KV group")
            kv_plan[i] = list(range(kv_heads))
            # kept heads listed group by group, so kept head h' still reads KV head h' // keep
            query_plan[i] = [g * group + j for g in range(kv_heads) for j in _keep_top(scores[g * group : (g + 1) * group], keep)]
    return query_plan, kv_plan


def prune_heads(model: Any, sparsity: float, unit: str = "group") -> tuple[Any, KeepPlan]:
    """A smaller model without the lowest-scoring heads (or KV groups) of each layer, and the query heads kept."""
    _, _, d = _head_shape(model.config)
    query_plan, kv_plan = plan_heads(model, sparsity, unit)
    state = model.state_dict()
    for i in query_plan:
        prefix = f"model.layers.{i}.self_attn."
        q_rows, kv_rows = _rows(query_plan[i], d), _rows(kv_plan[i], d)
        _take(state, f"{prefix}q_proj.weight", q_rows, dim=0)
        _take(state, f"{prefix}q_proj.bias", q_rows, dim=0)
        for name in ("k_proj", "v_proj"):
            _take(state, f"{prefix}{name}.weight", kv_rows, dim=0)
            _take(state, f"{prefix}{name}.bias", kv_rows, dim=0)
        _take(state, f"{prefix}o_proj.weight", q_rows, dim=1)
    changes = {
        "num_attention_heads": len(query_plan[0]), "num_key_value_heads": len(kv_plan[0]), "head_dim": d,
    }  # fmt: skip
    return _rebuild(model, changes, state), query_plan


# ---- shared ------------------------------------------------------------------------------------


def _take(state: dict[str, Any], key: str, index: list[int], dim: int) -> None:
    import torch

    if key in state:
        state[key] = torch.index_select(state[key], dim, torch.tensor(index)).contiguous()


def _rebuild(model: Any, changes: dict[str, Any], state: dict[str, Any]) -> Any:
    """A model of the same class from the changed config, holding ``state``."""
    config = copy.deepcopy(model.config)
    for key, value in changes.items():
        setattr(config, key, value)
    dtype = next(model.parameters()).dtype
    smaller = type(model)(config).to(dtype)
    smaller.load_state_dict(state, strict=True)
    smaller.generation_config = copy.deepcopy(model.generation_config)
    smaller.eval()
    return smaller


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
