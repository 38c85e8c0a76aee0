"""A Hugging Face byte-level BPE tokenizer written into a GGUF's metadata, as llama.cpp reads it.

What llama.cpp needs (``tokenizer.ggml.*``): the tokenizer model (``gpt2`` for byte-level BPE), the
pre-tokenizer's name (which regex splits the text before BPE), every token with its type, the merges,
the special token ids, whether BOS is added, and the chat template. The gguf package writes the keys
and reads merges, special ids and the chat template from a saved tokenizer (``gguf.SpecialVocab``).

Written here, because no maintained library exposes it (llama.cpp's ``convert_hf_to_gguf.py`` is a
script, not a package): the token list with types — the same rule as that script's
``get_vocab_base``: added tokens marked special are CONTROL (llama.cpp parses them in a prompt),
other added tokens USER_DEFINED, ids the vocabulary leaves free ``[PAD<id>]`` UNUSED — and the
pre-tokenizer's name. The script names it by hashing the tokenizer's output on a test string; here it
is read from the tokenizer's own ``pre_tokenizer`` description, for the layouts below, and any other
layout is refused rather than guessed (a wrong name gives a GGUF that tokenises digits or spaces
differently from the model it came from). Qwen2 and Qwen3 tokenizers split with their own regex
(matched character for character) and NFC-normalise the text first; llama.cpp's ``qwen2``
pre-tokenizer does not normalise, which gives the same tokens for text already in NFC (nearly all
text) and is what llama.cpp's own converter writes for them. Any other normaliser is refused.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gguf

from genlab.errors import GenlabError

# tokenizer.json "pre_tokenizer" layouts -> llama.cpp's pre-tokenizer names (llama-vocab.cpp).
GPT2 = "gpt-2"  # ByteLevel with GPT-2's regex: 's|'t|... ?\p{L}+| ?\p{N}+|...
SMOLLM = "smollm"  # each digit split off first (Digits individual_digits), then GPT-2's regex
QWEN2 = "qwen2"  # Split on QWEN2_REGEX (isolated), then ByteLevel without its own regex (Qwen2, Qwen3)
QWEN2_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
KNOWN = "it knows GPT-2's byte-level split, alone or after single digits, and Qwen2's"


class TokenizerExportError(GenlabError):
    """A tokenizer that genlab cannot describe to llama.cpp."""


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer described in a ``tokenizer.json`` (refused if unknown)."""
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise TokenizerExportError(
            f"the tokenizer is a {model.get('type')!r} model{' with byte fallback' if model.get('byte_fallback') else ''}; "
            "genlab writes byte-level BPE tokenizers (GPT-2 style) to GGUF."
        )
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        name = GPT2
    elif kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        name = SMOLLM
    elif kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        split = steps[0]
        if split.get("pattern") != {"Regex": QWEN2_REGEX} or split.get("behavior") != "Isolated" or split.get("invert"):
            raise TokenizerExportError(
                f"the tokenizer splits text on {split.get('pattern')!r} ({split.get('behavior')}), not on Qwen2's regex, "
                f"so genlab cannot name its pre-tokenizer for llama.cpp ({KNOWN})."
            )
        name = QWEN2
    else:
        raise TokenizerExportError(
            f"the tokenizer's pre-tokenizer ({' -> '.join(map(str, kinds)) or 'none'}) is not one genlab can name for "
            f"llama.cpp ({KNOWN})."
        )
    normalizer = tokenizer_json.get("normalizer")
    if normalizer is not None and not (name == QWEN2 and normalizer == {"type": "NFC"}):
        raise TokenizerExportError("the tokenizer normalises text before splitting it, which genlab's GGUF export does not describe.")
    return name


def token_list(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their GGUF token types (the rule of llama.cpp's convert_hf_to_gguf.py)."""
    by_id = {token_id: text for text, token_id in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    if max(by_id) >= vocab_size:
        raise TokenizerExportError(f"the tokenizer has ids up to {max(by_id)}, beyond the model's vocab_size {vocab_size}.")
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(vocab_size):
        text = by_id.get(token_id)
        if text is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif text in added:
            tokens.append(text)
            special = token_id in decoder and decoder[token_id].special
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def add_tokenizer(writer: gguf.GGUFWriter, tokenizer: Any, vocab_size: int) -> str:
    """Write the tokenizer's metadata into ``writer``; return the pre-tokenizer name used."""
    with tempfile.TemporaryDirectory(prefix="genlab-tokenizer-") as folder:
        tokenizer.save_pretrained(folder)
        tokenizer_file = Path(folder) / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise TokenizerExportError("the tokenizer is not a fast (tokenizers) tokenizer, so it has no tokenizer.json to export.")
        pre = pre_tokenizer_name(json.loads(tokenizer_file.read_text(encoding="utf-8")))
        tokens, types = token_list(tokenizer, vocab_size)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
        if not special.merges:
            raise TokenizerExportError("the tokenizer has no BPE merges, so llama.cpp could not tokenise with it.")
        # Whether BOS/EOS wrap a prompt is what the tokenizer does, written out so llama.cpp does the same.
        sample = tokenizer("a")["input_ids"]
        special.add_special_token["bos"] = tokenizer.bos_token_id is not None and sample[:1] == [tokenizer.bos_token_id]
        special.add_special_token["eos"] = tokenizer.eos_token_id is not None and sample[-1:] == [tokenizer.eos_token_id]
        special.add_to_gguf(writer, quiet=True)
    if tokenizer.chat_template and special.chat_template is None:  # kept only in memory: write it too
        writer.add_chat_template(tokenizer.chat_template)
    return pre
