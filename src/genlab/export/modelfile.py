"""An Ollama ``Modelfile`` beside an exported GGUF: FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER stop.

Ollama builds prompts with Go's ``text/template`` over its own variables (``.Messages``, each with
``.Role`` and ``.Content``; ``.System``; ``.Prompt``; ...), not with the model's Jinja chat template,
so the template is translated. A Jinja template is a program, and no general Jinja -> Go translator
exists; the translation here (hand-written, for that reason) observes what the template *does*:

1. render it (through the tokenizer, as genlab's engine renders it) on conversations whose contents
   are unique marker words, one message more each time; each render extends the previous one, and the
   new text is that message's turn: ``prefix(role) + content + suffix(role)``;
2. split each turn at its content, for the roles system, user and assistant; the generation prompt is
   what ``add_generation_prompt`` appends; a leading text (``<s>``, ...) is what comes before the
   first turn;
3. if the template writes a system turn of its own when the conversation has none (SmolLM2 does:
   "You are a helpful AI assistant named SmolLM..."), that text becomes the Modelfile's ``SYSTEM``:
   Ollama then puts it first in ``.Messages`` when a request brings no system message, which renders
   the same text the Jinja template would;
4. write the Go template::

       LEAD{{ range .Messages }}{{ if eq .Role "system" }}P_sys{{ .Content }}S_sys
       {{ else if eq .Role "user" }}...{{ end }}{{ end }}GENERATION_PROMPT

   (on one line: no ``{{-`` trim markers, which would eat the turns' own newlines).

A template this does not describe — turns that depend on their position beyond the first, a content
rewritten (stripped, escaped) on the way, literal ``{{`` — is refused in one sentence rather than
translated wrongly; the check renders both templates on a held-out conversation (tests/unit/
test_export_modelfile.py renders the Go template as Ollama's documented syntax defines it).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from genlab.errors import GenlabError

ROLES = ("system", "user", "assistant")
MARKERS = {"system": "Qsysmarker", "user": "Qusermarker", "assistant": "Qassistantmarker"}


class TemplateTranslationError(GenlabError):
    """A chat template genlab cannot translate to Ollama's template syntax."""


@dataclass(frozen=True)
class OllamaTemplate:
    """A chat template as Ollama's Modelfile states it."""

    lead: str  # text before the first turn (a BOS string, or nothing)
    turns: dict[str, tuple[str, str]]  # role -> (text before the content, text after it)
    generation_prompt: str  # what opens the assistant's answer
    default_system: str | None  # the system prompt the template adds when a conversation has none
    stops: list[str] = field(default_factory=list)

    def go_template(self) -> str:
        branches = []
        for index, role in enumerate(ROLES):
            before, after = self.turns[role]
            keyword = "if" if index == 0 else "else if"
            branches.append(f'{{{{ {keyword} eq .Role "{role}" }}}}{before}{{{{ .Content }}}}{after}')
        return f"{self.lead}{{{{ range .Messages }}}}{''.join(branches)}{{{{ end }}}}{{{{ end }}}}{self.generation_prompt}"


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as error:  # noqa: BLE001 - a template may refuse a conversation (raise_exception)
        raise TemplateTranslationError(
            f"the chat template cannot render a {'/'.join(m['role'] for m in messages)} conversation: {error}"
        ) from None


def _turn(before: str, after: str, role: str, content: str) -> tuple[str, str]:
    if not after.startswith(before):
        raise TemplateTranslationError("the chat template rewrites earlier turns when a message is added, which Ollama's template cannot do.")
    turn = after[len(before):]
    if turn.count(content) != 1:
        raise TemplateTranslationError(f"the chat template changes a {role} message's text (or drops it), which genlab cannot translate.")
    prefix, _, suffix = turn.partition(content)
    return prefix, suffix


def translate_chat_template(tokenizer: Any) -> OllamaTemplate:
    """The tokenizer's chat template in Ollama's terms (see the module docstring for how)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateTranslationError("the model has no chat template to translate for Ollama.")
    user, assistant, system = (
        {"role": "user", "content": MARKERS["user"]},
        {"role": "assistant", "content": MARKERS["assistant"]},
        {"role": "system", "content": MARKERS["system"]},
    )
    # With a system message first, every turn is added in the same way: system, user, assistant, user.
    conversation = [system, user, assistant, {"role": "user", "content": MARKERS["user"] + "2"}]
    renders = [_render(tokenizer, conversation[:k]) for k in range(1, len(conversation) + 1)]
    system_turn = _turn("", renders[0], "system", MARKERS["system"])
    lead, system_before = _split_lead(tokenizer, system_turn[0])
    turns = {
        "system": (system_before, system_turn[1]),
        "user": _turn(renders[0], renders[1], "user", MARKERS["user"]),
        "assistant": _turn(renders[1], renders[2], "assistant", MARKERS["assistant"]),
    }
    if _turn(renders[2], renders[3], "user", MARKERS["user"] + "2") != turns["user"]:
        raise TemplateTranslationError("the chat template writes a user turn differently the second time, which genlab cannot translate.")
    generation_prompt = _render(tokenizer, conversation, generation_prompt=True)[len(renders[3]):]
    default_system = _default_system(tokenizer, lead, turns)
    stops = [s for s in dict.fromkeys([turns["assistant"][1].strip(), getattr(tokenizer, "eos_token", None) or ""]) if s]
    template = OllamaTemplate(lead, turns, generation_prompt, default_system, stops)
    for text in (template.lead, template.generation_prompt, *(part for pair in turns.values() for part in pair)):
        if "{{" in text or "}}" in text or '"""' in text:
            raise TemplateTranslationError("the chat template writes '{{', '}}' or '\"\"\"' literally, which a Modelfile's template cannot hold.")
    return template


def _split_lead(tokenizer: Any, first_system_prefix: str) -> tuple[str, str]:
    """Text before a first system turn = lead (``<s>``, ...) + the system turn's own prefix.

    The prefix is that of a system message later in a conversation (after a user message); a template
    that refuses one there is taken to have no lead when a user-first conversation shows none.
    """
    user = {"role": "user", "content": MARKERS["user"]}
    try:
        later, _ = _turn(_render(tokenizer, [user]), _render(tokenizer, [user, {"role": "system", "content": MARKERS["system"]}]),
                         "system", MARKERS["system"])  # fmt: skip
    except TemplateTranslationError:
        later = None
    if later is not None and first_system_prefix.endswith(later):
        return first_system_prefix[: len(first_system_prefix) - len(later)], later
    return "", first_system_prefix


def _default_system(tokenizer: Any, lead: str, turns: dict[str, tuple[str, str]]) -> str | None:
    """The system prompt the template writes when a conversation has none (None: it writes none)."""
    alone = _render(tokenizer, [{"role": "user", "content": MARKERS["user"]}])
    user_turn = turns["user"][0] + MARKERS["user"] + turns["user"][1]
    if alone == lead + user_turn:
        return None
    before, after = turns["system"]
    head = lead + before
    if alone.startswith(head) and alone.endswith(after + user_turn):
        return alone[len(head): len(alone) - len(after + user_turn)]
    raise TemplateTranslationError("the chat template adds text to a conversation without a system message that is not a system turn.")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(template: OllamaTemplate, model_file: str, adapter_file: str | None = None) -> str:
    """The Modelfile: FROM the GGUF (and ADAPTER the LoRA GGUF), the translated TEMPLATE, SYSTEM, PARAMETER stop."""
    lines = [
        "# Written by `genlab export gguf`. Create the model with: ollama create NAME -f Modelfile",
        f"FROM {model_file}",
    ]
    if adapter_file is not None:
        lines.append(f"ADAPTER {adapter_file}")
    lines.append(f'TEMPLATE """{template.go_template()}"""')
    if template.default_system is not None:
        lines.append(f'SYSTEM """{template.default_system}"""')
    lines += [f"PARAMETER stop {_quoted(stop)}" for stop in template.stops]
    return "\n".join(lines) + "\n"


def ollama_create_command(name: str, folder: str) -> str:
    return f"cd {shlex.quote(folder)} && ollama create {shlex.quote(name)} -f Modelfile"
