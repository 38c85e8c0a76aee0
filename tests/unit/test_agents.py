"""Chain-of-thought, PAL, typed tools and the local corpus, with a scripted model (no network, no weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genlab.apps.agents import LocalCorpus, Tool, ToolArgumentError, answer_with_cot, answer_with_pal, extract_answer
from genlab.apps.agents.corpus import Browser, CorpusError
from genlab.apps.agents.pal import runnable_program
from genlab.apps.providers import ProviderError, ScriptedProvider
from genlab.data.example import Example
from genlab.errors import InvalidValueError
from genlab.lineage import LineageStore


# --- chain of thought ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("5 + 6 = 11. The answer is 11.", "11"),
        ("so the answer is: $18\nQ: next", "$18"),
        ("The answer is 3.5 apples. Then more", "3.5 apples"),
        ("The answer is **42**", "42"),
        ("I think it is 7", None),
    ],
)
def test_cot_answer_is_the_text_after_the_answer_is(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_cot_prompt_has_the_exemplars_and_the_answer_is_extracted_and_recorded() -> None:
    model = ScriptedProvider([" She had 3 + 4 = 7 apples. The answer is 7.\n\nQ: Another question the model made up"])
    result = answer_with_cot("Ann has 3 apples and gets 4 more. How many?", model)
    prompt = model.prompts[0]
    assert "Roger has 5 tennis balls" in prompt and "The answer is 11." in prompt  # Wei et al. exemplar
    assert prompt.endswith("Q: Ann has 3 apples and gets 4 more. How many?\nA:")
    assert result.answer == "7"
    assert "made up" not in result.steps[0].model_output  # cut at the next "Q:"
    run = LineageStore().get_run(result.run_id)
    assert run.kind == "agent" and run.config["mode"] == "cot"


def test_cot_caller_examples_join_the_exemplars() -> None:
    model = ScriptedProvider(["x The answer is 1."])
    answer_with_cot("q?", model, examples=[Example(id="x", input="What is 1 * 1?", target="1 * 1 = 1. The answer is 1.")], record=False)
    assert "Q: What is 1 * 1?\nA: 1 * 1 = 1. The answer is 1." in model.prompts[0]


def test_cot_without_the_answer_is_gives_no_answer_and_says_why() -> None:
    result = answer_with_cot("q?", ScriptedProvider(["I am not sure at all"]), record=False)
    assert result.answer is None and "The answer is" in result.error


def test_cot_provider_failure_is_a_clear_error() -> None:
    with pytest.raises(ProviderError, match="only 0 replies"):
        answer_with_cot("q?", ScriptedProvider([]), record=False)


# --- PAL ---------------------------------------------------------------------------------------------

def test_pal_runs_the_program_in_the_sandbox_and_records_program_and_output() -> None:
    program = "def solution():\n    eggs = 16 - 3 - 4\n    return eggs * 2\n"
    model = ScriptedProvider(["```python\n" + program + "```\nQ: extra"])
    result = answer_with_pal("Janet's ducks lay 16 eggs ...", model)
    assert "def solution():" in model.prompts[0] and model.prompts[0].endswith("# solution in Python:\n")
    assert result.answer == "18"  # (16 - 3 - 4) * 2
    assert result.program == program + "print(solution())\n" and result.program_output == "18\n"
    transcript = json.loads((_run_dir(result.run_id) / "transcript.json").read_text())
    assert transcript["program"] == result.program and transcript["program_output"] == "18\n"


def _run_dir(run_id: str) -> Path:
    from genlab.home import runs_dir

    return runs_dir() / run_id


def test_pal_program_that_escapes_is_refused_and_gives_no_answer() -> None:
    model = ScriptedProvider(["def solution():\n    import os\n    return os.listdir('/')\n"])
    result = answer_with_pal("list the disk", model, record=False)
    assert result.answer is None
    assert "import of 'os' is not allowed" in result.error


def test_pal_malformed_program_reports_the_syntax_error() -> None:
    result = answer_with_pal("q", ScriptedProvider(["def solution(:\n  return 1"]), record=False)
    assert result.answer is None and "SyntaxError" in result.error


def test_pal_keeps_a_program_that_prints_its_own_answer() -> None:
    assert runnable_program("print(6 * 7)\n") == "print(6 * 7)\n"
    assert runnable_program("def solution():\n    return 1\n").endswith("print(solution())\n")
    assert runnable_program("def solution():\n    return 1\nx = solution()\nprint(x)\n").count("print") == 1


# --- typed tools -------------------------------------------------------------------------------------

def convert(amount: float, currency: str = "EUR") -> str:
    """Convert US dollars to another currency at a fixed rate.

    More text that is not the summary.
    """
    if currency != "EUR":
        raise ValueError(f"no rate for {currency}")
    return f"{amount * 0.5:.2f} EUR"


def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def test_tool_description_and_usage_come_from_the_signature() -> None:
    tool = Tool.from_function(convert)
    assert tool.usage == "convert[amount: float, currency: str]: Convert US dollars to another currency at a fixed rate."


def test_tool_arguments_are_parsed_as_literals_and_validated() -> None:
    tool = Tool.from_function(convert)
    assert tool("10") == "5.00 EUR"
    assert tool("amount=4, currency='EUR'") == "2.00 EUR"
    assert tool('"3"') == "1.50 EUR"  # pydantic's lax mode turns "3" into 3.0
    with pytest.raises(ToolArgumentError, match="argument amount"):
        tool("'ten'")
    with pytest.raises(ToolArgumentError, match="does not parse"):
        tool("__import__('os')")  # a call is not a literal: never evaluated
    with pytest.raises(ToolArgumentError, match="unexpected keyword|got an unexpected"):
        tool("1, rate=2")


def test_single_str_tool_takes_the_text_as_is() -> None:
    assert Tool.from_function(shout)("hello, world") == "HELLO, WORLD"


def test_bad_tools_are_refused_with_the_reason() -> None:
    def untyped(x):  # noqa: ANN001
        return x

    with pytest.raises(InvalidValueError, match="needs a type annotation"):
        Tool.from_function(untyped)
    with pytest.raises(InvalidValueError, match="builtin action"):
        Tool.from_function(shout, name="Search")


# --- the local corpus --------------------------------------------------------------------------------

def test_search_prefers_the_title_then_bm25_and_lookup_walks_sentences(tmp_path: Path) -> None:
    (tmp_path / "marie_curie.txt").write_text("Marie Curie was a physicist. She was born in Warsaw. She was born again? No.")
    (tmp_path / "warsaw.md").write_text("Warsaw is the capital of Poland. Curie studied there.")
    browser = Browser(LocalCorpus.from_folder(tmp_path))
    assert browser.lookup("born").startswith("There is no current document")
    assert browser.search("marie curie").startswith(f"[{tmp_path / 'marie_curie.txt'}] Marie Curie was a physicist.")
    assert browser.lookup("born") == "(Result 1 / 2) She was born in Warsaw."
    assert browser.lookup("born") == "(Result 2 / 2) She was born again?"
    assert browser.lookup("born") == "No more results for 'born'."
    assert "capital of Poland" in browser.search("capital Poland")
    assert browser.search("zebra") == "Could not find zebra."


def test_corpus_folder_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such corpus folder"):
        LocalCorpus.from_folder(tmp_path / "missing")
    with pytest.raises(CorpusError, match="holds no text files"):
        LocalCorpus.from_folder(tmp_path)
