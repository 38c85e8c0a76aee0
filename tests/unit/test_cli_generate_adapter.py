"""`genlab generate --adapter NAME|FOLDER`, run as a user runs it (a subprocess), on a tiny base and a LoRA adapter.

The reference is genlab's engine on the base with the adapter merged (what `genlab eval --adapter`
scores); the adapter changes the greedy answer, so agreeing means the adapter was applied.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.lineage import LineageStore
from genlab.models.adapters import base_fingerprint, merge_adapter, save_adapter
from genlab.models.load import load_model
from genlab.models.tiny import tiny_model
from tests.conftest import run_cli

PROMPT = "#Person1#: My parcel arrived damaged."
TOKENS = 10


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generate-adapter")
    loaded = tiny_model("causal", seed=7)
    with torch.no_grad():  # sharpened attention: the greedy answer depends on the weights, adapter included
        for name, weight in loaded.model.named_parameters():
            if name.endswith(("q_proj.weight", "v_proj.weight")):
                weight.mul_(30)
    loaded.model.save_pretrained(root / "base")
    loaded.tokenizer.save_pretrained(root / "base")
    base = load_model(str(root / "base"))
    fingerprint = base_fingerprint(base)
    torch.manual_seed(4)
    peft_model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(4)
    adapter = save_adapter(peft_model, root / "support", base=base, method="lora", run_id=None, fingerprint=fingerprint)
    return {"base": root / "base", "adapter": adapter}


def engine_answer(base: Path, adapter: Path | None) -> str:
    loaded = load_model(str(base))
    if adapter is not None:
        loaded = merge_adapter(loaded, adapter)
    settings = GenerationSettings(max_new_tokens=TOKENS, temperature=0)
    return GenerationEngine(loaded, batch_size=1).generate([PROMPT], settings, chat=True)[0].text


def generate(*args: str) -> dict:
    result = run_cli("generate", "--prompt", PROMPT, "--max-new-tokens", str(TOKENS), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_generate_with_an_adapter_by_name_or_folder_answers_as_the_merged_model(made, genlab_home) -> None:
    expected = engine_answer(made["base"], made["adapter"])
    assert expected != engine_answer(made["base"], None)
    shutil.copytree(made["adapter"], genlab_home / "adapters" / "support")  # a name under $GENLAB_HOME/adapters

    by_name = generate("--model", str(made["base"]), "--adapter", "support")
    assert by_name["text"] == expected
    assert generate("--model", str(made["base"]), "--adapter", str(made["adapter"]))["text"] == expected

    streamed = run_cli("generate", "--model", str(made["base"]), "--adapter", "support", "--prompt", PROMPT,
                       "--max-new-tokens", str(TOKENS), "--stream")  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == expected + "\n"

    with LineageStore() as store:
        runs = [run for run in store.list_runs(kind="generate") if run.config.get("adapter")]
        assert len(runs) == 3 and all(run.status == "completed" for run in runs)
        inputs = {a.kind: a for a in store.artifacts_of(runs[0].id, "input")}
    assert Path(runs[0].config["adapter"]).name == "support" and set(inputs) == {"model", "adapter"}


def test_unknown_adapter_is_one_sentence_before_loading(made) -> None:
    result = run_cli("generate", "--model", str(made["base"]), "--adapter", "nope", "--prompt", PROMPT)
    assert result.returncode != 0
    assert "no adapter 'nope'" in result.stderr and "Traceback" not in result.stderr
    with LineageStore() as store:
        assert store.list_runs(kind="generate") == []  # refused before a run was recorded
