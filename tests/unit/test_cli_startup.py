"""The CLI starts without the training libraries: ``genlab --help`` and every command import the registry,
which imports every method folder, so a method folder importing trl or transformers at its top makes
every command about 10 s slower. Each check runs in a fresh interpreter (this process has them loaded).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "mlflow", "accelerate", "sentence_transformers")


def modules_loaded_by(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    ["import genlab.cli", "import genlab.registry", "from genlab.cli import app"],
)
def test_cli_and_registry_import_no_training_library(statement: str) -> None:
    loaded = modules_loaded_by(statement)
    assert "genlab.registry" in loaded  # the check means something: every method folder was imported
    heavy = sorted(name for name in HEAVY if name in loaded)
    assert heavy == [], f"{statement!r} imports {heavy}; import them inside the function that needs them (genlab.methods)"


def test_a_method_still_imports_its_training_code_when_it_runs() -> None:
    # The lazy import is real code, not a missing one: the module train() imports loads and names the function.
    loaded = modules_loaded_by("from genlab.alignment.grpo.train import train_grpo")
    assert {"trl", "transformers"} <= loaded
