"""Greedy answers of an exported GGUF from llama.cpp itself (llama-cpp-python), to check an export.

``llama_cpp_greedy`` reads each prompt (token ids, so both sides read the same tokens) into its own
sequence of one llama.cpp context, then decodes every unfinished sequence together, one token each
per ``llama_decode`` call (llama.cpp's batched decoding, as its ``llama-batched`` example does),
taking the argmax of llama.cpp's logits: greedy decoding. Batching the sequences makes checking 16
prompts about as fast as checking one; the prompts are read one at a time, as a single request would
be. A GGUF LoRA adapter is applied with ``llama_set_adapters_lora`` (``lora_path``). This goes through
llama-cpp-python's low-level bindings because its ``Llama`` class holds one sequence only.

``agreeing`` counts the prompts whose first tokens are all the same as genlab's. Used by the GGUF
round-trip tests and ``bench/export_quality.py``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genlab.errors import BackendUnavailableError, ModelLoadError
from genlab.export.quantize import llama_cpp_available, quiet_llama_cpp


def llama_cpp_greedy(
    gguf: str | Path, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, lora_path: str | Path | None = None,
    threads: int = 1,
) -> list[list[int]]:  # fmt: skip
    """llama.cpp's greedy answer to each prompt: up to ``max_new_tokens`` ids, end-of-generation excluded (as genlab's engine)."""
    if not llama_cpp_available():
        raise BackendUnavailableError("checking a GGUF in llama.cpp needs llama-cpp-python (`make setup-llamacpp` builds it).")
    import llama_cpp

    with quiet_llama_cpp():
        return _greedy(llama_cpp, Path(gguf), prompts, max_new_tokens, lora_path, threads)


def _greedy(llama_cpp, gguf, prompts, max_new_tokens, lora_path, threads) -> list[list[int]]:
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), llama_cpp.llama_model_default_params())
    if not model:
        raise ModelLoadError(f"llama.cpp cannot load {gguf}.")
    params = llama_cpp.llama_context_default_params()
    params.n_seq_max = len(prompts)
    params.kv_unified = True  # one cache shared by the sequences, sized by what they hold together
    params.n_ctx = sum(len(p) for p in prompts) + len(prompts) * (max_new_tokens + 1) + 256
    params.n_batch = params.n_ubatch = max(len(prompts), *(len(p) for p in prompts))
    params.n_threads = params.n_threads_batch = threads
    context = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(params.n_batch, 0, len(prompts))
    adapter = None
    try:
        if lora_path is not None:
            adapter = llama_cpp.llama_adapter_lora_init(model, str(lora_path).encode())
            if not adapter:
                raise ModelLoadError(f"llama.cpp cannot load the LoRA adapter {lora_path} on {gguf}.")
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            llama_cpp.llama_set_adapters_lora(context, adapters, 1, (ctypes.c_float * 1)(1.0))
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

        def decode(entries: list[tuple[int, int, int, bool]]) -> list[int]:
            """Decode (token, position, sequence, wants logits) entries; the argmax after each that wants logits."""
            batch.n_tokens = len(entries)
            for i, (token, position, sequence, logits) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, position, 1, logits
                batch.seq_id[i][0] = sequence
            if llama_cpp.llama_decode(context, batch) != 0:
                raise ModelLoadError(f"llama.cpp failed to decode with {gguf}.")
            rows = [i for i, entry in enumerate(entries) if entry[3]]
            return [int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context, i), shape=(n_vocab,)).argmax()) for i in rows]

        following = [decode([(t, i, s, i == len(p) - 1) for i, t in enumerate(p)])[0] for s, p in enumerate(prompts)]
        answers: list[list[int]] = [[] for _ in prompts]
        active = list(range(len(prompts)))
        while active:
            for s in list(active):
                if llama_cpp.llama_vocab_is_eog(vocab, following[s]):
                    active.remove(s)
                    continue
                answers[s].append(following[s])
                if len(answers[s]) == max_new_tokens:
                    active.remove(s)
            if active:
                chosen = decode([(following[s], len(prompts[s]) + len(answers[s]) - 1, s, True) for s in active])
                for s, token in zip(active, chosen, strict=True):
                    following[s] = token
        return answers
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(context)
        if adapter is not None:
            llama_cpp.llama_adapter_lora_free(adapter)
        llama_cpp.llama_model_free(model)


def agreeing(ours: Sequence[Sequence[int]], theirs: Sequence[Sequence[int]], first: int) -> int:
    """Prompts whose first ``first`` answer tokens are all equal (an answer that ends sooner must end at the same place)."""
    return sum(list(a[:first]) == list(b[:first]) for a, b in zip(ours, theirs, strict=True))
