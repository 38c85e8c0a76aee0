"""Benchmark: `genlab batch` on the default model — chunk size, and what an interruption costs.

One input of short instructions and builtin dialogues to summarise (mixed lengths, so rows finish at
different steps), greedy, run through :func:`genlab.serving.batch_transform.run_batch` three ways:

- chunks of ``batch_size`` rows: every chunk is one static batch, a finished row's slot stays empty
  until the whole chunk is done;
- chunks of 4 x ``batch_size`` rows (the default): the engine hands a finished row's slot to the next
  row of the chunk (continuous batching);
- the default, interrupted (Ctrl-C, through the ``on_chunk`` hook) after half its chunks and run
  again: the resumed output must equal the uninterrupted one, row for row.

Prints rows, tokens/s of each way, their ratio, and whether the resumed output is identical. The
machine is shared, so figures drift between runs; the ratio is taken within one run.

    python bench/batch.py [--model NAME] [--rows 32] [--batch-size 8] [--max-tokens 48]

Measured on the shared 2-core machine (load 2-4 from other work), OMP_NUM_THREADS=1 (two torch
threads fell to about 2 tokens/s there, as other processes took the second core):

    48 rows, batch 8, 32 tokens: chunks of 32 rows 22.6 tokens/s, chunks of 8 rows 17.1 (ratio 1.32)
    32 rows, batch 4, 24 tokens: chunks of 16 rows 10.8 tokens/s, chunks of 4 rows  9.2 (ratio 1.17)
    interrupted after one chunk and rerun: output identical to the uninterrupted run (both sizes)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

INSTRUCTIONS = [
    "Write a haiku about autumn leaves.",
    "Explain in two sentences why the sky is blue.",
    "Give three tips for a good night's sleep.",
    "What is the capital of France? Answer in one sentence.",
    "Describe a cat to someone who has never seen one.",
    "List four fruits that are red.",
    "Write a short thank-you note to a colleague who helped you move.",
    "Suggest a name for a small bakery and say why.",
]


def write_input(path: Path, rows: int) -> Path:
    from genlab.data.builtin import builtin_dialogues

    dialogues = [
        f"Summarize the following conversation in one sentence.\n\n{row['dialogue']}" for row in builtin_dialogues()
    ]
    prompts = [INSTRUCTIONS[i // 2 % len(INSTRUCTIONS)] if i % 2 else dialogues[i // 2 % len(dialogues)] for i in range(rows)]
    path.write_text("".join(json.dumps({"custom_id": f"r{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    return path


def timed(config, **kwargs):  # noqa: ANN001, ANN201
    from genlab.serving.batch_transform import run_batch

    start = time.perf_counter()
    summary = run_batch(config, progress=False, **kwargs)
    return summary, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()

    import torch

    from genlab.models.load import load_model
    from genlab.serving.batch_transform import BatchConfig

    load_model(args.model)  # convert the pack once, outside the timings
    folder = Path(tempfile.mkdtemp(prefix="genlab-bench-batch-"))
    source = write_input(folder / "input.jsonl", args.rows)
    common = {"model": args.model, "input": source, "batch_size": args.batch_size, "max_tokens": args.max_tokens}
    print(
        f"model {args.model}, {args.rows} rows, batch {args.batch_size}, greedy, max_tokens {args.max_tokens}, "
        f"torch threads {torch.get_num_threads()}"
    )

    static, _ = timed(BatchConfig(**common, output=folder / "static.jsonl", rows_per_write=args.batch_size))
    default, _ = timed(BatchConfig(**common, output=folder / "default.jsonl"))
    chunk = 4 * args.batch_size
    for name, summary, rows_per_write in (("static", static, args.batch_size), ("continuous", default, chunk)):
        print(
            f"  chunks of {rows_per_write:3d} rows ({name:10s}): {summary.completion_tokens:5d} tokens in "
            f"{summary.seconds:6.1f} s = {summary.tokens_per_second:6.1f} tokens/s"
        )
    print(f"  ratio (chunks of {chunk} / chunks of {args.batch_size}): {default.tokens_per_second / static.tokens_per_second:.2f}")

    half = max(1, (args.rows // chunk) // 2)

    def interrupt(chunks_done: int, rows_done: int) -> None:
        if chunks_done == half:
            raise KeyboardInterrupt

    resumed_path = folder / "resumed.jsonl"
    try:
        timed(BatchConfig(**common, output=resumed_path), on_chunk=interrupt)
    except KeyboardInterrupt:
        pass
    resumed, seconds = timed(BatchConfig(**common, output=resumed_path))
    identical = resumed_path.read_text() == (folder / "default.jsonl").read_text()
    print(
        f"  interrupted after {half} chunk(s), rerun: {resumed.resumed} rows kept, {resumed.generated} generated "
        f"in {seconds:.1f} s (model load included); output identical to the uninterrupted run: {identical}"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
