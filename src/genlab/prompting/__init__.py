"""Prompting: strict Jinja templates, in-context learning (zero/one/few-shot) and chat formatting."""

from genlab.prompting.chat import as_user_prompt, count_tokens, format_chat, has_chat_template, trim_history
from genlab.prompting.icl import BuiltPrompt, ExampleSelector, Selection, build_prompt
from genlab.prompting.templates import (
    PromptTemplate,
    TemplateError,
    TemplateVariableError,
    builtin_template_names,
    get_template,
    load_template_file,
)

__all__ = [
    "BuiltPrompt",
    "ExampleSelector",
    "PromptTemplate",
    "Selection",
    "TemplateError",
    "TemplateVariableError",
    "as_user_prompt",
    "build_prompt",
    "builtin_template_names",
    "count_tokens",
    "format_chat",
    "get_template",
    "has_chat_template",
    "load_template_file",
    "trim_history",
]
