import json
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from genlab.data import DIALOGSUM_HUB_ID, DataError, Example, FieldMapping, load_dialogsum, load_examples
from genlab.errors import HubUnavailableError, InvalidValueError

ROWS = [
    {"fname": "d_1", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "They greet.", "topic": "greeting"},
    {"fname": "d_2", "dialogue": "#Person1#: Bye, then.", "summary": "#Person1# leaves.", "topic": "farewell"},
    {"fname": "d_3", "dialogue": "#Person1#: Tea?\n#Person2#: Yes.", "summary": "They have tea.", "topic": "drinks"},
]
# What ROWS must load to with the default mapping ("fname" is picked up as the id field).
EXPECTED = [
    Example(id=row["fname"], input=row["dialogue"], target=row["summary"], fields={"topic": row["topic"]})
    for row in ROWS
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_table(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSONL, CSV or Parquet, chosen by the path's suffix."""
    if path.suffix == ".jsonl":
        return write_jsonl(path, rows)
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("name", ["data.jsonl", "data.csv", "data.parquet"])
def test_each_format_loads_to_the_same_examples(tmp_path: Path, name: str) -> None:
    assert load_examples(write_table(tmp_path / name, ROWS)) == EXPECTED


def test_json_array_file_loads_like_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    assert load_examples(path) == EXPECTED


def test_other_field_names_map_onto_input_and_target(tmp_path: Path) -> None:
    rows = [
        {"question": "What is 2+2?", "answer": "4", "source": "maths"},
        {"question": "Capital of France?", "answer": "Paris", "source": "geography"},
    ]
    path = write_table(tmp_path / "qa.csv", rows)
    examples = load_examples(path, input_field="question", target_field="answer")
    assert examples == [
        Example(id="qa:1", input="What is 2+2?", target="4", fields={"source": "maths"}),  # no id column: stem:row
        Example(id="qa:2", input="Capital of France?", target="Paris", fields={"source": "geography"}),
    ]


def test_explicit_id_field_and_no_target(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"key": "a", "prompt": "Say hi.", "lang": "en"}])
    examples = load_examples(path, input_field="prompt", target_field=None, id_field="key")
    assert examples == [Example(id="a", input="Say hi.", target=None, fields={"lang": "en"})]


def test_unknown_field_lists_the_fields(tmp_path: Path) -> None:
    path = write_table(tmp_path / "qa.parquet", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as error:
        load_examples(path)  # the default input field is "dialogue"
    assert str(error.value) == f"{path} has no field 'dialogue'; its fields are: question, answer."


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    lines = [json.dumps(ROWS[0]), json.dumps(ROWS[1]), '{"dialogue": "unfinished", ', json.dumps(ROWS[2])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl line 3 is not valid JSON: "):
        load_examples(path)


def test_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 is not a JSON object"):
        load_examples(path)


@pytest.mark.parametrize("empty", ["", "   \n", None], ids=["empty", "whitespace", "null"])
def test_empty_target_names_row_and_field(tmp_path: Path, empty: str | None) -> None:
    rows = [dict(row) for row in ROWS]
    rows[1]["summary"] = empty
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(DataError) as error:
        load_examples(path)
    assert str(error.value) == f"{path} row 2: field 'summary' is empty."


def test_missing_key_in_jsonl_counts_as_empty(tmp_path: Path) -> None:
    rows = [dict(row) for row in ROWS]
    del rows[2]["dialogue"]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(DataError, match=r"row 3: field 'dialogue' is empty"):
        load_examples(path)


def test_empty_csv_cell_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("dialogue,summary\nhello,greeting\nbye,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.csv row 2: field 'summary' is empty"):
        load_examples(path)


def test_optional_target_may_be_empty(tmp_path: Path) -> None:
    rows = [dict(row) for row in ROWS]
    rows[0]["summary"] = ""
    examples = load_examples(write_jsonl(tmp_path / "data.jsonl", rows), require_target=False)
    assert [example.target for example in examples] == [None, ROWS[1]["summary"], ROWS[2]["summary"]]


def test_limit_keeps_first_rows_and_skips_validating_the_rest(tmp_path: Path) -> None:
    rows = [dict(row) for row in ROWS] + [{"fname": "d_4", "dialogue": "x", "summary": "", "topic": "t"}]
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    assert load_examples(path, limit=2) == EXPECTED[:2]
    assert load_examples(path, limit=3) == EXPECTED  # row 4 is beyond the limit, so its empty summary is fine
    with pytest.raises(DataError, match="row 4: field 'summary' is empty"):
        load_examples(path, limit=4)


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_bad_limit_is_refused(tmp_path: Path, limit: object) -> None:
    with pytest.raises(InvalidValueError, match=rf"limit={limit!r} is not allowed"):
        load_examples(write_jsonl(tmp_path / "data.jsonl", ROWS), limit=limit)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    rows = [dict(row) for row in ROWS]
    rows[2]["fname"] = "d_1"
    with pytest.raises(DataError, match=r"rows 1 and 3 share the id 'd_1'"):
        load_examples(write_jsonl(tmp_path / "data.jsonl", rows))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(DataError) as error:
        load_examples(path)
    assert str(error.value) == f"no such data file: {path}"


def test_unsupported_extension_names_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_examples(path)
    assert str(error.value) == f"cannot read {path}: data files must end in .jsonl, .json, .csv or .parquet."


def test_unreadable_parquet_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=rf"cannot read {path}"):
        load_examples(path)


def test_hub_id_offline_fails_fast() -> None:
    # conftest sets HF_HUB_OFFLINE=1 for every test.
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as error:
        load_examples("knkarthick/dialogsum", split="validation")
    assert time.monotonic() - start < 5
    assert "'knkarthick/dialogsum'" in str(error.value) and "HF_HUB_OFFLINE" in str(error.value)
    assert "local .jsonl" in str(error.value)  # a data hint, not the model one


def test_hub_id_with_unreachable_hub_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on once this socket closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="is not reachable"):
        load_examples("someone/some-data")
    assert time.monotonic() - start < 5


def test_name_that_is_neither_file_nor_hub_id() -> None:
    with pytest.raises(DataError, match="no such data file or hub dataset: dialogsum"):
        load_examples("dialogsum")


@pytest.mark.parametrize("source", ["builtin", "builtin:dialogues"])
def test_builtin_dialogues(source: str) -> None:
    examples = load_examples(source)
    assert len(examples) == 64
    assert len({example.id for example in examples}) == 64
    assert examples[0].id == "demo-001"
    assert all(example.input.strip() and example.target.strip() for example in examples)
    assert all(set(example.fields) == {"topic"} for example in examples)


def test_unknown_builtin_name() -> None:
    with pytest.raises(DataError, match="no builtin dataset 'builtin:poems'"):
        load_examples("builtin:poems")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_field": ""}, "input_field"),
        ({"input_field": "text", "target_field": "text"}, "target_field"),
        ({"id_field": "summary"}, "id_field"),
    ],
)
def test_field_mapping_validates_itself(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidValueError, match=rf"^{field}="):
        FieldMapping(**kwargs)



def as_hub_row(row: dict) -> dict:
    """A ROWS row as the hub copy of DialogSum holds it: "id" instead of "fname"."""
    return {"id": row["fname"], **{key: value for key, value in row.items() if key != "fname"}}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scripted hub: the probe passes and `datasets` serves two splits of knkarthick/dialogsum."""
    import datasets

    splits = {"train": [as_hub_row(row) for row in ROWS[:2]], "validation": [as_hub_row(ROWS[2])]}

    def split_names(name: str) -> list[str]:
        if name != DIALOGSUM_HUB_ID:
            raise datasets.exceptions.DatasetNotFoundError(name)
        return list(splits)

    monkeypatch.setattr("genlab.data.loaders.ensure_hub_reachable", lambda name, **kwargs: None)
    monkeypatch.setattr(datasets, "get_dataset_split_names", split_names)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: datasets.Dataset.from_list(splits[split]))


@pytest.mark.usefixtures("fake_hub")
def test_hub_dataset_split_is_loaded() -> None:
    assert load_examples(DIALOGSUM_HUB_ID, split="train") == EXPECTED[:2]  # ids come from the "id" column
    assert load_dialogsum("validation") == EXPECTED[2:]


@pytest.mark.usefixtures("fake_hub")
def test_hub_unknown_split_lists_the_splits() -> None:
    with pytest.raises(DataError) as error:
        load_examples(DIALOGSUM_HUB_ID, split="dev")
    expected = f"the hub dataset {DIALOGSUM_HUB_ID} has no split 'dev'; its splits are: train, validation."
    assert str(error.value) == expected


@pytest.mark.usefixtures("fake_hub")
def test_unknown_hub_dataset() -> None:
    with pytest.raises(DataError, match="there is no dataset 'someone/elsewhere' on the hub"):
        load_examples("someone/elsewhere")
