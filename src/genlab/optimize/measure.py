"""Measure a model the way every optimisation is judged: size, parameters, peak memory, speed, quality.

Each model is measured in a fresh Python process (``python -m genlab.optimize.measure``), so its
peak resident memory (``VmHWM``) is its own -- loading plus generating -- and not the high-water
mark of whatever the caller held before; the original and the optimised model pay the same
interpreter and library overhead, so their difference is the model's. The child loads the model
through :func:`genlab.models.load.load_model`, which also proves the artifact loads through the
model layer and generates through the engine.

- size on disk: the weight files (:func:`genlab.optimize.artifact.weights_size`);
- parameters: the loaded model's parameters (packed quantised weights count as the weights they hold);
- peak memory of an fp32 model includes the engine's reordered copy of its Linear weights
  (:mod:`genlab.generation.packed_linear`): the memory it pays for its decoding speed;
- tokens/s: greedy decoding at batch 1 through the generation engine, ``speed_prompts`` eval prompts
  of up to ``speed_tokens`` new tokens after one warm-up prompt; prefill is timed apart and taken
  out (see :func:`_tokens_per_second`), so this is the decode rate;
- quality: ROUGE-1 of greedy summaries of the eval set against its references (``metric=rouge1``),
  or the perplexity of the references (``metric=perplexity``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genlab.errors import GenlabError, InvalidValueError

Metric = Literal["rouge1", "perplexity"]


class EvalSpec(BaseModel):
    """What quality means for a measurement: the data, the metric, and how much of it to use."""

    model_config = ConfigDict(extra="forbid")

    data: str = "builtin"  # a data file, builtin set or hub id with input and target fields
    metric: Metric = "rouge1"
    limit: int = Field(default=20, ge=1)  # examples scored
    input_field: str = "dialogue"
    target_field: str = "summary"
    template: str = "summarize"
    max_new_tokens: int = Field(default=64, ge=1)  # per summary (rouge1)
    batch_size: int = Field(default=8, ge=1)
    speed_prompts: int = Field(default=4, ge=1)  # prompts timed at batch 1
    speed_tokens: int = Field(default=32, ge=1)  # new tokens per timed prompt

    def check_data(self) -> None:
        """Read the first eval row now, so a bad path or field fails before any model is optimised."""
        from genlab.data.loaders import load_examples

        load_examples(self.data, input_field=self.input_field, target_field=self.target_field, limit=1)


@dataclass
class Measurement:
    model: str
    size_bytes: int
    parameters: int
    peak_memory_mb: float
    tokens_per_second: float
    quality: dict[str, float]  # {"rouge1": ...} or {"perplexity": ...}
    load_seconds: float
    dtype: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(model: str, spec: EvalSpec, *, dtype: str = "fp32", timeout: float = 3600.0) -> Measurement:
    """Measure ``model`` (a name or folder ``load_model`` accepts) in a fresh process; see the module docstring."""
    command = [sys.executable, "-m", "genlab.optimize.measure", model, spec.model_dump_json(), dtype]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise GenlabError(f"measuring {model} took longer than {timeout:.0f} s.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GenlabError(f"measuring {model} failed: {detail}")
    return Measurement(**json.loads(lines[-1]))


def measure_pair(original: str, optimised: str, spec: EvalSpec, *, dtype: str = "fp32", enabled: bool = True) -> tuple[Measurement, Measurement]:
    """The original and the optimised model (measured in ``dtype``), each in a fresh process; ``enabled=False``: zeros."""
    if not enabled:
        return Measurement(original, 0, 0, 0.0, 0.0, {}, 0.0), Measurement(optimised, 0, 0, 0.0, 0.0, {}, 0.0, dtype)
    return measure(original, spec), measure(optimised, spec, dtype=dtype)


def measure_here(model: str, spec: EvalSpec, dtype: str = "fp32") -> Measurement:
    """The measurement itself, in this process (the child of :func:`measure`)."""
    import torch

    from genlab.models.load import load_model
    from genlab.optimize.artifact import weights_size

    torch.manual_seed(0)
    start = time.perf_counter()
    loaded = load_model(model, dtype=dtype)
    load_seconds = time.perf_counter() - start
    rows, prompts, chat = _eval_prompts(loaded, spec)
    tokens_per_second = _tokens_per_second(loaded, prompts, chat, spec)
    quality = _quality(loaded, rows, prompts, chat, spec)
    peak_kb = peak_resident_kb()
    return Measurement(
        model=model, size_bytes=weights_size(loaded.path) if loaded.path is not None else 0,
        parameters=_parameters(loaded.model), peak_memory_mb=peak_kb / 1024, tokens_per_second=tokens_per_second,
        quality=quality, load_seconds=load_seconds, dtype=dtype,
    )  # fmt: skip


def peak_resident_kb() -> float:
    """This process's peak resident memory in KB: ``VmHWM`` from /proc (Linux), else ``ru_maxrss``.

    Not ``ru_maxrss`` on Linux: a child started by a large parent reports the parent's resident size
    at fork as its own maximum (measured: 1444 MB for a child whose own peak, VmHWM, was 13 MB).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KB on Linux, bytes on macOS


def _parameters(model: Any) -> int:
    """Parameters, counting packed quantised Linear weights (which are not ``nn.Parameter``) too."""
    if getattr(model, "parameter_count", None):  # a runtime's graph (ONNX): the count its saver recorded
        return int(model.parameter_count)
    count = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(weight):  # torch.ao's dynamic int8 Linear: packed weights, read through weight()
            try:
                count += weight().numel()
            except Exception:  # noqa: BLE001 - not a packed Linear
                continue
    return int(count)


def _eval_prompts(loaded: Any, spec: EvalSpec) -> tuple[list[Any], list[str], bool]:
    from genlab.data.loaders import load_examples
    from genlab.prompting.chat import has_chat_template
    from genlab.prompting.icl import build_prompt
    from genlab.prompting.templates import get_template

    rows = load_examples(spec.data, input_field=spec.input_field, target_field=spec.target_field, limit=spec.limit)
    if not rows:
        raise InvalidValueError(f"the eval data {spec.data!r} has no rows.")
    chat = has_chat_template(loaded.tokenizer) and not loaded.is_encoder_decoder
    template = get_template(spec.template)
    prompts = [
        build_prompt(
            template, row, None, 0, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
            max_new_tokens=spec.max_new_tokens, chat=chat, is_encoder_decoder=loaded.is_encoder_decoder,
        ).text  # fmt: skip
        for row in rows
    ]
    return rows, prompts, chat


def _tokens_per_second(loaded: Any, prompts: list[str], chat: bool, spec: EvalSpec) -> float:
    """Decode speed: tokens after the first / the seconds they took, prefill excluded.

    The eval prompts are long (~250-token dialogues) and reading one costs about as much as decoding
    a dozen tokens, so new tokens / total seconds would mostly time prefill and would shift with
    whatever length the answers happen to have. Each prompt is run twice, to one new token (prefill
    plus the first token) and to ``speed_tokens``; the difference is the decoding alone.
    """
    from genlab.generation import GenerationEngine, GenerationSettings

    engine = GenerationEngine(loaded, batch_size=1)
    full = GenerationSettings(max_new_tokens=spec.speed_tokens)
    first = GenerationSettings(max_new_tokens=1)
    timed = [prompts[i % len(prompts)] for i in range(spec.speed_prompts)]
    tokens, prefill_seconds, whole_seconds = 0, 0.0, 0.0
    with engine.hold_packed_weights():  # an fp32 model's weights reordered once, as a server holds them
        engine.generate(prompts[:1], full, preformatted=chat)  # warm-up: first-call allocations
        for prompt in timed:
            start = time.perf_counter()
            [prefill] = engine.generate([prompt], first, preformatted=chat)
            middle = time.perf_counter()
            [whole] = engine.generate([prompt], full, preformatted=chat)
            prefill_seconds += middle - start
            whole_seconds += time.perf_counter() - middle
            tokens += whole.new_tokens - prefill.new_tokens
    seconds = whole_seconds - prefill_seconds
    return tokens / seconds if seconds > 0 and tokens > 0 else 0.0


def _quality(loaded: Any, rows: list[Any], prompts: list[str], chat: bool, spec: EvalSpec) -> dict[str, float]:
    references = [row.target or "" for row in rows]
    if spec.metric == "perplexity":
        from genlab.evaluation.metrics.perplexity import perplexity

        sources = [row.input for row in rows] if loaded.is_encoder_decoder else None
        scores = perplexity(loaded, references, sources=sources, batch_size=spec.batch_size)
        return {"perplexity": float(scores["perplexity"])}
    from genlab.evaluation.metrics.rouge import rouge
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.prompting.templates import get_template

    settings = GenerationSettings(max_new_tokens=spec.max_new_tokens)
    stop = get_template(spec.template).stop
    if not chat and stop:
        settings = settings.with_overrides(stop=stop)
    completions = GenerationEngine(loaded, batch_size=spec.batch_size).generate(prompts, settings, preformatted=chat)
    return {"rouge1": float(rouge([c.text.strip() for c in completions], references)["rouge1"])}


def main(argv: list[str]) -> int:
    model, spec_json, dtype = argv
    try:
        result = measure_here(model, EvalSpec.model_validate_json(spec_json), dtype)
    except GenlabError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
