"""Benchmark: what exporting the default model to GGUF costs in quality, per number format, in one run.

The default model is exported with ``genlab export gguf`` (the product's own path) at each format
(f16 and q8_0 by gguf's writer, a 4-bit k-quant by llama.cpp's quantizer), and each GGUF answers 50
DialogSum rows (zero-shot summaries, chat-formatted, greedy) in llama.cpp itself; genlab's fp32 engine
answers the same prompt tokens. Printed, one table: size on disk, greedy agreement with fp32 (rows
whose first 32 answer tokens are all the same, and rows whose whole answer is), ROUGE-1 against
the reference summaries and its change from fp32 in points, and decode speed (llama.cpp with
``--threads`` threads, prompts included; the fp32 row is genlab's batched engine, not comparable).

    python bench/export_quality.py [--rows 50] [--quants f16,q8_0,q4_k_m] [--max-new-tokens 64] [--threads 1]

Needs llama-cpp-python (``make setup-llamacpp``) and ../shared/datasets/dialogsum/dev.jsonl.

Measured 2026-12-07 on this project's 2-core machine, idle, ``--rows 50 --threads 2`` (64 new tokens;
fp32 is genlab's engine at batch 8, the others llama.cpp one sequence per prompt):

    format                  size MB  agree@32 agree all  ROUGE-1  vs fp32  tokens/s
    fp32 (genlab engine)        538     50/50     50/50   0.1333   +0.00p      99.7
    f16 (llama.cpp)             271     44/50     43/50   0.1355   +0.22p     100.2
    q8_0 (llama.cpp)            145     11/50      3/50   0.1524   +1.91p      92.3
    q4_k_m (llama.cpp)          105      0/50      0/50   0.0877   -4.56p      81.3

f16 keeps fp32's greedy answers (44/50 rows identical for 32 tokens; the round-trip test sees 16/16 on
short chat prompts); q8_0 changes the wording within a few tokens (llama.cpp also rounds the
activations to 8 bits for this type) but not the quality. q4_k_m costs this 135M model 4.6 points
(an earlier 20-row run at high load showed +1.7: 20 rows are too few to tell); on this model it is
partly 5-bit: 576-wide rows do not split into k-quants' 256-value blocks, so llama.cpp falls back to
q5_0 for 180 of its 272 tensors (it says so per tensor). For a model this small, export q8_0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from genlab.data.dialogsum import load_dialogsum
from genlab.evaluation.metrics.rouge import rouge
from genlab.export.llama_cpp_check import agreeing, llama_cpp_greedy
from genlab.export.run import ExportRequest, export_gguf
from genlab.generation.engine import GenerationEngine
from genlab.generation.settings import GenerationSettings
from genlab.models.load import load_model
from genlab.models.packs import DEFAULT_GENERATOR
from genlab.prompting.icl import build_prompt
from genlab.prompting.templates import get_template

DIALOGSUM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dialogsum" / "dev.jsonl"
FIRST = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--quants", default="f16,q8_0,q4_k_m")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-bench-export-"))  # its runs stay out of yours

    loaded = load_model(DEFAULT_GENERATOR)
    rows = load_dialogsum(path=DIALOGSUM, limit=args.rows)
    template = get_template("summarize")
    prompts = [
        build_prompt(template, row, None, 0, tokenizer=loaded.tokenizer, context_window=loaded.context_window,
                     max_new_tokens=args.max_new_tokens, chat=True).text
        for row in rows
    ]  # fmt: skip
    prompt_ids = [loaded.tokenizer(text, add_special_tokens=False)["input_ids"] for text in prompts]
    references = [row.target for row in rows]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0)

    start = time.perf_counter()
    completions = GenerationEngine(loaded, batch_size=8).generate(prompts, settings, preformatted=True)
    seconds = time.perf_counter() - start
    fp32 = [list(c.choices[0].token_ids) for c in completions]
    fp32_rouge = rouge([c.text for c in completions], references)["rouge1"]
    size = sum(p.stat().st_size for p in Path(loaded.path).glob("*.safetensors")) / 1e6
    print(f"Default model, {len(rows)} DialogSum dev rows, greedy, {args.max_new_tokens} new tokens at most", flush=True)
    print(f"{'format':22} {'size MB':>8} {'agree@32':>9} {'agree all':>9} {'ROUGE-1':>8} {'vs fp32':>8} {'tokens/s':>9}")
    row = _row_printer(len(rows))
    row("fp32 (genlab engine)", size, len(rows), len(rows), fp32_rouge, 0.0, sum(map(len, fp32)) / seconds)

    with tempfile.TemporaryDirectory(prefix="genlab-export-bench-") as folder:
        for quant in args.quants.split(","):
            result = export_gguf(ExportRequest(source=DEFAULT_GENERATOR, output=Path(folder) / quant, quant=quant))
            start = time.perf_counter()
            answers = llama_cpp_greedy(result.model_gguf, prompt_ids, max_new_tokens=args.max_new_tokens, threads=args.threads)
            seconds = time.perf_counter() - start
            texts = [loaded.tokenizer.decode(ids, skip_special_tokens=True) for ids in answers]
            score = rouge(texts, references)["rouge1"]
            row(f"{quant} (llama.cpp)", Path(result.model_gguf).stat().st_size / 1e6, agreeing(fp32, answers, FIRST),
                sum(a == b for a, b in zip(fp32, answers, strict=True)), score, 100 * (score - fp32_rouge),
                sum(map(len, answers)) / seconds)  # fmt: skip


def _row_printer(n_rows: int):
    def row(name: str, megabytes: float, first: int, whole: int, score: float, delta: float, speed: float) -> None:
        print(f"{name:22} {megabytes:8.0f} {first:>6}/{n_rows:<2} {whole:>6}/{n_rows:<2} {score:8.4f} {delta:+7.2f}p {speed:9.1f}", flush=True)

    return row

if __name__ == "__main__":
    main()
