"""Tiny random models built from a config, for fast tests: no download, a few seconds on a CPU.

The tokenizer is a byte-level BPE trained in memory on genlab's builtin dialogues (so any text
encodes), with a ChatML chat template like the default model's. The models are 2-layer Llama
(decoder-only) and T5 (encoder-decoder) configs with a small hidden size, initialised from a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from genlab.models.load import LoadedModel, ModelSource

TinyKind = Literal["causal", "seq2seq"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]


def tiny_tokenizer(vocab_size: int = 512) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from genlab.data.builtin import builtin_dialogues

    corpus = [row["dialogue"] + "\n" + row["summary"] for row in builtin_dialogues()]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<pad>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_model(kind: TinyKind = "causal", seed: int = 0, tokenizer: Any | None = None) -> LoadedModel:
    """A randomly initialised 2-layer model and its tokenizer (same seed -> same weights)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, LlamaConfig, T5Config

    tokenizer = tokenizer or tiny_tokenizer()
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if kind == "causal":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,  # small enough for a test to train in seconds
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # grouped-query attention, like the default model
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            tie_word_embeddings=True,
            **ids,
        )
        auto: Any = AutoModelForCausalLM
    elif kind == "seq2seq":
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            feed_forward_proj="gated-gelu",  # as in FLAN-T5
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
        auto = AutoModelForSeq2SeqLM
    else:
        raise ValueError(f"kind={kind!r}: choose 'causal' or 'seq2seq'")
    torch.manual_seed(seed)
    model = auto.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()
    return LoadedModel(
        name=f"tiny-{kind}", source=ModelSource("folder", ""), model=model, tokenizer=tokenizer, path=None
    )


def save_tiny_model(folder: str | Path, kind: TinyKind = "causal", seed: int = 0) -> Path:
    """Write a tiny model as a Hugging Face folder, as a user's own fine-tuned model would be."""
    folder = Path(folder)
    loaded = tiny_model(kind, seed)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return folder
