"""Generation throughput: our pipeline vs a raw batched `model.generate` loop, and more.

Measured side by side in one run on the same prompts (the first N bundled GSM8K prompts,
reasoning OFF, greedy, so both sides produce the same tokens):

1. pipeline (`generate_sft`: plan, checkpoint, verify with math-verify, publish a version)
   vs a raw loop (chat template, left padding, `model.generate` in batches): completion
   tokens per second of wall time, model loading included on both sides; target >= 0.95;
2. batched (batch 16) vs one request at a time, raw loop;
3. vLLM (offline engine, CPU build) vs transformers, through the pipeline, when a vllm
   environment exists (`make vllm-env`, or THINKFORGE_VLLM_PYTHON).

Usage: nice .venv/bin/python bench/generation.py [--prompts 16] [--max-new-tokens 64]
       [--repeats 3] [--cpu-threads 1] [--skip-vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_messages(store, manifest, n):
    from thinkforge.generators.engine import load_prompts
    from thinkforge.generators.reasoning import teacher_messages

    return [teacher_messages(p["input"], "off", "prompted") for p in load_prompts(store, manifest, n)]


def raw_loop(model_dir, conversations, batch_size, max_new_tokens):
    """What a user would write by hand: no checkpoints, no verification, no store."""
    import torch
    import transformers

    started = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokens = 0
    for i in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations[i:i + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        for row in new.tolist():  # count up to and including the first end-of-turn token
            stop = next((j for j, t in enumerate(row) if t == tokenizer.eos_token_id), None)
            tokens += len(row) if stop is None else stop + 1
    return tokens, time.perf_counter() - started


def pipeline(store, prompts, name, n, batch_size, max_new_tokens, cpu_threads=None):
    from thinkforge.generators.sft import SftConfig, generate_sft

    config = SftConfig(modes=["off"], limit=n, teacher={"batch_size": batch_size,
                                                        "cpu_threads": cpu_threads},
                       sampling_off={"temperature": 0, "max_new_tokens": max_new_tokens})
    started = time.perf_counter()
    manifest = generate_sft(store, prompts, name, config, progress=False)
    return manifest.provenance["completion_tokens"], time.perf_counter() - started, manifest


def vllm_pipeline(store_root, n, max_new_tokens):
    python = Path(os.environ.get("THINKFORGE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not python.exists():
        return None
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    started = time.perf_counter()
    done = subprocess.run([str(python.parent / "thinkforge"), "--store", str(store_root), "--quiet",
                           "generate", "sft", "--prompts", "gsm8k", "--name", "bench-vllm",
                           "--modes", "off", "--backend", "vllm", "--limit", str(n),
                           "--temperature-off", "0", "--max-new-tokens", str(max_new_tokens),
                           "--json"], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(f"vllm run failed: {done.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout)["provenance"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3,
                        help="pipeline and raw runs alternate this many times; medians reported")
    parser.add_argument("--cpu-threads", type=int, default=None,
                        help="torch threads on both sides (1 on a busy shared CPU)")
    parser.add_argument("--skip-vllm", action="store_true")
    args = parser.parse_args()

    import statistics

    import torch
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.generators.backends.model_cache import resolve_model
    from thinkforge.manifests import DatasetStore

    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    model_dir = resolve_model("smollm2-135m")  # convert once, outside the timings
    n, mnt = args.prompts, args.max_new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(Path(tmp) / "store")
        prompts = import_file(store, REPO / "curation/data/gsm8k_train_demo.jsonl",
                              ImportOptions(name="gsm8k", preset="gsm8k"))
        conversations = load_messages(store, prompts, n)
        raw_rates, ours_rates, generation_rates = [], [], []
        for i in range(args.repeats):  # alternate, so a load change on a shared CPU hits both
            tokens, seconds = raw_loop(model_dir, conversations, 16, mnt)
            raw_rates.append(tokens / seconds)
            tokens, seconds, manifest = pipeline(store, prompts, f"bench-pipeline-{i}", n, 16, mnt,
                                                 cpu_threads=args.cpu_threads)
            ours_rates.append(tokens / seconds)
            generation_rates.append(manifest.provenance["tokens_per_s"])
        few = conversations[: max(4, n // 4)]
        one_tokens, one_s = raw_loop(model_dir, few, 1, mnt)
        batch_tokens, batch_s = raw_loop(model_dir, few, 16, mnt)
        median = statistics.median
        rows = [
            (f"pipeline vs raw generate, batch 16 (median of {args.repeats})",
             median(ours_rates), median(raw_rates)),
            (f"raw: batch 16 vs one at a time ({len(few)} prompts)", batch_tokens / batch_s,
             one_tokens / one_s),
        ]
        vllm = None if args.skip_vllm else vllm_pipeline(store.root, n, mnt)
        if vllm is not None:
            provenance, wall = vllm
            rows.append(("vLLM-CPU vs transformers, generation only", provenance["tokens_per_s"],
                         median(generation_rates)))
            rows.append(("vLLM-CPU vs transformers, wall incl. model load",
                         provenance["completion_tokens"] / wall, median(ours_rates)))
        elif not args.skip_vllm:
            print("vLLM: no vllm environment (make vllm-env) - skipped", file=sys.stderr)
    print(f"\n{n} GSM8K prompts, reasoning off, greedy, max {mnt} new tokens, SmolLM2-135M, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}\n")
    print("| measure | ours (tok/s) | baseline (tok/s) | ratio |\n|---|---|---|---|")
    for label, ours, base in rows:
        print(f"| {label} | {ours:.1f} | {base:.1f} | {ours / base:.2f}x |")


if __name__ == "__main__":
    main()
