"""Benchmark: the batched generation engine against plain `model.generate`, one prompt at a time.

The same 16 prompts (8 builtin dialogues to summarise, 8 short instructions: the mix a chat or
evaluation workload sends), greedy, 64 new tokens at most, on the default model. Prints tokens/s of
both and their ratio from this one run, and checks that the greedy outputs are identical.
Target (issue 3): ratio >= 4 on 2 CPU cores.

    python bench/generate.py [--model NAME] [--batch-size 8] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import sys
import time

INSTRUCTIONS = [
    "Write a haiku about autumn leaves.",
    "Explain in two sentences why the sky is blue.",
    "Give three tips for a good night's sleep.",
    "What is the capital of France? Answer in one sentence.",
    "Describe a cat to someone who has never seen one.",
    "List four fruits that are red.",
    "Write a short thank-you note to a colleague who helped you move.",
    "Explain what a recipe is to a child.",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    import torch

    from genlab.data.builtin import builtin_dialogues
    from genlab.generation import GenerationEngine, GenerationSettings
    from genlab.models import load_model

    loaded = load_model(args.model)
    engine = GenerationEngine(loaded, batch_size=args.batch_size)
    dialogues = [row["dialogue"] for row in builtin_dialogues()[:8]]
    prompts = [f"Summarize the following conversation in one sentence.\n\n{d}\n\nSummary:" for d in dialogues]
    prompts += INSTRUCTIONS
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    chat_texts = [engine.format_prompt(p, chat=True) for p in prompts]

    engine.generate(prompts[:1], settings.with_overrides(max_new_tokens=4), chat=True)  # warm-up

    start = time.perf_counter()
    completions = engine.generate(prompts, settings, chat=True)
    engine_seconds = time.perf_counter() - start
    engine_tokens = sum(c.new_tokens for c in completions)

    baseline_texts, baseline_tokens = [], 0
    start = time.perf_counter()
    for text in chat_texts:
        inputs = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
        new = output[0][inputs["input_ids"].shape[1] :]
        baseline_tokens += int(sum(1 for t in new.tolist() if t not in engine.eos_ids))
        baseline_texts.append(loaded.tokenizer.decode(new, skip_special_tokens=True).strip())
    baseline_seconds = time.perf_counter() - start

    engine_rate, baseline_rate = engine_tokens / engine_seconds, baseline_tokens / baseline_seconds
    identical = sum(c.text == b for c, b in zip(completions, baseline_texts, strict=True))
    prompt_tokens = [c.prompt_tokens for c in completions]
    print(f"model {args.model}, {len(prompts)} prompts ({min(prompt_tokens)}-{max(prompt_tokens)} prompt tokens), "
          f"greedy, max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")
    print(f"engine, batch {args.batch_size:<3}        {engine_tokens:5d} tokens in {engine_seconds:6.1f} s = {engine_rate:6.1f} tokens/s")
    print(f"model.generate, one by one {baseline_tokens:5d} tokens in {baseline_seconds:6.1f} s = {baseline_rate:6.1f} tokens/s")
    print(f"ratio (engine / one by one): {engine_rate / baseline_rate:.2f}  (target >= 4)")
    print(f"greedy outputs identical: {identical}/{len(prompts)}")
    return 0 if identical == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
