"""Benchmark task specs: YAML validation, data rows checked with their line numbers, prompts, builtins."""

import json
from collections import Counter
from pathlib import Path

import pytest

from genlab.errors import GenlabError, InvalidValueError
from genlab.evaluation.benchmarks import TaskError, TaskSpec, builtin_task_names, load_task
from genlab.evaluation.benchmarks.task import BUILTIN_DIR

ROWS = [
    {"id": "q1", "question": "What is frozen water called?", "choices": ["ice", "steam", "smoke"], "answer": 0},
    {"id": "q2", "question": "How many legs does a cat have?", "choices": ["two", "four"], "answer": "B"},
    {"id": "q3", "question": "Which colour is grass?", "choices": ["red", "blue", "green"], "answer": 2},
]
MC = {"name": "mini", "type": "multiple_choice", "data": "mini.jsonl", "prompt": "Q: {{ question }}\nA:"}


def write_task(folder: Path, rows=ROWS, raw_lines: list[str] | None = None, **overrides) -> Path:
    lines = raw_lines if raw_lines is not None else [json.dumps(r) for r in rows]
    (folder / "mini.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import yaml

    path = folder / "mini.yaml"
    path.write_text(yaml.safe_dump({**MC, **overrides}), encoding="utf-8")
    return path


# --- the builtin task ---------------------------------------------------------------------------


def test_builtin_everyday_facts_loads_with_balanced_answers() -> None:
    task = load_task("everyday-facts")
    rows = task.load_rows()
    assert task.type == "multiple_choice" and "CC0" in task.license
    assert len(rows) >= 40
    assert all(len(row.choices) == 4 and len(set(row.choices)) == 4 for row in rows)
    positions = Counter(row.answer for row in rows)
    assert set(positions) == {0, 1, 2, 3} and len(set(positions.values())) == 1  # each position equally often
    assert len({row.id for row in rows}) == len(rows) and len({row.question for row in rows}) == len(rows)
    assert load_task("builtin:everyday-facts") == task


@pytest.mark.parametrize("name", builtin_task_names())
def test_every_shipped_task_validates_and_reads(name: str) -> None:
    # As litgpt walks its shipped configs: a builtin YAML or data file cannot rot unnoticed.
    task = load_task(name)
    assert task.name == name
    rows = task.load_rows()
    assert rows and all(task.render(row).strip() for row in rows)


def test_builtin_names_are_the_yaml_files() -> None:
    assert "everyday-facts" in builtin_task_names()
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")) == builtin_task_names()


def test_unknown_task_lists_the_builtin_names() -> None:
    with pytest.raises(TaskError, match="unknown task 'trivia'.*everyday-facts"):
        load_task("trivia")
    with pytest.raises(TaskError, match="no such task file"):
        load_task("missing/task.yaml")


# --- the spec validates itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "essay"}, "type"),
        ({"num_fewshot": -1}, "num_fewshot"),
        ({"name": "has space"}, "name"),
        ({"prompt": "Q: {{ question }} {{ answer }}"}, "prompt"),
        ({"prompt": "Answer this:"}, "prompt"),
        ({"prompt": "Q: {{ question "}, "prompt"),
        ({"fields": {"answer": " "}}, "fields.answer"),
        ({"fields": {"label": "x"}}, "fields.label"),
        ({"shots": 2}, "shots"),
    ],
)
def test_bad_values_name_their_field(change: dict, field: str) -> None:
    with pytest.raises(InvalidValueError, match=rf"^task: {field}=.* is not allowed"):
        TaskSpec(**{**MC, **change})


def test_generation_needs_a_metric_and_multiple_choice_has_none() -> None:
    with pytest.raises(InvalidValueError, match="generation task: name its metric"):
        TaskSpec(**{**MC, "type": "generation"})
    with pytest.raises(InvalidValueError, match="metric applies to generation tasks only"):
        TaskSpec(**{**MC, "metric": "rouge1"})
    assert TaskSpec(**{**MC, "type": "generation", "metric": "exact_match"}).generation_stop == ("\n\n",)


def test_a_bad_yaml_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = write_task(tmp_path, num_fewshot="three")
    with pytest.raises(InvalidValueError, match=rf"task file {path}: num_fewshot='three' is not allowed"):
        load_task(str(path))
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(TaskError, match="must hold a mapping"):
        load_task(str(path))


# --- data rows ----------------------------------------------------------------------------------


def test_data_path_is_relative_to_the_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_task(tmp_path)
    monkeypatch.chdir(Path("/"))
    rows = load_task(str(path)).load_rows()
    assert [r.id for r in rows] == ["q1", "q2", "q3"]
    assert [r.answer for r in rows] == [0, 1, 2]  # "B" is index 1
    assert rows[0].choices == ("ice", "steam", "smoke") and rows[0].target == "ice"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"question": "Q?", "choices": ["a", "b"], "answer": 2}, "line 3: 'answer' is 2, out of range for 2 choices"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": "C"}, "line 3: 'answer' is 'C', out of range"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": -1}, "line 3: 'answer' is -1, out of range"),
        ({"question": "Q?", "choices": ["only"], "answer": 0}, "line 3: 'choices' has 1 choice.*at least 2"),
        ({"question": "Q?", "choices": ["a", ""], "answer": 0}, "line 3: 'choices' must be a list of non-empty"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": True}, "line 3: 'answer' is True"),
        ({"question": "Q?", "choices": ["a", "b"]}, "line 3 has no field 'answer'"),
    ],
)
def test_a_bad_row_gives_its_line_number(tmp_path: Path, bad_row: dict, message: str) -> None:
    # Line 1 is a good row, line 2 is blank (still counted: the file's own line numbers), line 3 is bad.
    path = write_task(tmp_path, raw_lines=[json.dumps(ROWS[0]), "", json.dumps(bad_row)])
    with pytest.raises(TaskError, match=rf"mini.jsonl {message}"):
        load_task(str(path)).load_rows()


def test_invalid_json_gives_its_line_number(tmp_path: Path) -> None:
    path = write_task(tmp_path, raw_lines=[json.dumps(ROWS[0]), '{"question": "cut off'])
    with pytest.raises(TaskError, match="mini.jsonl line 2 is not valid JSON"):
        load_task(str(path)).load_rows()


def test_missing_data_file(tmp_path: Path) -> None:
    path = write_task(tmp_path)
    (tmp_path / "mini.jsonl").unlink()
    with pytest.raises(GenlabError, match="data file .*mini.jsonl does not exist"):
        load_task(str(path)).load_rows()


def test_rows_without_id_are_named_by_task_and_line(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    assert [r.id for r in load_task(str(write_task(tmp_path, rows))).load_rows()] == ["mini:1", "mini:2", "mini:3"]


def test_generation_rows_keep_their_references(tmp_path: Path) -> None:
    rows = [{"question": "Capital of France?", "answer": "Paris"}, {"question": "2+2?", "answer": ["4", "four"]}]
    task = load_task(str(write_task(tmp_path, rows, type="generation", metric="exact_match")))
    loaded = task.load_rows()
    assert [r.reference for r in loaded] == ["Paris", ("4", "four")]
    assert [r.target for r in loaded] == ["Paris", "4"]


# --- prompts ------------------------------------------------------------------------------------


def test_prompt_renders_choices_and_fewshot_context(tmp_path: Path) -> None:
    prompt = "{{ question }}\n{% for c in choices %}- {{ c }}\n{% endfor %}Answer:"
    task = load_task(str(write_task(tmp_path, prompt=prompt)))
    rows = task.load_rows()
    assert task.render(rows[1]) == "How many legs does a cat have?\n- two\n- four\nAnswer:"
    shots, scored = TaskSpec(**{**MC, "num_fewshot": 2}).split_rows(rows)
    assert [r.id for r in shots] == ["q1", "q2"] and [r.id for r in scored] == ["q3"]
    plain = TaskSpec(**MC)
    # Harness format: prompt + target_delimiter + answer, shots joined by "\n\n", the question last.
    assert plain.context(rows[2], shots) == (
        "Q: What is frozen water called?\nA: ice\n\nQ: How many legs does a cat have?\nA: four\n\n"
        "Q: Which colour is grass?\nA:"
    )


def test_fewshot_must_leave_rows_to_score(tmp_path: Path) -> None:
    task = load_task(str(write_task(tmp_path, num_fewshot=3)))
    with pytest.raises(TaskError, match="3 rows and num_fewshot=3: no row is left"):
        task.split_rows(task.load_rows())
