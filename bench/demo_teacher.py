"""What the embedded teacher gets right on the demo's easy prompts, and how fast, per backend.

Sizing `make demo` (issue 23 item 7) needs two numbers per setting: the share of single
samples the SmolLM2-135M teacher answers right (verified as the pipeline verifies them),
and completion tokens per second on this machine.  The requests are the demo's own: the
first N prompts of ``curation/data/easy_arith.jsonl`` with the instructions and the ON / OFF
sampling of ``recipes/demo.yaml``'s SFT step (read from the recipe, so this follows it),
plus ON at the paper's temperature 0.6.

Each setting runs on both local backends with the same requests and seeds: ``transformers``
(the dequantized float32 weights, one ``generate`` call per batch) and ``llamacpp``
(llama.cpp on the Q4_1 GGUF itself, continuous batching over ``--batch-size`` slots), fed
in the chunks the generation engine hands them.  The ratio is llamacpp / transformers
completion tokens per second, from the same run.

Usage: flock /tmp/tf-cpu.lock .venv/bin/python bench/demo_teacher.py [--prompts 72]
       [--batch-size 16] [--cpu-threads 2] [--backends transformers,llamacpp]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PROMPTS = REPO / "curation" / "data" / "easy_arith.jsonl"
RECIPE = REPO / "recipes" / "demo.yaml"


def demo_step_config():
    """The demo's SFT generation step config, resolved (defaults filled in)."""
    from thinkforge.generators.config import SftConfig

    recipe = yaml.safe_load(RECIPE.read_text())
    step = next(s for s in recipe["steps"] if s["type"] == "generate_sft")
    return SftConfig.model_validate(step["config"])


def settings(config) -> list[tuple[str, str, float, float, int]]:
    # (label, mode, temperature, top_p, max_new_tokens)
    on, off = config.sampling_on, config.sampling_off
    return [(f"off T={off.temperature:g} (demo)", "off", off.temperature, off.top_p, off.max_new_tokens),
            (f"on T={on.temperature:g} (demo)", "on", on.temperature, on.top_p, on.max_new_tokens),
            ("on T=0.6", "on", 0.6, on.top_p, on.max_new_tokens)]


def requests(rows, config, mode, temperature, top_p, max_new_tokens):
    from thinkforge.generators.backends.base import ChatRequest, Sampling
    from thinkforge.generators.reasoning import teacher_messages

    return [ChatRequest(str(i), teacher_messages(
        [{"role": "user", "content": row["question"]}], mode, config.reasoning_format,
        config.instructions), Sampling(temperature, top_p if temperature else 1.0,
                                       max_new_tokens, seed=i), mode)
        for i, row in enumerate(rows)]


def score(rows, reqs, completions, mode, reasoning_format) -> int:
    from thinkforge.generators.reasoning import shape_output

    from thinkforge import verify

    right = 0
    for row, req, c in zip(rows, reqs, completions, strict=True):
        if not c.ok:
            continue
        gold = row["answer"].split("####")[-1].strip()
        reply = shape_output(c.text, mode, reasoning_format).output if mode == "on" else c.text
        right += bool(verify(reply, gold, "math", mode=mode, reasoning_format=reasoning_format,
                             messages=req.messages).correct)
    return right


def run(backend, reqs):
    """Completions of ``reqs`` in the chunks the engine would send, and the seconds taken."""
    out = []
    size = max(1, backend.preferred_batch_size)
    started = time.perf_counter()
    for i in range(0, len(reqs), size):
        out += backend.generate(reqs[i:i + size])
    return out, time.perf_counter() - started


def main() -> None:
    from thinkforge.generators.backends import make_backend
    from thinkforge.generators.config import BackendConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=72)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--backends", default="transformers,llamacpp")
    args = parser.parse_args()
    config = demo_step_config()
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines()][:args.prompts]
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    backends = {}
    for name in names:
        began = time.perf_counter()
        backends[name] = make_backend(BackendConfig(
            backend=name, device="cpu", dtype="float32", cpu_threads=args.cpu_threads,
            batch_size=args.batch_size), "smollm2-135m")
        print(f"{name}: loaded in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    print(f"{len(rows)} prompts, batch size {args.batch_size}, {args.cpu_threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("| setting | backend | right | truncated | errors | tokens | seconds | tok/s | vs first |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, mode, temperature, top_p, budget in settings(config):
        reqs = requests(rows, config, mode, temperature, top_p, budget)
        first = None
        for name, backend in backends.items():
            out, seconds = run(backend, reqs)
            tokens = sum(c.completion_tokens for c in out if c.ok)
            rate = tokens / seconds
            first = first or rate
            print(f"| {label} | {name} | {score(rows, reqs, out, mode, config.reasoning_format)}"
                  f"/{len(rows)} | {sum(c.finish_reason == 'length' for c in out)} | "
                  f"{sum(not c.ok for c in out)} | {tokens} | {seconds:.1f} | {rate:.1f} | "
                  f"{rate / first:.2f}x |", flush=True)
    for backend in backends.values():
        backend.close()
    print(f"load average at the end {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
