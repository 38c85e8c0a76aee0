"""The deploy step with ``start: true``: `genlab serve` for the chosen candidate comes up, and is reused while it answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from genlab.pipeline import run_lifecycle
from genlab.pipeline.recipe import validate_lifecycle_recipe


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_deploy_starts_the_server_with_the_candidates_adapter(tmp_path: Path) -> None:
    from genlab.models.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    port = free_port()
    recipe = validate_lifecycle_recipe({
        "name": "served",
        "scope": {"metric": "rouge1"},
        "data": {"path": "builtin", "held_out": 4, "limit": 16},
        "select": {"model": str(model)},
        "adapt": {"summary": {"method": "lora", "lora": {"r": 2, "alpha": 4}, "data": {"validation_size": 2},
                              "training": {"max_steps": 1, "batch_size": 2}}},
        "deploy": {"candidate": "summary", "port": port, "start": True, "start_timeout": 180},
    }, None)  # fmt: skip
    first = run_lifecycle(recipe, write_html=False)
    serve = first.step("deploy").state["summary"]
    try:
        assert serve["started"] is True and serve["url"] == f"http://127.0.0.1:{port}"
        assert serve["adapters"] == {"summary": first.step("adapt.summary").state["summary"]["output"]}
        health = requests.get(f"{serve['url']}/health", timeout=10).json()
        assert health["status"] == "ok" and "summary" in json.dumps(health["models"])
        second = run_lifecycle(recipe, write_html=False)  # the server still answers: nothing to start
        assert second.step("deploy").status == "reused"
    finally:
        os.kill(serve["pid"], signal.SIGTERM)  # the server this test's lifecycle started
    with pytest.raises(requests.RequestException):
        for _ in range(100):  # until it has shut down
            requests.get(f"{serve['url']}/health", timeout=1)
            time.sleep(0.2)
