"""Tiny llama, mistral, qwen2 and qwen3 models written as GGUF: metadata, tensor names and shapes, the q/k permutation, q8_0.

The reference for the layout is transformers' own GGUF reader, which undoes llama.cpp's permutation
(``reverse_permute``) when it loads a llama GGUF and reads qwen2/qwen3 as they are: an f32 export
read back must give the same logits. Then llama.cpp itself (llama-cpp-python, when built) must read
the same tokens from the text and give the same logits and greedy tokens as transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer

from genlab.export.gguf_model import (
    ModelExportError,
    permute_rotary_rows,
    write_model_gguf,
)
from genlab.export.gguf_tokenizer import QWEN2_REGEX, TokenizerExportError, pre_tokenizer_name
from genlab.export.llama_cpp_check import llama_cpp_greedy
from genlab.models.tiny import tiny_model, tiny_tokenizer
from tests.unit.export_support import CASES, GGUF_ARCH, TEXT, llama_cpp_logits, qwen2_tokenizer, tiny_causal


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("causal", seed=5)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf-model")
    return {q: write_model_gguf(tiny.model, tiny.tokenizer, folder / f"tiny-{q}.gguf", quant=q, name="tiny") for q in ("f32", "q8_0")}


def field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.fixture(scope="module")
def others(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any, Path]]:
    """model_type -> (model, tokenizer, its f32 GGUF), for the architectures written besides llama."""
    folder = tmp_path_factory.mktemp("gguf-others")
    built = {}
    for model_type in CASES:
        tokenizer = tiny_tokenizer() if model_type == "mistral" else qwen2_tokenizer()
        model = tiny_causal(model_type, tokenizer, seed=7)
        path = write_model_gguf(model, tokenizer, folder / f"{model_type}.gguf", quant="f32", name=f"tiny-{model_type}")
        built[model_type] = (model, tokenizer, path)
    return built


def test_the_permutation_pairs_neighbours_as_llama_cpp_does() -> None:
    # One head of size 4: HF's rotate_half pairs dims (0, 2) and (1, 3); llama.cpp pairs (0, 1) and (2, 3).
    rows = np.arange(4, dtype=np.float32)[:, None]
    assert permute_rotary_rows(rows, n_head=1)[:, 0].tolist() == [0, 2, 1, 3]
    # Two heads of size 4 each are reordered within their own head only.
    assert permute_rotary_rows(np.arange(8.0), n_head=2).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_metadata_describes_the_model_and_its_tokenizer(tiny, exported) -> None:
    reader = gguf.GGUFReader(exported["f32"])
    config, tokenizer = tiny.model.config, tiny.tokenizer
    assert field(reader, "general.architecture") == "llama" and field(reader, "general.type") == "model"
    assert field(reader, "llama.block_count") == 2
    assert field(reader, "llama.embedding_length") == 32 and field(reader, "llama.feed_forward_length") == 64
    assert field(reader, "llama.attention.head_count") == 4 and field(reader, "llama.attention.head_count_kv") == 2
    assert field(reader, "llama.context_length") == 512 and field(reader, "llama.rope.dimension_count") == 8
    assert field(reader, "llama.rope.freq_base") == pytest.approx(config.rope_parameters["rope_theta"])
    assert field(reader, "general.file_type") == gguf.LlamaFileType.ALL_F32
    assert field(reader, "tokenizer.ggml.model") == "gpt2" and field(reader, "tokenizer.ggml.pre") == "gpt-2"  # llama-vocab.cpp names
    tokens, types = field(reader, "tokenizer.ggml.tokens"), field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == config.vocab_size
    assert tokens == [tokenizer.convert_ids_to_tokens(i) for i in range(config.vocab_size)]
    control = {tokens[i] for i, kind in enumerate(types) if kind == gguf.TokenType.CONTROL}
    assert control == {"<pad>", "<|im_start|>", "<|im_end|>", "<unk>"}
    assert set(types) == {gguf.TokenType.NORMAL, gguf.TokenType.CONTROL}
    assert len(field(reader, "tokenizer.ggml.merges")) > 100
    assert field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field(reader, "tokenizer.ggml.add_bos_token") is False  # the tokenizer adds none
    assert field(reader, "tokenizer.chat_template") == tokenizer.chat_template


def test_tensor_names_and_shapes_follow_llama_cpp(exported) -> None:
    reader = gguf.GGUFReader(exported["f32"])
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}  # ggml order: (in, out)
    per_block = {"attn_norm": (32,), "ffn_norm": (32,), "attn_q": (32, 32), "attn_k": (32, 16), "attn_v": (32, 16),
                 "attn_output": (32, 32), "ffn_gate": (32, 64), "ffn_up": (32, 64), "ffn_down": (64, 32)}  # fmt: skip
    expected = {f"blk.{b}.{n}.weight": s for b in range(2) for n, s in per_block.items()}
    vocab = shapes["token_embd.weight"][1]
    expected |= {"token_embd.weight": (32, vocab), "output_norm.weight": (32,)}  # tied head: no output.weight
    assert shapes == expected


def test_transformers_reads_the_f32_export_back_to_the_same_logits(tiny, exported) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = exported["f32"]
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    text = "#Person1#: Hi, how much is 12 apples?\n#Person2#: 3 dollars."
    ids = tiny.tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer(text, return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny.model(ids).logits)  # f32: bit for bit, permutation undone
    # Without the permutation the attention would differ: q_proj as written is not q_proj as trained.
    written = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.attn_q.weight")
    assert not np.array_equal(np.asarray(written.data), tiny.model.model.layers[0].self_attn.q_proj.weight.detach().numpy())


def test_q8_0_quantises_matrices_and_keeps_norms_f32(tiny, exported) -> None:
    reader = gguf.GGUFReader(exported["q8_0"])
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.ffn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert {types[n] for n in types if not n.endswith("norm.weight")} == {gguf.GGMLQuantizationType.Q8_0}
    assert field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_Q8_0
    tensor = next(t for t in reader.tensors if t.name == "blk.1.ffn_down.weight")
    restored = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
    original = tiny.model.model.layers[1].mlp.down_proj.weight.detach().numpy()
    # Q8_0: 8-bit values with one scale per 32; the error is at most half a step of the block's scale.
    assert np.abs(restored - original).max() <= np.abs(original).max() / 127 + 1e-6
    assert exported["q8_0"].stat().st_size < exported["f32"].stat().st_size / 2


def test_other_architectures_and_tokenizers_are_refused_in_one_sentence(tmp_path: Path) -> None:
    t5 = tiny_model("seq2seq")
    with pytest.raises(ModelExportError, match="'t5'; genlab writes GGUF for llama, mistral, qwen2, qwen3 models only"):
        write_model_gguf(t5.model, t5.tokenizer, tmp_path / "t5.gguf", quant="f16", name="t5")
    sentencepiece = {"model": {"type": "Unigram"}, "pre_tokenizer": {"type": "Metaspace"}}
    with pytest.raises(TokenizerExportError, match="'Unigram'"):
        pre_tokenizer_name(sentencepiece)
    bpe_with_split = {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel"}]}}
    with pytest.raises(TokenizerExportError, match="Split -> ByteLevel"):
        pre_tokenizer_name(bpe_with_split)
    smollm = {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}]}}  # fmt: skip
    assert pre_tokenizer_name(smollm) == "smollm"
    qwen2 = {"model": {"type": "BPE"}, "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "use_regex": False}]}}  # fmt: skip
    assert pre_tokenizer_name(qwen2) == "qwen2"
    llama3_digits = QWEN2_REGEX.replace(r"\p{N}", r"\p{N}{1,3}")  # Llama 3's regex splits digits in groups of 3
    qwen2["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": llama3_digits}
    with pytest.raises(TokenizerExportError, match=r"splits text on .*p\{N\}\{1,3\}.*not on Qwen2's regex"):
        pre_tokenizer_name(qwen2)
    with pytest.raises(TokenizerExportError, match="normalises text"):
        pre_tokenizer_name({**smollm, "normalizer": {"type": "NFC"}})  # NFC is taken with Qwen2's layout only


def test_the_qwen2_layout_tokenises_differently_from_gpt2s_split(others) -> None:
    # So the llama.cpp test below, which tokenises TEXT from the GGUF, would catch a qwen2 tokenizer named gpt-2.
    _, tokenizer, _ = others["qwen2"]
    as_gpt2 = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    as_gpt2.normalizer, as_gpt2.pre_tokenizer = None, pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert "#Person" in tokenizer.tokenize(TEXT) and as_gpt2.encode(TEXT).ids != tokenizer(TEXT).input_ids


@pytest.mark.parametrize("model_type", list(CASES))
def test_metadata_of_each_architecture(model_type: str, others) -> None:
    model, _, path = others[model_type]
    reader, arch = gguf.GGUFReader(path), GGUF_ARCH[model_type]
    assert field(reader, "general.architecture") == arch
    assert field(reader, f"{arch}.block_count") == 2 and field(reader, f"{arch}.embedding_length") == 32
    assert field(reader, f"{arch}.attention.head_count") == 4 and field(reader, f"{arch}.attention.head_count_kv") == 2
    assert field(reader, f"{arch}.attention.layer_norm_rms_epsilon") == pytest.approx(model.config.rms_norm_eps)
    assert field(reader, f"{arch}.context_length") == 512
    # convert_hf_to_gguf.py's LlamaModel adds vocab_size and rope.dimension_count; its Qwen2Model and Qwen3Model do not.
    assert (f"{arch}.vocab_size" in reader.fields) == (f"{arch}.rope.dimension_count" in reader.fields) == (arch == "llama")
    # Qwen3's head_dim (128) is not hidden / heads (8): llama.cpp reads it from key_length and value_length.
    key_length = field(reader, f"{arch}.attention.key_length") if f"{arch}.attention.key_length" in reader.fields else None
    assert key_length == (128 if model_type == "qwen3" else None)
    assert field(reader, "tokenizer.ggml.pre") == ("gpt-2" if model_type == "mistral" else "qwen2")


@pytest.mark.parametrize("model_type", list(CASES))
def test_tensor_names_and_shapes_of_each_architecture(model_type: str, others) -> None:
    model, _, path = others[model_type]
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in gguf.GGUFReader(path).tensors}  # ggml order: (in, out)
    q, kv = (512, 256) if model_type == "qwen3" else (32, 16)  # 4 and 2 heads of 128 or of 8
    per_block = {"attn_norm.weight": (32,), "ffn_norm.weight": (32,), "attn_q.weight": (32, q), "attn_k.weight": (32, kv),
                 "attn_v.weight": (32, kv), "attn_output.weight": (q, 32), "ffn_gate.weight": (32, 64), "ffn_up.weight": (32, 64),
                 "ffn_down.weight": (64, 32)}  # fmt: skip
    if model_type == "qwen2":
        per_block |= {"attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,)}
    if model_type == "qwen3":
        per_block |= {"attn_q_norm.weight": (128,), "attn_k_norm.weight": (128,)}  # one RMS norm shared by the heads
    expected = {f"blk.{b}.{n}": s for b in range(2) for n, s in per_block.items()}
    vocab = model.config.vocab_size
    expected |= {"token_embd.weight": (32, vocab), "output_norm.weight": (32,)}
    if not model.config.tie_word_embeddings:
        expected["output.weight"] = (32, vocab)
    assert shapes == expected


@pytest.mark.parametrize("model_type", list(CASES))
def test_transformers_reads_each_f32_export_back_to_the_same_logits(model_type: str, others) -> None:
    model, tokenizer, path = others[model_type]
    # (transformers reads a llama GGUF whose general.name is exactly "mistral" as a mistral, then fails in gguf-py.)
    read = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    read_tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert read_tokenizer(TEXT, return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        ours, theirs = model(ids).logits, read(ids).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)  # f32 both sides; only the attention kernel may differ
    assert ours.std() > 0.3  # the check above is not comparing near-zero logits


@pytest.mark.parametrize("model_type", list(CASES))
def test_llama_cpp_runs_each_f32_export_as_transformers_does(model_type: str, others) -> None:
    model, tokenizer, path = others[model_type]
    ids = tokenizer(TEXT).input_ids
    theirs = llama_cpp_logits(path, ids)
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
        generated = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=None)[0, len(ids):]
    difference = np.abs(theirs - ours).max()
    assert difference < 1e-3 * np.abs(ours).max(), difference
    assert llama_cpp_greedy(path, [ids], max_new_tokens=8)[0] == generated.tolist()
