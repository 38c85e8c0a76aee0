"""Benchmark: post-training quantisation of a model, each method against the original in one run.

Each method goes through ``genlab.optimize.quantize.run.quantize`` (the product's own path): the folder is
written, then the original and the result are measured by ``genlab.optimize.measure`` in a fresh
process each -- size on disk, parameters, peak memory, decode tokens/s at batch 1 (prefill taken
out), ROUGE-1 of greedy summaries of the builtin dialogues. Printed: each report's table and one
line of ratios per method. Targets (issue 7, int8-dynamic on the default model): >= 2x tokens/s,
>= 2x smaller on disk, ROUGE-1 within 1 point.

``--kernels`` instead compares int8 kernels on the same model by decode-step speed at batch 1,
interleaved (see :func:`compare_kernels`): fp32, fbgemm's dynamic int8 Linear (what ``int8-dynamic``
uses), and torchao's ``Int8DynamicActivationInt8WeightConfig`` / ``Int8WeightOnlyConfig`` (needs
``pip install --no-deps torchao``; it is not a genlab dependency).

    python bench/quantize.py [--model NAME] [--methods int8-dynamic,bf16] [--eval-limit 20]
    python bench/quantize.py --kernels [--model NAME] [--context 256] [--rounds 5] [--steps 4]

Measured 2026-11-23 on 2 idle cores (default model, 20 builtin dialogues, one activation scale per
token; each line one run of ``genlab optimize quantize``):

    int8-dynamic (LM head fp32):  538 -> 220 MB (2.44x smaller), 13.4 -> 23.3 tokens/s (1.75x),
                                  peak 1221 -> 1111 MB, ROUGE-1 0.2033 -> 0.1915 (-1.18 points)
    --quantize-lm-head:           538 -> 135 MB (3.97x smaller), 12.9 -> 30.1 tokens/s (2.33x),
                                  peak 1274 -> 1014 MB, ROUGE-1 0.2033 -> 0.1798 (-2.35 points)
    --quantize-lm-head, --metric perplexity: 2.38x tokens/s, perplexity 164.61 -> 164.63 (+0.0%;
                                  a prompt runs on the dequantised weights, so this hides the int8
                                  activations of decoding, which ROUGE-1 sees)

    onnx-int8 (onnxruntime):      538 -> 140 MB (3.85x smaller), 14.2 -> 31.2 tokens/s (2.20x),
                                  peak 1220 -> 1879 MB, ROUGE-1 0.2033 -> 0.1140 (-8.92 points: one
                                  activation scale per call, in prompts too)

``--kernels`` on 2026-12-06 (idle, 200-token cache, 6 rounds x 5 steps), with fp32 also as the
generation engine runs it (Linear layers on oneDNN, weights reordered once):

    fp32 (torch's Linear)   16.5 tokens/s   1.00
    fp32 on oneDNN          21.4 tokens/s   1.30
    fbgemm dynamic int8     47.2 tokens/s   2.87   (2.21x fp32 on oneDNN)

Targets (the 2026-11-23 figures above): neither int8-dynamic variant meets all three on ROUGE-1 (the default misses speed, the other quality).
The first version, with fbgemm's one activation scale per call, lost 13.6 points; see
genlab.optimize.quantize.run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def compare_kernels(args: argparse.Namespace) -> int:
    """Decode-step speed of each int8 kernel, interleaved in rounds so a busy machine slows all alike.

    One process holds the fp32 model and a copy per kernel (quantised in memory). Each timed step is
    one forward of one new token over a ``--context``-token KV cache (what every decode step is);
    tokens/s = 1 / median step time. Rounds alternate the kernels, so load from other work on the
    machine falls on all of them rather than on whichever ran last.
    """
    import copy
    import statistics
    import time

    import torch

    from genlab.generation.cache_argument import cache_kwargs, cache_of
    from genlab.generation.packed_linear import packed_linears
    from genlab.models.load import load_model
    from genlab.optimize.quantize.int8_layers import int8_linear, quantize_weight

    loaded = load_model(args.model)
    # fp32 as torch runs it, and as the generation engine runs it (Linear layers on oneDNN, reordered weights)
    models = {"fp32": loaded.model, "fp32-onednn": copy.deepcopy(loaded.model)}
    fbgemm = copy.deepcopy(loaded.model)
    for name, module in list(fbgemm.named_modules()):
        if isinstance(module, torch.nn.Linear):
            parent, _, child = name.rpartition(".")
            q, scale = quantize_weight(module.weight)
            setattr(fbgemm.get_submodule(parent), child, int8_linear(q, scale, module.bias))
    models["fbgemm-dynamic-int8"] = fbgemm
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        print("torchao is not installed: comparing fp32 and fbgemm only (pip install --no-deps torchao).")
    else:
        for kernel, config in (("torchao-int8-dynamic", Int8DynamicActivationInt8WeightConfig()),
                               ("torchao-int8-weight-only", Int8WeightOnlyConfig())):  # fmt: skip
            models[kernel] = copy.deepcopy(loaded.model)
            quantize_(models[kernel], config)
    prompt = torch.randint(0, loaded.model.config.vocab_size, (1, args.context))
    step = torch.tensor([[42]])
    times: dict[str, list[float]] = {kernel: [] for kernel in models}
    with torch.inference_mode(), packed_linears(models["fp32-onednn"]):
        caches = {kernel: cache_of(model(input_ids=prompt, use_cache=True)) for kernel, model in models.items()}
        for _ in range(args.rounds):
            for kernel, model in models.items():
                cache = copy.deepcopy(caches[kernel])
                for _ in range(args.steps):
                    start = time.perf_counter()
                    out = model(input_ids=step, **cache_kwargs(cache), use_cache=True)
                    times[kernel].append(time.perf_counter() - start)
                    cache = cache_of(out)
    base = 1 / statistics.median(times["fp32"])
    engine_base = 1 / statistics.median(times["fp32-onednn"])
    print(f"model {args.model}, batch 1, one new token over a {args.context}-token cache, "
          f"{args.rounds} interleaved rounds x {args.steps} steps, tokens/s = 1 / median step\n")  # fmt: skip
    print(f"{'kernel':<26} {'tokens/s':>9} {'x fp32':>7} {'x fp32-onednn':>14}")
    for kernel, measured in times.items():
        rate = 1 / statistics.median(measured)
        print(f"{kernel:<26} {rate:>9.1f} {rate / base:>7.2f} {rate / engine_base:>14.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--methods", default="int8-dynamic", help="Comma-separated: int8-dynamic, fp16, bf16, onnx-int8.")
    parser.add_argument("--eval-limit", type=int, default=20)
    parser.add_argument("--speed-prompts", type=int, default=4)
    parser.add_argument("--speed-tokens", type=int, default=32)
    parser.add_argument("--kernels", action="store_true", help="Compare int8 kernels' decode speed instead.")
    parser.add_argument("--context", type=int, default=256, help="--kernels: cache length of the timed steps.")
    parser.add_argument("--rounds", type=int, default=5, help="--kernels: interleaved rounds.")
    parser.add_argument("--steps", type=int, default=4, help="--kernels: decode steps per kernel per round.")
    args = parser.parse_args()
    if args.kernels:
        return compare_kernels(args)

    from genlab.cli.output import print_table
    from genlab.home import models_dir
    from genlab.lineage import LineageStore
    from genlab.optimize.measure import EvalSpec
    from genlab.optimize.quantize.recipe import QuantizeConfig, QuantizeRecipe
    from genlab.optimize.quantize.run import quantize

    spec = EvalSpec(limit=args.eval_limit, speed_prompts=args.speed_prompts, speed_tokens=args.speed_tokens)
    reports = []
    with tempfile.TemporaryDirectory() as home:  # the bench's runs and folders are thrown away
        os.environ["GENLAB_MODELS_DIR"] = str(models_dir())
        os.environ["GENLAB_HOME"] = home
        for method in args.methods.split(","):
            recipe = QuantizeRecipe(model=args.model, quantize=QuantizeConfig(method=method.strip()), evaluation=spec)
            with LineageStore() as store:
                report = quantize(recipe, store=store)
            print_table(*report.table())
            reports.append(report)
    print(f"\nmodel {args.model}, {args.eval_limit} builtin dialogues, batch 1 greedy decoding, one run")
    met = True
    for r in reports:
        rouge = r.quality_change.get("rouge1_change_points", float("nan"))
        line = f"{r.method:<13} speedup {r.speedup:.2f}x  size {r.size_ratio:.2f}x smaller  ROUGE-1 {rouge:+.2f} points"
        if r.method == "int8-dynamic":
            ok = r.speedup >= 2 and r.size_ratio >= 2 and abs(rouge) <= 1
            met = met and ok
            line += f"  (targets >= 2x, >= 2x, within 1 point: {'met' if ok else 'NOT met'})"
        print(line)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
