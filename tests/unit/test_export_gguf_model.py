"""A tiny llama model written as GGUF: metadata, tensor names and shapes, the q/k permutation, q8_0 blocks.

The reference for the permutation is transformers' own GGUF reader, which undoes llama.cpp's layout
(``reverse_permute``) when it loads a llama GGUF: an f32 export read back must give the same logits.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from genlab.export.gguf_model import (
    ModelExportError,
    permute_rotary_rows,
    write_model_gguf,
)
from genlab.export.gguf_tokenizer import TokenizerExportError, pre_tokenizer_name
from genlab.models.tiny import tiny_model


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("causal", seed=5)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf-model")
    return {q: write_model_gguf(tiny.model, tiny.tokenizer, folder / f"tiny-{q}.gguf", quant=q, name="tiny") for q in ("f32", "q8_0")}


def field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


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
    with pytest.raises(ModelExportError, match="'t5'.*llama family"):
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
