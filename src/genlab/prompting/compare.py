"""The course's first lab as one call: zero-, one- and few-shot prompts side by side, scored by ROUGE.

For each shot count the same held-out examples are prompted through the same template and engine
(greedy by default, so the table is reproducible); only the number of solved examples in front of
each query changes. Examples are taken from the rows after the held-out ones (or, for a dataset
with no more rows, from the other held-out rows: a query never sees itself). The run is recorded
in lineage with its predictions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from genlab.atomic import atomic_write_json, atomic_write_text
from genlab.data.builtin import source_file
from genlab.data.example import Example
from genlab.data.loaders import load_examples
from genlab.errors import InvalidValueError
from genlab.evaluation.metrics import rouge, rouge_per_example
from genlab.generation import GenerationEngine, GenerationSettings
from genlab.lineage import record_run
from genlab.models.load import LoadedModel, load_model
from genlab.prompting.chat import has_chat_template
from genlab.prompting.icl import ExampleSelector, Selection, build_prompt
from genlab.prompting.templates import get_template


@dataclass
class ShotResult:
    shots: int
    rouge1: float
    rouge2: float
    rougeL: float  # noqa: N815 - the metric's own name
    rougeLsum: float  # noqa: N815
    mean_prompt_tokens: float
    dropped_examples: int  # examples left out (over all queries) to fit the context window
    new_tokens: int
    seconds: float
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ShotComparison:
    model: str
    data: str
    template: str
    selection: str
    limit: int
    settings: dict[str, Any]
    results: list[ShotResult]
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_shots(text: str) -> list[int]:
    try:
        shots = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidValueError(f"shots={text!r} is not allowed: give shot counts like 0,1,5.") from None
    if not shots or any(s < 0 for s in shots):
        raise InvalidValueError(f"shots={text!r} is not allowed: give one or more counts >= 0, like 0,1,5.")
    return shots


def compare_shots(
    model: str | LoadedModel,
    data: str,
    shots: Sequence[int],
    *,
    limit: int = 20,
    template: str = "summarize",
    selection: Selection = "first",
    seed: int = 0,
    input_field: str = "dialogue",
    target_field: str = "summary",
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    chat: bool = True,
    samples: int = 3,
    on_progress: Callable[[str], None] | None = None,
) -> ShotComparison:
    if limit < 1:
        raise InvalidValueError(f"limit={limit!r} is not allowed: evaluate at least 1 example.")
    progress = on_progress or (lambda message: None)
    settings = settings or GenerationSettings(max_new_tokens=64)
    rows = load_examples(data, input_field=input_field, target_field=target_field)
    held_out = rows[:limit]
    pool = rows[limit:] or held_out
    prompt_template = get_template(template)
    model_name = model if isinstance(model, str) else model.name
    config = {
        "model": model_name, "data": data, "shots": list(shots), "limit": limit, "template": template,
        "selection": selection, "seed": seed, "settings": settings.model_dump(), "chat": chat,
    }  # fmt: skip
    with record_run("prompt-compare", config) as run:
        data_path = source_file(data)
        if data_path is not None:
            run.use(data_path, "dataset", {"input_field": input_field, "target_field": target_field})
        progress(f"loading {model_name}")
        loaded = load_model(model) if isinstance(model, str) else model
        if loaded.path is not None:
            run.use(loaded.path, "model", {"model": model_name})
        engine = GenerationEngine(loaded, batch_size=batch_size)
        chat = chat and has_chat_template(loaded.tokenizer)
        if not chat and not settings.stop and prompt_template.stop:
            # A plain completion goes on imitating the pattern: end it where the next shot would start.
            settings = settings.with_overrides(stop=prompt_template.stop)
        selector = ExampleSelector(pool, selection, seed) if max(shots) > 0 else None
        results, predictions = [], []
        with engine.hold_packed_weights():  # reordered once for every shot count
            for k in shots:
                progress(f"{k}-shot: prompting {len(held_out)} examples")
                result, rows_out = _run_shot(engine, prompt_template, held_out, selector, k, settings, chat, samples)
                results.append(result)
                predictions.extend(rows_out)
                run.log_metrics({f"{name}@{k}shot": getattr(result, name) for name in ("rouge1", "rouge2", "rougeL")})
        comparison = ShotComparison(
            model_name, data, template, selection, len(held_out), settings.model_dump(), results, run.id
        )
        predictions_file = atomic_write_text(
            run.dir / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions)
        )
        run.log_artifact(predictions_file, "predictions")
        run.log_artifact(atomic_write_json(run.dir / "comparison.json", comparison.to_dict()), "comparison")
    return comparison


def _run_shot(
    engine: GenerationEngine,
    template: Any,
    held_out: list[Example],
    selector: ExampleSelector | None,
    shots: int,
    settings: GenerationSettings,
    chat: bool,
    samples: int,
) -> tuple[ShotResult, list[dict[str, Any]]]:
    loaded = engine.loaded
    built = [
        build_prompt(
            template, query, selector, shots,
            tokenizer=loaded.tokenizer, context_window=loaded.context_window,
            max_new_tokens=settings.max_new_tokens, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
        )  # fmt: skip
        for query in held_out
    ]
    start = time.perf_counter()
    completions = engine.generate([b.text for b in built], settings, preformatted=chat)
    seconds = time.perf_counter() - start
    texts = [c.text for c in completions]
    references = [q.target or "" for q in held_out]
    scores = rouge(texts, references)
    rows = [
        {
            "id": q.id, "shots": shots, "examples": [e.id for e in b.examples], "prompt_tokens": b.prompt_tokens,
            "prediction": text, "reference": ref, "rouge1": rouge_per_example(text, ref)["rouge1"],
        }  # fmt: skip
        for q, b, text, ref in zip(held_out, built, texts, references, strict=True)
    ]
    result = ShotResult(
        shots=shots,
        **scores,
        mean_prompt_tokens=sum(b.prompt_tokens for b in built) / len(built),
        dropped_examples=sum(b.dropped_examples for b in built),
        new_tokens=sum(c.new_tokens for c in completions),
        seconds=seconds,
        samples=[{"id": r["id"], "prediction": r["prediction"], "reference": r["reference"]} for r in rows[:samples]],
    )
    return result, rows
