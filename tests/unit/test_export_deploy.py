"""The lifecycle's ``deploy: {artifact: gguf, quant: ...}``: the recipe field and the export it runs."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from genlab.errors import GenlabError
from genlab.export.deploy import deploy_as_gguf
from genlab.lineage import LineageStore
from genlab.pipeline.recipe import DeployConfig
from tests.ollama_template_support import parse_modelfile
from tests.unit.export_support import shared_base_and_lora


def test_the_recipe_takes_gguf_and_a_known_quant() -> None:
    assert DeployConfig(artifact="gguf", quant="Q8_0").quant == "q8_0"
    with pytest.raises(ValidationError, match="choose one of f32, f16, q8_0"):
        DeployConfig(artifact="gguf", quant="q3")


def test_a_candidate_with_its_adapter_is_deployed_as_one_merged_gguf(tmp_path: Path) -> None:
    built = shared_base_and_lora()
    step = tmp_path / "deploy"
    (step / "gguf").mkdir(parents=True)
    (step / "gguf" / "stale.gguf").write_text("left by a killed attempt")
    config = deploy_as_gguf(str(built["base"]), {"lora": str(built["adapter"])}, step, quant="q8_0", host="127.0.0.1", port=8123)
    assert sorted(p.name for p in (step / "gguf").iterdir()) == ["Modelfile", "tiny-lora-q8_0.gguf"]
    assert shlex.split(config["command"]) == ["genlab", "serve", "--model", config["gguf"], "--backend", "llama.cpp",
                                              "--host", "127.0.0.1", "--port", "8123"]  # fmt: skip
    assert dict(parse_modelfile(Path(config["modelfile"]).read_text()))["FROM"] == "./tiny-lora-q8_0.gguf"
    with LineageStore() as store:
        run = store.get_run(config["export_run"])
        assert run.kind == "export" and {a.kind for a in store.artifacts_of(run.id, "input")} == {"model", "adapter"}
    with pytest.raises(GenlabError, match="one merged model"):
        deploy_as_gguf(str(built["base"]), {"a": "x", "b": "y"}, step, quant="f16", host="127.0.0.1", port=8123)
