"""The main job on the embedded default: load the default model, cost it out, summarise a dialogue.

Every step is recorded as one lineage run: the builtin data and the model folder as inputs, the
summary (written atomically) as output, ROUGE against the human summary and speed as metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.atomic import atomic_write_json
from genlab.data.builtin import BUILTIN_DIALOGUES, builtin_dialogues
from genlab.evaluation.metrics import rouge_per_example
from genlab.generation import Completion, GenerationEngine, GenerationSettings
from genlab.lineage import record_run
from genlab.models.card import ModelCard
from genlab.models.catalog import get_card
from genlab.models.estimate import Estimate, EstimateRequest, estimate
from genlab.models.load import load_model
from genlab.models.packs import DEFAULT_GENERATOR

SUMMARY_PROMPT = "Summarize the following conversation in one sentence.\n\n{dialogue}\n\nSummary:"


@dataclass(frozen=True)
class DemoResult:
    run_id: str
    card: ModelCard
    estimates: dict[str, Estimate]
    dialogue: dict[str, str]
    generation: Completion
    seconds: float
    rouge: dict[str, float]


def run_demo(
    model_name: str = DEFAULT_GENERATOR, dialogue_index: int = 0, on_step: Callable[[str, Any], None] | None = None
) -> DemoResult:
    """Run the demo; ``on_step(name, value)`` is called as each step finishes, for live printing."""
    step = on_step or (lambda name, value: None)
    dialogue = builtin_dialogues()[dialogue_index]
    config = {"model": model_name, "dialogue": dialogue["id"], "prompt": SUMMARY_PROMPT, "max_new_tokens": 64}
    with record_run("demo", config) as run:
        card = get_card(model_name)
        step("card", card)
        estimates = {
            mode: estimate(EstimateRequest(params=card.params, dtype="fp32", mode=mode, shape=card.shape, seq_len=2048))
            for mode in ("infer", "train", "lora")
        }
        step("estimates", estimates)
        run.use(BUILTIN_DIALOGUES, "dataset", {"name": "genlab-builtin-dialogues"})
        loaded = load_model(model_name)
        run.use(loaded.path, "model", {"model": model_name, "params": loaded.num_parameters})
        step("loaded", loaded)
        start = time.perf_counter()
        (generation,) = GenerationEngine(loaded).generate(
            [SUMMARY_PROMPT.format(dialogue=dialogue["dialogue"])], GenerationSettings(max_new_tokens=64), chat=True
        )
        seconds = time.perf_counter() - start
        rouge = rouge_per_example(generation.text, dialogue["summary"])
        output = atomic_write_json(
            run.dir / "summary.json",
            {
                "dialogue_id": dialogue["id"],
                "dialogue": dialogue["dialogue"],
                "reference": dialogue["summary"],
                "summary": generation.text,
                "finish_reason": generation.choices[0].finish_reason,
                "rouge": rouge,
            },
        )
        run.log_artifact(output, "summary")
        run.log_metrics(
            {
                **rouge,
                "params": loaded.num_parameters,
                "new_tokens": generation.new_tokens,
                "tokens_per_second": generation.new_tokens / seconds,
                "estimated_infer_gb": estimates["infer"].weights_gb,
            }
        )
    return DemoResult(run.id, card, estimates, dialogue, generation, seconds, rouge)
