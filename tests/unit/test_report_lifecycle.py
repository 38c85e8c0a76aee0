"""The lifecycle report: built from lineage, self-contained, and rendered by a real browser (headless Chromium).

One tiny lifecycle runs for the module -- adapt (LoRA), align (PPO on top of the LoRA candidate),
evaluate, optimise, deploy -- so the report has every section: curves, the comparison, the graph.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from genlab.errors import GenlabError
from genlab.lineage import LineageStore
from genlab.pipeline import run_lifecycle, write_report
from genlab.pipeline.recipe import validate_lifecycle_recipe
from genlab.pipeline.report import build_view
from tests.browser import open_page
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, model_store: Path) -> dict[str, Any]:
    """Run the tiny lifecycle once in its own GENLAB_HOME; tests point GENLAB_HOME there to read it."""
    from genlab.models.tiny import save_tiny_model

    home = tmp_path_factory.mktemp("report-home")
    model = save_tiny_model(tmp_path_factory.mktemp("tiny-report"))
    raw = {
        "name": "report-life",
        "scope": {"use_case": "report test", "metric": "rouge1", "target": 0.9},
        "data": {"path": "builtin", "held_out": 4, "limit": 24},
        "select": {"model": str(model)},
        "prompt": {"shots": [0, 1], "max_new_tokens": 4},
        "adapt": {"lora": {"method": "lora", "lora": {"r": 4, "alpha": 8}, "data": {"validation_size": 4},
                           "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-2, "eval_every": 2,
                                        "save_every": 2, "log_every": 1}}},
        "align": {"polite": {"method": "ppo", "start_from": "lora", "data": {"validation_size": 2},
                             "lora": {"r": 2, "alpha": 4}, "evaluation": {"max_new_tokens": 4},
                             "ppo": {"steps": 2, "batch_size": 2, "mini_batch_size": 2, "max_new_tokens": 4}}},
        "evaluate": {"metrics": ["rouge"], "max_new_tokens": 4, "samples": 2},
        "optimise": {"candidate": "lora", "measure": False},
        "deploy": {"artifact": "candidate", "candidate": "lora"},
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLAB_HOME", str(home))
        result = run_lifecycle(validate_lifecycle_recipe(raw, None))
    return {"home": home, "result": result}


@pytest.fixture
def home(lifecycle: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENLAB_HOME", str(lifecycle["home"]))
    return lifecycle["home"]


def test_the_view_is_built_from_lineage(lifecycle: dict[str, Any], home: Path) -> None:
    result = lifecycle["result"]
    with LineageStore() as store:
        view = build_view(store, result.run_id)
        evaluate = json.loads(Path(result.step("evaluate").state["outputs"]["comparison"]["path"]).read_text())
    assert [s["step"] for s in view.steps] == ["scope", "select", "prompt", "adapt.lora", "align.polite", "evaluate",
                                               "optimise", "deploy"]  # fmt: skip
    # the graph holds the chain data -> model -> adapter -> evaluations -> optimised model -> deployment
    for label in ("data builtin", "train split (20 rows)", "adapter lora (lora)", "adapter polite (ppo)",
                  "evaluation: base", "evaluation: polite", "optimised model (int8-dynamic)", "serve configuration"):  # fmt: skip
        assert f">{label.split(' (')[0]}" in view.graph_svg or label in view.graph_svg, label
    assert view.graph_svg.startswith("<svg") and "<text" in view.graph_svg  # labels stay text
    (adapt,) = view.adapt
    assert adapt["chart"] and adapt["summary"]["metrics"]["steps"] == 4
    (align,) = view.align
    assert align["chart"] and align["summary"]["start_from"] == "lora"
    comparison = view.comparison
    assert comparison is not None and comparison["names"] == ["base", "lora", "polite"]
    rouge1 = next(row for row in comparison["rows"] if row["metric"] == "rouge1")
    values = evaluate["values"]["rouge1"]
    assert rouge1["values"] == values and rouge1["of_record"]
    assert rouge1["changes"] == pytest.approx([0.0, *((v - values[0]) * 100 for v in values[1:])])
    assert [row["what"] for row in view.memory] == ["training lora (lora)", "serving the chosen candidate (fp32)"]
    assert view.memory[0]["measured_gb"] > 0 and view.memory[1]["measured_gb"] is None  # optimise.measure is off


def test_the_report_is_self_contained_and_renders_in_chromium(lifecycle: dict[str, Any], home: Path, tmp_path: Path) -> None:
    report = Path(lifecycle["result"].report)
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](https?:|//)""", html)  # nothing fetched from anywhere
    assert html.count("data:image/png;base64,") == 3  # the loss curves, the reward/KL curves, the scores chart
    with open_page(report.as_uri(), width=1280) as session:
        page = session.page
        screenshot = session.screenshot(tmp_path / "report.png")
        assert session.errors == []
        assert page.locator("h1").inner_text() == "Lifecycle: report-life"
        assert page.locator("table").count() >= 8
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        assert len(sizes) == 3 and all(done and width > 100 for done, width in sizes)  # every chart decoded
        graph = page.locator(".graph svg")
        assert graph.bounding_box()["width"] > 600 and "adapter lora" in (graph.text_content() or "")
        comparison = page.locator("table.comparison")
        assert comparison.locator("th").all_inner_texts()[:4] == ["metric", "base", "lora", "polite"]
        assert "genlab serve --model" in page.locator("#deploy ~ p code").first.inner_text()
    assert screenshot.stat().st_size > 50_000


def test_genlab_report_redraws_the_page_from_the_store(lifecycle: dict[str, Any], home: Path, tmp_path: Path) -> None:
    result = lifecycle["result"]
    target = tmp_path / "again.html"
    done = run_cli("report", result.run_id[-6:], "--output", str(target))  # a unique part of the id is enough
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout
    again, first = target.read_text(encoding="utf-8"), Path(result.report).read_text(encoding="utf-8")
    strip = re.compile(r"<svg.*?</svg>|base64,[A-Za-z0-9+/=]+", re.S)  # drawn again: same page, fresh pixels and ids
    assert strip.sub("", again) == strip.sub("", first)


def test_report_refuses_a_run_that_is_not_a_lifecycle(lifecycle: dict[str, Any], home: Path) -> None:
    finetune_run = lifecycle["result"].step("adapt.lora").state["sub_runs"]["finetune"]
    with pytest.raises(GenlabError, match="is a finetune run; genlab report takes a lifecycle run"):
        write_report(finetune_run)
