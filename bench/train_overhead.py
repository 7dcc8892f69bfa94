"""`thinkforge train sft` vs the same SFTTrainer script written by hand, on the same data.

Both run as fresh processes on the same sft version, the same model and the same TRL
settings (prompt/completion layout, batch size, max_length, steps, seed).  Reported:

- steps/s of the training loop (TRL's own ``train_runtime`` / ``global_step``): the
  thinkforge run should not be slower (goal: ratio >= 0.95);
- start-up and wrap-up: whole process wall time minus the training loop (imports, sha256
  verification, conversion, model load, saving; thinkforge also hashes the weights and
  publishes a run record), printed separately.

Rounds alternate thinkforge / hand-written so shared-CPU noise hits both; the best round
of each is compared (the floor is what the code costs).

    .venv/bin/python bench/train_overhead.py                      # tiny model, 20 steps
    .venv/bin/python bench/train_overhead.py --model smollm2-135m --steps 10 --rounds 2
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

HAND_WRITTEN = r'''
import json, sys, time
import pyarrow.parquet as pq
from datasets import Dataset
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

shards, model, out, steps, batch, max_length = sys.argv[1].split(","), sys.argv[2], sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows = [r for s in shards for r in pq.read_table(s).to_pylist()]
data = Dataset.from_list([{"prompt": [{"role": "system", "content": r["system_prompt"]}, *r["input"]],
                           "completion": [{"role": "assistant", "content": r["output"]}]} for r in rows])
args = SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
                 max_length=max_length, learning_rate=1e-5, logging_steps=1, save_strategy="no",
                 report_to="none", use_cpu=True, seed=0, data_seed=0, disable_tqdm=True,
                 dataloader_num_workers=0, bf16=False)
trainer = SFTTrainer(model=model, args=args, train_dataset=data,
                     processing_class=AutoTokenizer.from_pretrained(model))
result = trainer.train()
trainer.save_model(out)
print(json.dumps({"train_runtime": result.metrics["train_runtime"],
                  "steps": trainer.state.global_step}))
'''


def make_data(store_root: Path, rows: int):
    sys.path.insert(0, str(REPO))
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(store_root)
    data = []
    for i in range(rows):
        mode = "on" if i % 2 == 0 else "off"
        question = f"A shop sells {i + 3} apples a day for {i % 7 + 2} days. How many apples?"
        answer = str((i + 3) * (i % 7 + 2))
        reasoning = f"<think>{i + 3} apples a day times {i % 7 + 2} days is {answer}.</think>\n\n"
        data.append({"id": f"r{i}", "prompt_id": f"p{i // 2}", "pair_id": f"p{i // 2}",
                     "category": "math", "reasoning": mode,
                     "system_prompt": f"detailed thinking {mode}",
                     "input": [{"role": "user", "content": question}],
                     "output": (reasoning if mode == "on" else "") + f"The answer is {answer}.",
                     "generator": "bench"})
    with store.writer("bench-sft", "sft", step={"type": "bench"}) as w:
        w.write(data)
    return store, w.manifest


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:6])}... failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (built locally) or a model folder / "
                        "smollm2-135m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store, manifest = make_data(tmp / "store", args.rows)
        if args.model == "tiny":
            sys.path.insert(0, str(REPO / "tests" / "generators"))
            from tiny_model import build_tiny_model

            model = str(build_tiny_model(tmp / "tiny"))
        else:
            from thinkforge.generators.backends.model_cache import resolve_model

            model = str(resolve_model(args.model))
        script = tmp / "hand_written_sft.py"
        script.write_text(HAND_WRITTEN)
        shards = ",".join(str(p) for p in store.shard_paths(manifest))
        ours, theirs = [], []
        for round_ in range(args.rounds):
            wall, out = run([sys.executable, "-m", "thinkforge", "--store", str(store.root), "-q",
                             "train", "sft", "--data", manifest.ref, "--model", model,
                             "--output", str(tmp / f"tf-{round_}"), "--max-steps", str(args.steps),
                             "--per-device-train-batch-size", str(args.batch),
                             "--max-length", str(args.max_length), "--no-bf16",
                             "--learning-rate", "1e-5", "--json"], env)
            record = json.loads(out)
            loop = record["final_metrics"]["train_runtime"]
            ours.append((record["final_metrics"]["global_step"] / loop, wall - loop, wall))
            wall, out = run([sys.executable, str(script), shards, model, str(tmp / f"hw-{round_}"),
                             str(args.steps), str(args.batch), str(args.max_length)], env)
            result = json.loads(out.strip().splitlines()[-1])
            theirs.append((result["steps"] / result["train_runtime"],
                           wall - result["train_runtime"], wall))
            print(f"round {round_ + 1}: thinkforge {ours[-1][0]:.2f} steps/s, start-up+wrap-up "
                  f"{ours[-1][1]:.1f} s | hand-written {theirs[-1][0]:.2f} steps/s, "
                  f"{theirs[-1][1]:.1f} s", file=sys.stderr)
    best_ours = max(ours, key=lambda r: r[0])
    best_theirs = max(theirs, key=lambda r: r[0])
    start_ours, start_theirs = min(r[1] for r in ours), min(r[1] for r in theirs)
    print(f"model {args.model}, {args.steps} steps x batch {args.batch}, max_length "
          f"{args.max_length}, best of {args.rounds} rounds")
    print("| measure | thinkforge train sft | hand-written SFTTrainer | ratio |")
    print("|---|---|---|---|")
    print(f"| training loop (steps/s) | {best_ours[0]:.2f} | {best_theirs[0]:.2f} | "
          f"{best_ours[0] / best_theirs[0]:.2f}x |")
    print(f"| start-up + wrap-up (s) | {start_ours:.1f} | {start_theirs:.1f} | "
          f"+{start_ours - start_theirs:.1f} s |")
    print(f"| whole process (s) | {min(r[2] for r in ours):.1f} | "
          f"{min(r[2] for r in theirs):.1f} | |")


if __name__ == "__main__":
    main()
