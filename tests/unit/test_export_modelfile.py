"""The Ollama Modelfile: its instructions, and the chat template translated from Jinja to Go's template syntax.

No Ollama (nor Go) runs here, so the check is against Ollama's documented syntax, implemented in
tests/ollama_template_support.py: the Modelfile parses, names only documented instructions and
variables, and the prompt Ollama would build equals the one the Jinja template renders, on several
conversations and three template shapes (ChatML, ChatML with a default system prompt like SmolLM2's,
a BOS lead and role headers like Llama 3's). The default model's own template is checked the same way
in tests/integration/test_export_gguf.py.
"""

from __future__ import annotations

import pytest

from genlab.export.modelfile import (
    TemplateTranslationError,
    modelfile_text,
    translate_chat_template,
)
from genlab.models.tiny import CHATML_TEMPLATE, tiny_tokenizer
from tests.ollama_template_support import (
    ACTION,
    INSTRUCTIONS,
    VARIABLES,
    ollama_prompt,
    parse_modelfile,
    render_go_template,
)

CONVERSATIONS = [
    [{"role": "user", "content": "What is LoRA?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!\nTwo lines."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Sum 2+2?"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c"}],
]  # fmt: skip

DEFAULT_SYSTEM = (  # SmolLM2's template (its pack's GGUF metadata): ChatML, with a system turn of its own when none is given
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_STYLE = (  # Meta's Llama 3 chat template, shortened: a literal BOS lead, role headers, trimmed contents
    "<|begin_of_text|>{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_the_go_renderer_follows_ollamas_documented_llama3_example() -> None:
    # docs/template.md, "Adding templates to your model": Meta's Llama 3.
    documented = (
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>\n{{- end }}\n"
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    data = {"System": "Be brief.", "Messages": [{"Role": "user", "Content": "Hi"}]}
    assert render_go_template(documented, data) == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert render_go_template("{{ if .System }}S{{ else }}none{{ end }}", {"System": ""}) == "none"


@pytest.mark.parametrize("name", ["tiny-chatml", "smollm2-style", "llama3-style"])
def test_ollama_renders_what_the_jinja_template_renders(tokenizer, name: str) -> None:
    tokenizer.chat_template = {"tiny-chatml": CHATML_TEMPLATE, "smollm2-style": DEFAULT_SYSTEM, "llama3-style": LLAMA3_STYLE}[name]
    template = translate_chat_template(tokenizer)
    modelfile = modelfile_text(template, "./model-f16.gguf", "./tiny-lora.gguf")
    pairs = parse_modelfile(modelfile)
    assert [n for n, _ in pairs][:2] == ["FROM", "ADAPTER"] and {n for n, _ in pairs} <= INSTRUCTIONS
    assert dict(pairs)["FROM"] == "./model-f16.gguf" and dict(pairs)["ADAPTER"] == "./tiny-lora.gguf"
    for action in ACTION.findall(dict(pairs)["TEMPLATE"]):
        words = action[1].replace('"', " ").split()
        assert all(w in VARIABLES or w in {"range", "if", "else", "end", "eq"} or w in {"system", "user", "assistant"} for w in words)
    for messages in CONVERSATIONS:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert ollama_prompt(modelfile, messages) == expected
    stops = [arg for n, arg in pairs if n == "PARAMETER"]
    assert stops and all(s.startswith('stop "') for s in stops)
    if name == "smollm2-style":  # its template adds a default system prompt: the Modelfile says it with SYSTEM
        assert dict(pairs)["SYSTEM"] == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        assert 'stop "<|im_end|>"' in stops
    if name == "llama3-style":
        assert template.lead == "<|begin_of_text|>" and 'stop "<|eot_id|>"' in stops


def test_templates_it_cannot_translate_are_refused(tokenizer) -> None:
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | upper }}\n{% endfor %}"
    with pytest.raises(TemplateTranslationError, match="changes a system message's text"):
        translate_chat_template(tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(TemplateTranslationError, match="no chat template"):
        translate_chat_template(tokenizer)
