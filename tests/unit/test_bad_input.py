"""Input a careless user gives (issue 18, part 3): one sentence on stderr and exit 2, never a traceback.

Each case below ended in a traceback and exit 1 before: an empty JSONL file (a bare StopIteration from
`datasets`), a recursive YAML anchor (RecursionError), GENLAB_HOME naming a file (FileExistsError), a
damaged lineage store (sqlite3.DatabaseError).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from genlab.config import RecipeError, parse_override, read_recipe_file
from genlab.data.loaders import DataError, load_examples
from genlab.home import HomeError, genlab_home
from genlab.lineage.store import LineageStore
from genlab.serving.jobs import JobStore
from genlab.sqlite_support import StoreUnreadableError
from genlab.yaml_files import MAX_EXPANDED_VALUES, structure_problem
from tests.conftest import run_cli


def assert_one_sentence(result, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    message = result.stderr.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ")
    for word in words:
        assert word in message, message


# --- empty data files --------------------------------------------------------------------------

EMPTY_FILES = {
    "empty.jsonl": "",
    "blank.jsonl": "\n  \n",
    "empty-array.json": "[]",
    "header-only.csv": "dialogue,summary\n",
}


@pytest.mark.parametrize("name", sorted(EMPTY_FILES))
def test_a_data_file_without_rows_is_refused_by_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(EMPTY_FILES[name])
    with pytest.raises(DataError, match="no rows|is empty") as caught:
        load_examples(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("command", [["eval"], ["prompt", "compare", "--shots", "0"]])
def test_eval_and_prompt_compare_on_an_empty_jsonl(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_sentence(run_cli(*command, "--data", str(empty)), str(empty), "empty")


# --- recursive and exploding YAML ------------------------------------------------------------

RECURSIVE = "name: &loop [*loop]\n"
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    for previous, name in zip("abcdef", "bcdefg")
)  # 10**7 values once expanded, from a 400-byte file


@pytest.mark.parametrize("command", [["finetune"], ["align", "dpo"]])
def test_a_recursive_yaml_anchor_in_a_recipe(tmp_path: Path, command: list[str]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECURSIVE)
    assert_one_sentence(run_cli(*command, str(recipe)), str(recipe), "refers to itself")


def test_aliases_that_expand_exponentially_are_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(BILLION_LAUGHS)
    with pytest.raises(RecipeError, match="expand to more than"):
        read_recipe_file(recipe)


def test_nesting_deeper_than_the_stack(tmp_path: Path) -> None:
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(RecipeError, match="nested too deeply"):
        read_recipe_file(recipe)


def test_shared_aliases_that_are_not_cycles_still_load(tmp_path: Path) -> None:
    recipe = tmp_path / "shared.yaml"
    recipe.write_text("base: &base {lr: 0.001, steps: 2}\nfirst: *base\nsecond: [*base, *base]\n")
    raw = read_recipe_file(recipe)
    assert raw["first"] == {"lr": 0.001, "steps": 2} and raw["second"][1] is raw["base"]


def test_structure_problem_counts_aliases_by_expanded_size() -> None:
    leaf = list(range(1000))
    assert structure_problem([leaf] * 999) is None  # 999 * 1001 + 1 values: under the cap
    assert "expand to more than" in structure_problem([[leaf] * 1000] * 2)  # 2 * 1000 * 1001 + ... values
    assert MAX_EXPANDED_VALUES == 1_000_000


def test_a_recursive_override_on_the_command_line() -> None:
    with pytest.raises(RecipeError, match="refers to itself"):
        parse_override("training.lr=&x [*x]")


# --- GENLAB_HOME -------------------------------------------------------------------------------

def test_genlab_home_naming_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    monkeypatch.setenv("GENLAB_HOME", str(a_file))
    with pytest.raises(HomeError, match="is a file, not a folder"):
        genlab_home()
    assert_one_sentence(run_cli("runs", "list"), "GENLAB_HOME", str(a_file), "not a folder")
    monkeypatch.setenv("GENLAB_HOME", str(a_file / "below"))
    assert_one_sentence(run_cli("runs", "list"), "GENLAB_HOME", "cannot be made")


# --- a damaged lineage store ---------------------------------------------------------------------

def test_a_lineage_store_that_is_not_sqlite(genlab_home: Path) -> None:
    genlab_home.mkdir(parents=True, exist_ok=True)
    store = genlab_home / "lineage.sqlite"
    garbage = bytes(range(256)) * 40
    store.write_bytes(garbage)
    assert_one_sentence(run_cli("runs", "list"), str(store), "mv ", "damaged")
    assert store.read_bytes() == garbage  # never reset: the user's file is left as it was


def test_a_lineage_store_with_damaged_pages(tmp_path: Path) -> None:
    path = tmp_path / "lineage.sqlite"
    with LineageStore(path) as store:
        for number in range(200):
            store.start_run("train", {"padding": "x" * 2000, "number": number})
    with open(path, "r+b") as file:  # overwrite three pages in the middle of the tables
        file.seek(4096 * 5)
        file.write(b"\xff" * 4096 * 3)
    damaged = path.read_bytes()
    with pytest.raises(StoreUnreadableError, match="cannot be read") as caught:
        LineageStore(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == damaged


def test_a_healthy_store_opens_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "lineage.sqlite"
    with LineageStore(path) as store:
        run_id = store.start_run("train", {"a": 1})
    with LineageStore(path) as store:
        assert store.get_run(run_id).config == {"a": 1}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_job_store_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreUnreadableError, match="job store .* cannot be read"):
        JobStore(path)
    assert path.read_bytes() == b"not a database" * 100
