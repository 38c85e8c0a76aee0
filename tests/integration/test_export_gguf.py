"""The GGUF round trip against llama.cpp itself (llama-cpp-python), on the default model and a LoRA on it.

- ``genlab export gguf smollm2-135m-instruct --quant f16`` and the export of a LoRA merged into it give,
  in llama.cpp, the same greedy tokens as genlab's fp32 engine: all of the first 32 on at least 15 of
  16 prompts (f16 rounding may flip a near tie on one);
- the LoRA exported alone (``--lora``) loads on the base's GGUF (``Llama(..., lora_path=...)``) and
  moves the answers away from the base's, to the merged model's;
- llama.cpp tokenises the chat-formatted prompts exactly as genlab's tokenizer does (the GGUF's
  vocabulary, merges, pre-tokenizer and special tokens), and the Modelfile's translated template
  renders the default model's own chat template.

llama-cpp-python is built by ``make test`` (``make setup-llamacpp``); in CI a missing build fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genlab.export.llama_cpp_check import agreeing, llama_cpp_greedy
from genlab.export.run import ExportRequest, export_gguf
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.adapters import merge_adapter
from genlab.models.load import load_model
from tests.conftest import IN_CI
from tests.integration.adapter_support import small_lora
from tests.ollama_template_support import ollama_prompt

pytestmark = pytest.mark.integration

try:
    import llama_cpp
except ImportError:  # pragma: no cover - depends on the machine
    if IN_CI:
        raise  # CI builds it (make test): missing is a failure, not a skip
    pytest.skip("llama-cpp-python is not installed: `make setup-llamacpp` builds it", allow_module_level=True)

MODEL = "smollm2-135m-instruct"
NEW_TOKENS = 32
PROMPTS = [
    "What is the capital of France?",
    "Explain what a LoRA adapter is in one sentence.",
    "Write a haiku about autumn leaves.",
    "List three fruits that are red.",
    "How many legs does a spider have?",
    "Give me a tip for writing clean Python code.",
    "What is 12 times 12?",
    "Translate 'good morning' into Spanish.",
    "Why is the sky blue?",
    "Summarize: Tom asked Mary to lunch on Friday at 1 pm; she said yes.",
    "Name a famous painting by Leonardo da Vinci.",
    "What does a CPU do?",
    "Suggest a name for a small coffee shop.",
    "What is the boiling point of water in Celsius?",
    "Describe a cat in two sentences.",
    "What are the primary colors?",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("export-gguf")
    with pytest.MonkeyPatch.context() as patch:  # the module's runs go to one lineage store of its own
        patch.setenv("GENLAB_HOME", str(root / "home"))
        adapter = small_lora(MODEL, root / "smollm2-lora", seed=3, scale=0.3)
        base = export_gguf(ExportRequest(source=MODEL, output=root / "base", quant="f16"))
        merged = export_gguf(ExportRequest(source=str(adapter), output=root / "merged", quant="f16"))
        lora = export_gguf(ExportRequest(source=str(adapter), output=root / "lora-gguf", lora=True, base_gguf=Path(base.model_gguf)))
    loaded = load_model(MODEL)
    return {"base": base, "merged": merged, "lora": lora, "loaded": loaded, "merged_model": merge_adapter(loaded, adapter)}


def engine_tokens(loaded, prompts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """genlab's fp32 engine, greedy: the chat-formatted prompt ids and the first NEW_TOKENS answer ids."""
    settings = GenerationSettings(max_new_tokens=NEW_TOKENS, temperature=0.0)
    completions = GenerationEngine(loaded, batch_size=len(prompts)).generate(prompts, settings, chat=True)
    formatted = [loaded.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) for p in prompts]
    prompt_ids = [loaded.tokenizer(text, add_special_tokens=False)["input_ids"] for text in formatted]
    return prompt_ids, [list(c.choices[0].token_ids) for c in completions]


def test_f16_export_of_the_default_model_answers_as_genlabs_engine(exported) -> None:
    loaded = exported["loaded"]
    prompt_ids, ours = engine_tokens(loaded, PROMPTS)
    exported["base_answers"] = ours  # the LoRA test's "changed" check reads them when it runs in this process
    vocabulary = llama_cpp.Llama(model_path=exported["base"].model_gguf, vocab_only=True, verbose=False)
    for ids, prompt in zip(prompt_ids, PROMPTS, strict=True):  # llama.cpp tokenises as genlab does
        text = loaded.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        assert vocabulary.tokenize(text.encode(), add_bos=False, special=True) == ids
    vocabulary.close()
    theirs = llama_cpp_greedy(exported["base"].model_gguf, prompt_ids, max_new_tokens=NEW_TOKENS)
    assert agreeing(ours, theirs, NEW_TOKENS) >= 15, f"{agreeing(ours, theirs, NEW_TOKENS)}/16 prompts agree"


def test_a_lora_merged_or_applied_by_llama_cpp_answers_as_genlabs_merged_model(exported) -> None:
    prompt_ids, ours = engine_tokens(exported["merged_model"], PROMPTS)
    merged = llama_cpp_greedy(exported["merged"].model_gguf, prompt_ids, max_new_tokens=NEW_TOKENS)
    assert agreeing(ours, merged, NEW_TOKENS) >= 15, f"{agreeing(ours, merged, NEW_TOKENS)}/16 prompts agree"
    # The LoRA GGUF alone, on the base's GGUF: the merged model's answers, not the base's.
    few = slice(0, 4)
    with_lora = llama_cpp_greedy(exported["base"].model_gguf, prompt_ids[few], max_new_tokens=NEW_TOKENS, lora_path=exported["lora"].adapter_gguf)
    assert agreeing(with_lora, merged[few], NEW_TOKENS) >= 3
    base = exported["base_answers"][few] if "base_answers" in exported else engine_tokens(exported["loaded"], PROMPTS[few])[1]
    assert agreeing(with_lora, base, NEW_TOKENS) < 4  # the adapter changes answers
    # Its Modelfile: FROM the base's GGUF, ADAPTER the LoRA, and the default model's template translated.
    modelfile = Path(exported["lora"].modelfile).read_text(encoding="utf-8")
    assert f"FROM {exported['base'].model_gguf}\n" in modelfile and "ADAPTER ./smollm2-lora-lora.gguf\n" in modelfile
    tokenizer = exported["loaded"].tokenizer
    for messages in ([{"role": "user", "content": "Hi"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]):  # fmt: skip
        assert ollama_prompt(modelfile, messages) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
