"""Serving backends side by side on the default model, in one run: which one should serve a deployed model?

    python bench/backends.py                      # every engine installed here, 2 rounds, 50 DialogSum rows
    python bench/backends.py --engines ctranslate2-int8,genlab-fp32 --rounds 3

Engines: genlab's engine (fp32, and torch dynamic int8), llama.cpp (the pack's own Q4_1 GGUF, and the
q8_0 GGUF of `genlab export gguf`), CTranslate2 int8 (`--backend ctranslate2`) and ONNX Runtime GenAI
int4 and int8 (`--backend onnxruntime-genai`: its model builder's MatMulNBits, batched by its Engine). Each engine runs in a child process of its own, so
its peak memory (VmHWM) is its own; the speed children alternate (A B C ..., then ... C B A) and the
table gives medians over the rounds. Per engine:

- single stream: one greedy chat request at a time, 64 new tokens, submit -> end (prompt included),
  the median of 3 after a warm-up;
- first token: a 300-token prompt, submit -> first text (median of 3);
- 8 clients: 8 threads sending a greedy chat request each at once (48 new tokens), completion tokens
  of all / wall time, straight to the backend (no HTTP: the same for every engine); the median of 3
  such bursts after a warm-up burst;
- quality (once per engine, greedy, 48 new tokens): ROUGE-1 of 50 DialogSum summaries, and agreement
  with genlab fp32: the share of rows whose answer is the same text;
- LoRA per request, and what installing the library costs (its folders in site-packages).

The machine is shared: the load average is printed before and after, and the figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "dialogsum" / "dev.jsonl"
MODEL = "smollm2-135m-instruct"
STORY = "Write a long story about a lighthouse keeper, a storm and a lost ship."
ENGINES = ["genlab-fp32", "genlab-int8", "llama.cpp-q8_0", "llama.cpp-q4_1", "ctranslate2-int8", "ort-genai-int4", "ort-genai-int8"]
LORA = {"genlab-fp32": "yes, several per batch", "genlab-int8": "yes, several per batch", "llama.cpp-q8_0": "no (GGUF LoRA at load)",
        "llama.cpp-q4_1": "no (GGUF LoRA at load)", "ctranslate2-int8": "no (merge first)", "ort-genai-int4": "no (merge first)", "ort-genai-int8": "no (merge first)"}  # fmt: skip
LIBRARIES = {"genlab": ["torch"], "llama.cpp": ["llama_cpp", "llama_cpp_python.libs"], "ctranslate2": ["ctranslate2", "ctranslate2.libs"],
             "ort-genai": ["onnxruntime_genai"]}  # fmt: skip
# Minutes to install, measured in this session: the wheels from PyPI; llama-cpp-python compiles llama.cpp.
INSTALL_MINUTES = {"genlab": "torch, part of genlab", "llama.cpp": "10-20 min (compiles)", "ctranslate2": "< 0.1 min (wheel)", "ort-genai": "< 0.1 min (wheel)"}


def store() -> Path:
    from genlab.home import models_dir

    return models_dir() / "bench-backends"


# --- building each engine (in its child process) ---------------------------------------------------


def genlab_int8_folder() -> Path:
    """genlab's torch dynamic int8 of the default model (genlab optimize quantize), made once."""
    from genlab.lineage import LineageStore
    from genlab.optimize.measure import EvalSpec
    from genlab.optimize.quantize.recipe import QuantizeRecipe
    from genlab.optimize.quantize.run import quantize

    folder = store() / "genlab-int8-dynamic"
    if not (folder / "genlab_optimized.json").is_file():
        recipe = QuantizeRecipe(model=MODEL, evaluation=EvalSpec(data=str(DATA), limit=1), measure=False, output=str(folder))
        with LineageStore() as lineage:
            quantize(recipe, store=lineage)
    return folder


def q8_gguf() -> Path:
    """The default model exported to q8_0 by `genlab export gguf`, made once."""
    folder = store() / "gguf-q8_0"
    found = sorted(folder.glob("*.gguf"))
    if not found:
        subprocess.run([sys.executable, "-m", "genlab", "export", "gguf", MODEL, "--output", str(folder), "--quant", "q8_0"],
                       check=True, capture_output=True)  # fmt: skip
        found = sorted(folder.glob("*.gguf"))
    return found[0]


def build(engine: str, threads: int) -> Any:
    if engine.startswith("genlab-"):
        from genlab.serving.genlab_backend import GenlabBackend

        model = MODEL if engine == "genlab-fp32" else str(genlab_int8_folder())
        return GenlabBackend(model, max_batch=8, threads=threads, model_id=MODEL)
    if engine.startswith("llama.cpp-"):
        from genlab.serving.backends.llamacpp import LlamaCppBackend

        gguf = MODEL if engine == "llama.cpp-q4_1" else str(q8_gguf())
        return LlamaCppBackend(gguf, threads=threads, model_id=MODEL)
    if engine == "ctranslate2-int8":
        from genlab.serving.backends.ctranslate2_backend import CTranslate2Backend

        return CTranslate2Backend(MODEL, threads=threads, max_batch=8, model_id=MODEL)
    if engine in ("ort-genai-int4", "ort-genai-int8"):
        from genlab.serving.backends.ort_genai_backend import OrtGenaiBackend

        return OrtGenaiBackend(MODEL, threads=threads, max_batch=8, model_id=MODEL, precision=engine.rsplit("-", 1)[1])
    raise SystemExit(f"unknown engine {engine!r}: choose among {', '.join(ENGINES)}")


def available(engine: str) -> str | None:
    """None when the engine can run here, else why not."""
    import importlib.util

    library = {"llama.cpp": "llama_cpp", "ctranslate2": "ctranslate2", "ort": "onnxruntime_genai"}.get(engine.split("-")[0])
    if library and importlib.util.find_spec(library) is None:
        return f"{library} not installed"
    return None


# --- what a child measures -------------------------------------------------------------------------


def dialogsum_prompts(rows: int) -> tuple[list[str], list[str]]:
    """Chat-formatted zero-shot summary prompts of the first ``rows`` DialogSum rows, and their references."""
    from transformers import AutoTokenizer

    from genlab.data.loaders import load_examples
    from genlab.models.packs import PACKS, ensure_converted
    from genlab.prompting.icl import build_prompt
    from genlab.prompting.templates import get_template

    folder = ensure_converted(PACKS[MODEL])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    window = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    examples = load_examples(str(DATA), input_field="dialogue", target_field="summary", limit=rows)
    template = get_template("summarize")
    prompts = [build_prompt(template, row, None, 0, tokenizer=tokenizer, context_window=window,
                            max_new_tokens=48, chat=True).text for row in examples]  # fmt: skip
    return prompts, [row.target or "" for row in examples]


def long_prompt(backend: Any, tokens: int = 300) -> str:
    """A chat prompt of about ``tokens`` tokens: a DialogSum dialogue cut to length, to summarise."""
    from transformers import AutoTokenizer

    from genlab.models.packs import PACKS, ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_converted(PACKS[MODEL])))
    dialogue = " ".join(json.loads(line)["dialogue"] for line in DATA.read_text().splitlines()[:5])
    cut = tokenizer.decode(tokenizer(dialogue)["input_ids"][: tokens - 40])
    return backend.format_chat([{"role": "user", "content": f"Summarize this conversation:\n{cut}"}])


def clients(backend: Any, prompts: list[str], count: int = 8, each: int = 1, max_tokens: int = 48) -> float:
    from genlab.generation.settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=max_tokens)
    totals = [0] * count

    def client(index: int) -> None:
        for turn in range(each):
            prompt = prompts[(index * each + turn) % len(prompts)]
            totals[index] += backend.submit(MODEL, prompt, settings, formatted=True).result().completion_tokens

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals) / (time.perf_counter() - start)


def child_speed(engine: str, threads: int) -> dict[str, Any]:
    from genlab.optimize.measure import peak_resident_kb
    from genlab.serving.backends.speed import measure_single_stream

    backend = build(engine, threads)
    backend.load()
    single = measure_single_stream(backend, STORY, 64, model_id=MODEL, repeats=3)
    first = measure_single_stream(backend, long_prompt(backend), 8, model_id=MODEL, chat=False, repeats=3)
    chats = [backend.format_chat([{"role": "user", "content": q}]) for q in (
        "Explain photosynthesis to a child.", "Write a poem about the sea.", "List five uses of a brick.",
        "Describe a busy market.", "What makes a good friend?", "Tell me about volcanoes.",
        "Give advice to a new cook.", "Describe winter in a city.")]  # fmt: skip
    clients(backend, chats)  # a warm-up burst: the first batch of 8 allocates what later ones reuse
    aggregate = statistics.median(clients(backend, chats) for _ in range(3))
    return {"single": single.tokens_per_second, "first_token": first.first_token_seconds, "clients8": aggregate,
            "peak_mb": peak_resident_kb() / 1024}  # fmt: skip


def child_quality(engine: str, threads: int, rows: int) -> dict[str, Any]:
    from genlab.evaluation.metrics.rouge import rouge
    from genlab.generation.settings import GenerationSettings

    prompts, references = dialogsum_prompts(rows)
    backend = build(engine, threads)
    backend.load()
    settings = GenerationSettings(max_new_tokens=48)
    handles = [backend.submit(MODEL, prompt, settings, formatted=True) for prompt in prompts]
    texts = [handle.result().text.strip() for handle in handles]
    return {"rouge1": float(rouge(texts, references)["rouge1"]), "texts": texts}


# --- the parent: alternate, take medians, print the table ------------------------------------------


def run_child(engine: str, phase: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", engine, "--phase", phase, "--threads", str(args.threads), "--rows", str(args.rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def install_mb(engine: str) -> str:
    import site

    key = engine.split("-")[0] if not engine.startswith("ort") else "ort-genai"
    key = "genlab" if key == "genlab" else key
    folders = [Path(site.getsitepackages()[0]) / name for name in LIBRARIES[key]]
    size = sum(f.stat().st_size for folder in folders if folder.exists() for f in folder.rglob("*") if f.is_file())
    return f"{size / 2**20:.0f} MB; {INSTALL_MINUTES[key]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--child")
    parser.add_argument("--phase", choices=["speed", "quality"])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--no-quality", action="store_true", help="speed only (quality measured by another run)")
    args = parser.parse_args()
    if args.child:
        result = child_speed(args.child, args.threads) if args.phase == "speed" else child_quality(args.child, args.threads, args.rows)
        print(json.dumps(result), flush=True)
        os._exit(0)  # measured and printed: an engine's threads aborting at interpreter exit must not lose the figures
    engines = [e for e in args.engines.split(",") if e]
    missing = {e: why for e in engines if (why := available(e))}
    engines = [e for e in engines if e not in missing]
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f} on {os.cpu_count()} cores; "
          f"{args.threads} threads per engine; {args.rounds} rounds")  # fmt: skip
    speeds: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    quality: dict[str, dict[str, Any]] = {}

    def speed_round(round_index: int) -> None:
        for engine in engines if round_index % 2 == 0 else engines[::-1]:
            result = run_child(engine, "speed", args)
            speeds[engine].append(result)
            print(f"  round {round_index + 1} {engine}: {json.dumps(result)} (load {os.getloadavg()[0]:.1f})", flush=True)

    # Round 1, then quality (once: greedy answers do not change), then the other rounds in alternating order,
    # so a run cut short still has every engine's figures.
    speed_round(0)
    for engine in [] if args.no_quality else engines:
        quality[engine] = run_child(engine, "quality", args)
        print(f"  quality {engine}: ROUGE-1 {quality[engine].get('rouge1')} {quality[engine].get('error', '')} "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"speeds": speeds, "quality": quality}, indent=2))
    for round_index in range(1, args.rounds):
        speed_round(round_index)
    reference = quality.get("genlab-fp32", {}).get("texts")
    rows = []
    for engine in engines:
        good = [r for r in speeds[engine] if "error" not in r]
        med = {key: statistics.median(r[key] for r in good) for key in ("single", "first_token", "clients8", "peak_mb")} if good else {}
        q = quality.get(engine, {})
        agree = (sum(a == b for a, b in zip(q["texts"], reference)) / len(reference)) if reference and "texts" in q else None
        rows.append({"engine": engine, **med, "rouge1": q.get("rouge1"), "agreement": agree, "lora": LORA[engine],
                     "install": install_mb(engine), "errors": [r["error"] for r in speeds[engine] if "error" in r] + ([q["error"]] if "error" in q else [])})  # fmt: skip
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}")
    print("\n| engine | single stream tokens/s | first token, 300-token prompt (s) | 8 clients tokens/s | peak MB | "
          "ROUGE-1 (50 rows) | same answer as fp32 | LoRA per request | install |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "single" not in row:
            print(f"| {row['engine']} | failed: {'; '.join(row['errors'])[:120]} |||||||")
            continue
        agreement = "-" if row["agreement"] is None else f"{row['agreement']:.0%}"
        rouge1 = "-" if row["rouge1"] is None else f"{row['rouge1']:.3f}"
        print(f"| {row['engine']} | {row['single']:.1f} | {row['first_token']:.2f} | {row['clients8']:.1f} | {row['peak_mb']:.0f} | "
              f"{rouge1} | {agreement} | {row['lora']} | {row['install']} |")  # fmt: skip
    for engine, why in missing.items():
        print(f"| {engine} | not measured: {why} |||||||")
    by = {row["engine"]: row for row in rows if "single" in row}
    ratios = [("ort-genai-int8", "llama.cpp-q8_0", "single"), ("ort-genai-int8", "genlab-fp32", "clients8"), ("ort-genai-int4", "llama.cpp-q4_1", "single"), ("ort-genai-int4", "llama.cpp-q8_0", "single"),
              ("ort-genai-int4", "genlab-fp32", "clients8"), ("ctranslate2-int8", "llama.cpp-q8_0", "single"), ("ctranslate2-int8", "llama.cpp-q4_1", "single"),
              ("ctranslate2-int8", "genlab-fp32", "clients8"), ("ctranslate2-int8", "genlab-int8", "single")]  # fmt: skip
    print()
    for a, b, key in ratios:
        if a in by and b in by and by[b][key]:
            print(f"{a} / {b} ({key}): {by[a][key] / by[b][key]:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"load_before": load_before, "load_after": load_after, "rows": rows, "speeds": speeds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
