"""Prompt templates: strict rendering, the builtin library, and user templates from files."""

from pathlib import Path

import pytest

from genlab.data.example import Example
from genlab.errors import GenlabError
from genlab.prompting.templates import (
    BUILTIN_DIR,
    TemplateError,
    TemplateVariableError,
    builtin_template_names,
    get_template,
)

SHOTS = [
    Example("s1", "FIRST-INPUT alpha", "FIRST-TARGET one"),
    Example("s2", "SECOND-INPUT beta", "SECOND-TARGET two"),
    Example("s3", "THIRD-INPUT gamma", "THIRD-TARGET three"),
]
QUERY = "QUERY-INPUT delta"


def test_builtin_names_are_the_library_and_every_file_is_one() -> None:
    assert builtin_template_names() == ["summarize", "sentiment", "translate", "qa", "extract_entities"]
    # No orphan template files, no builtin without its file (package data that cannot rot).
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.jinja")) == sorted(builtin_template_names())


def test_summarize_is_the_course_lab_prompt() -> None:
    # Reference: the prompt of Lab 1 (dialogue summarisation, FLAN-T5) built by hand from its format.
    template = get_template("summarize")
    assert template.render(input="D", examples=[]) == "Dialogue:\n\nD\n\nWhat was going on?\n"
    shots = [Example("a", "A1", "S1"), Example("b", "A2", "S2")]
    assert template.render(input="D", examples=shots) == (
        "Dialogue:\n\nA1\n\nWhat was going on?\nS1\n\n\n"
        "Dialogue:\n\nA2\n\nWhat was going on?\nS2\n\n\n"
        "Dialogue:\n\nD\n\nWhat was going on?\n"
    )


@pytest.mark.parametrize("name", builtin_template_names())
def test_every_builtin_renders_zero_shot_with_only_the_query(name: str) -> None:
    text = get_template(name).render(input=QUERY, examples=[])
    assert QUERY in text
    assert "INPUT alpha" not in text and "TARGET" not in text
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("name", builtin_template_names())
def test_every_builtin_renders_examples_in_order_and_the_query_last(name: str) -> None:
    text = get_template(name).render(input=QUERY, examples=SHOTS)
    markers = [part for shot in SHOTS for part in (shot.input, shot.target)] + [QUERY]
    positions = [text.find(marker) for marker in markers]
    assert -1 not in positions, positions
    # input 1 < target 1 < input 2 < ... < query: each target follows its own input, the query is last.
    assert positions == sorted(positions)
    after_query = text[positions[-1] + len(QUERY) :]
    assert "TARGET" not in after_query and after_query.strip()  # the answer cue, no further examples


def test_cue_templates_end_on_their_label_so_the_model_answers_on_that_line() -> None:
    assert get_template("sentiment").render(input="ok", examples=[]).endswith("Review: ok\nSentiment:")
    assert get_template("qa").render(input="Why?", examples=[]).endswith("Question: Why?\nAnswer:")
    assert get_template("extract_entities").render(input="x", examples=[]).endswith("Text: x\nEntities:")


def test_missing_variable_fails_loudly_with_its_name() -> None:
    with pytest.raises(TemplateVariableError) as caught:
        get_template("summarize").render(examples=[])
    assert str(caught.value) == "template 'summarize' needs variable 'input'."
    assert isinstance(caught.value, GenlabError)


def test_an_example_without_a_target_is_not_printed_as_none() -> None:
    with pytest.raises(TemplateVariableError, match="None"):
        get_template("summarize").render(input="q", examples=[Example("a", "text", None)])


def test_translate_defaults_and_overrides() -> None:
    template = get_template("translate")
    assert template.render(input="Hello", examples=[]).startswith("Translate from English to French.")
    text = template.render(input="Hello", examples=[], target_language="German")
    assert text.startswith("Translate from English to German.") and text.endswith("English: Hello\nGerman:")


def test_a_misspelt_variable_is_refused_not_ignored() -> None:
    with pytest.raises(TemplateVariableError, match="has no variable 'target_lang'.*target_language"):
        get_template("translate").render(input="Hello", examples=[], target_lang="German")


@pytest.mark.parametrize("suffix", [".jinja", ".txt"])
def test_user_template_from_a_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"headline{suffix}"
    path.write_text(
        "{% for e in examples %}Article: {{ e.input }}\nHeadline: {{ e.target }}\n\n{% endfor %}"
        "Article: {{ input }}\nHeadline ({{ style }}):\n",
        encoding="utf-8",
    )
    template = get_template(str(path))
    assert template.name == "headline" and template.origin == str(path)
    assert template.variables == {"examples", "input", "style"}
    text = template.render(input="Q", examples=[Example("1", "A", "H")], style="short")
    assert text == "Article: A\nHeadline: H\n\nArticle: Q\nHeadline (short):\n"
    with pytest.raises(TemplateVariableError, match="template 'headline' needs variable 'style'"):
        template.render(input="Q", examples=[])


def test_syntax_error_in_a_user_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jinja"
    path.write_text("Line one\nLine two\nText: {{ input }\n", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        get_template(str(path))
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


def test_unknown_name_lists_the_builtin_names() -> None:
    with pytest.raises(TemplateError) as caught:
        get_template("summarise")
    message = str(caught.value)
    for name in builtin_template_names():
        assert name in message


def test_missing_file_and_wrong_suffix_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no such template file"):
        get_template(str(tmp_path / "nowhere.jinja"))
    other = tmp_path / "prompt.md"
    other.write_text("{{ input }}", encoding="utf-8")
    with pytest.raises(TemplateError, match="use a .jinja or .txt file"):
        get_template(str(other))
