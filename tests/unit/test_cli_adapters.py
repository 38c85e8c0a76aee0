"""`genlab adapters list|show|merge` and `genlab eval --adapter NAME` as a user runs them, with lineage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from genlab.lineage import LineageStore
from genlab.models.adapters import base_fingerprint, merge_adapter, save_adapter
from genlab.models.load import load_model
from genlab.models.tiny import save_tiny_model
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base folder with a LoRA adapter and a prompt-tuning adapter trained on it (built with peft)."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    root = tmp_path_factory.mktemp("cli-adapters")
    base = save_tiny_model(root / "base", seed=2)
    configs = {
        "summarizer": ("lora", LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)),
        "persona": ("prompt_tuning", PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)),
    }
    built = {"base": base}
    for name, (method, config) in configs.items():
        loaded = load_model(str(base))
        fingerprint = base_fingerprint(loaded)
        torch.manual_seed(1)
        peft_model = get_peft_model(loaded.model, config)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in peft_model.parameters())
        built[name] = save_adapter(
            peft_model, root / name, base=loaded, method=method, run_id=f"finetune-{name}",
            extra={"trainable_percent": 100 * trainable / total}, fingerprint=fingerprint,
        )  # fmt: skip
    return built


@pytest.fixture
def installed(built: dict[str, Path], genlab_home: Path) -> dict[str, Path]:
    """The adapters copied under this test's $GENLAB_HOME/adapters, where `genlab finetune` puts them."""
    paths = {"base": built["base"]}
    for name in ("summarizer", "persona"):
        paths[name] = Path(shutil.copytree(built[name], genlab_home / "adapters" / name)).resolve()
    return paths


def cli_json(*args: str) -> dict | list:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result, *words: str) -> None:
    assert result.returncode == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    for word in words:
        assert word in message


def test_list_and_show_describe_the_adapters(installed: dict[str, Path]) -> None:
    listed = {a["name"]: a for a in cli_json("adapters", "list")}
    assert sorted(listed) == ["persona", "summarizer"]
    summarizer = listed["summarizer"]
    assert (summarizer["peft_type"], summarizer["method"], summarizer["run_id"]) == ("LORA", "lora", "finetune-summarizer")
    assert summarizer["base_model"] == str(installed["base"].resolve())
    assert summarizer["path"] == str(installed["summarizer"])
    assert 0 < summarizer["trainable_percent"] < 100
    assert listed["persona"]["peft_type"] == "PROMPT_TUNING"

    shown = cli_json("adapters", "show", "summarizer")
    assert shown == summarizer
    assert shown["base_fingerprint"] == base_fingerprint(load_model(str(installed["base"])))

    table = run_cli("adapters", "list", env={"COLUMNS": "250"})  # wide enough that no cell is folded
    assert table.returncode == 0, table.stderr
    assert all(word in table.stdout for word in ("summarizer", "persona", "LORA", "PROMPT_TUNING", "finetune-"))


def test_merge_saves_a_model_and_records_a_merge_run(installed: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "merged"
    result = cli_json("adapters", "merge", "summarizer", "--output", str(output))  # base: the recorded one

    assert result["output"] == str(output) and result["adapter"] == str(installed["summarizer"])
    merged = load_model(str(output))
    expected = merge_adapter(load_model(str(installed["base"])), installed["summarizer"])
    ids = merged.tokenizer("#Person1#: Hello there.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged.model(input_ids=ids).logits, expected.model(input_ids=ids).logits)

    run = cli_json("runs", "show", result["run_id"])
    assert (run["kind"], run["status"]) == ("merge", "completed")
    inputs = {a["kind"]: a["path"] for a in run["inputs"]}
    assert inputs == {"adapter": str(installed["summarizer"]), "model": str(installed["base"].resolve())}
    assert [(a["kind"], a["path"]) for a in run["outputs"]] == [("model", str(output))]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["adapters", "show", "summariser"], ["summariser", "persona, summarizer"]),
        (["adapters", "merge", "summariser", "--output", "{tmp}/out"], ["summariser", "persona, summarizer"]),
        (["adapters", "merge", "persona", "--output", "{tmp}/out"], ["persona", "soft prompt"]),
        (["eval", "--adapter", "summariser", "--model", "{base}"], ["summariser", "summarizer"]),
    ],
)
def test_user_errors_are_one_line_and_record_no_run(installed: dict[str, Path], tmp_path: Path, args, words) -> None:
    filled = [a.format(tmp=tmp_path, base=installed["base"]) for a in args]
    assert_one_line_error(run_cli(*filled), *words)
    assert not (tmp_path / "out").exists()
    with LineageStore() as store:
        assert store.list_runs() == []


def test_merge_refuses_an_existing_output_folder(installed: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = run_cli("adapters", "merge", str(installed["summarizer"]), "--output", str(tmp_path / "taken"))
    assert_one_line_error(result, "exists already")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_eval_accepts_an_adapter_name_and_records_its_folder(installed: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "short.jsonl"
    rows = [{"dialogue": f"#Person1#: Where is parcel {i}? #Person2#: On its way.", "summary": f"Parcel {i} ships."} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    out = cli_json(
        "eval", "--model", str(installed["base"]), "--adapter", "summarizer", "--data", str(data), "--limit", "2",
        "--max-new-tokens", "4",
    )  # fmt: skip
    assert out["n"] == 2
    run = cli_json("runs", "show", out["run_id"])
    assert run["config"]["adapter"] == str(installed["summarizer"])
    adapter_inputs = [a for a in run["inputs"] if a["kind"] == "adapter"]
    assert [a["path"] for a in adapter_inputs] == [str(installed["summarizer"])]
    assert adapter_inputs[0]["metadata"]["base"] == str(installed["base"])
    assert {a["kind"] for a in run["inputs"]} == {"dataset", "model", "adapter"}
