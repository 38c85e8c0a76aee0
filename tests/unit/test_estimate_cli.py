"""`genlab estimate` on the command line: the rule it used, and --measure's bad input."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_estimate_names_its_rule_and_measure_needs_a_model() -> None:
    figures = json.loads(run_cli("estimate", "--params", "1e9", "--mode", "train", "--json").stdout)
    assert figures["activation_rule"] == "8 bytes per parameter" and figures["train_total_gb"] == 24
    result = run_cli("estimate", "--params", "1e9", "--mode", "train", "--measure")
    assert result.returncode == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "--measure needs --model" in message and "Traceback" not in message
