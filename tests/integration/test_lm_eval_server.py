"""lm-evaluation-harness against `genlab serve` on the real default model (SmolLM2-135M-Instruct).

The multiple-choice task of :mod:`tests.lm_eval_support` run through ``local-completions`` against a
real server on loopback -- with token-id requests (lm-eval's default) and with
``tokenized_requests=False`` (text prompts, the server tokenises) -- gives the accuracy of lm-eval's
own ``hf`` model on the model folder in genlab's store, and each choice's log-likelihood within 1e-3
of it, on the base and on a LoRA adapter (lm-eval's ``peft=`` beside the server's adapter id).
"""

from __future__ import annotations

import pytest

from genlab.models.load import load_model
from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from tests.integration.adapter_support import small_lora
from tests.lm_eval_support import compare_with_hf, write_task
from tests.unit.test_serve_support import running_server

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"


@pytest.mark.parametrize("with_adapter", [False, True], ids=["base", "lora"])
def test_lm_eval_local_completions_matches_its_hf_model_on_the_default_model(
    with_adapter: bool, tmp_path, tmp_path_factory, monkeypatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder = load_model(MODEL).path  # converted once into genlab's store: an HF folder lm-eval's hf model opens
    adapter = small_lora(MODEL, tmp_path / "small-lora") if with_adapter else None
    config = ServeConfig(model=MODEL, adapters={"small-lora": str(adapter)} if adapter else {},
                         jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite", job_workers=0, record_lineage=False)  # fmt: skip
    with running_server(create_app(config)) as url:
        served_id = "small-lora" if adapter else MODEL
        figures = compare_with_hf(folder, served_id, url, write_task(tmp_path / "task"), adapter=adapter)
    print(figures)
    assert figures["hf"] >= 0.5  # the instruct model knows most of these; chance is 0.25
