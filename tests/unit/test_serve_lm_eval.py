"""lm-evaluation-harness against `genlab serve` on the tiny random model saved to a folder.

The multiple-choice task of ``tests/integration/test_lm_eval_server.py`` (ten questions, a task YAML
with ``dataset_path: json`` over a local JSONL) through ``local-completions`` -- token-id requests
(lm-eval's default) and ``tokenized_requests=False``, and with lm-eval's ``tokenizer_backend=auto``
finding the server's ``/tokenize`` -- gives the accuracy and each choice's
log-likelihood (within 1e-3) of lm-eval's own ``hf`` model on the same folder. The tiny model answers
near chance; what matters is that the numbers agree.
"""

from __future__ import annotations

import pytest
from test_serve_support import make_tiny_assets, running_server

from genlab.serving.app import create_app
from genlab.serving.config import ServeConfig
from genlab.serving.genlab_backend import GenlabBackend
from tests.lm_eval_support import QUESTIONS, compare_with_hf, write_task



@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory):
    assets = make_tiny_assets(tmp_path_factory.getbasetemp() / "serve-assets")
    config = ServeConfig(model="tiny", embedder="hashing-32", jobs_db=tmp_path_factory.mktemp("jobs") / "jobs.sqlite",
                         job_workers=0, record_lineage=False)  # fmt: skip
    backend = GenlabBackend(str(assets.base), max_batch=4, model_id="tiny")
    with running_server(create_app(config, backend=backend)) as url:
        yield assets.base, url


def test_lm_eval_local_completions_matches_its_hf_model_on_a_tiny_model(tiny_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder, url = tiny_server
    figures = compare_with_hf(folder, "tiny", url, write_task(tmp_path / "task"), remote_tokenizer=True)
    print(figures)
    # compare_with_hf asserted the agreement of each way; all three ways ran, on every question
    assert set(figures) == {"hf", "token ids", "text", "token ids, server's tokenizer"}
    assert all(accuracy == figures["hf"] for accuracy, _ in (figures[way] for way in figures if way != "hf"))
    assert 0 <= figures["hf"] <= 1 and len(QUESTIONS) == 10
