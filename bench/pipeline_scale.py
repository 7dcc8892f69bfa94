"""Import + quality + dedup + decontam on millions of SFT rows (issue 13 item 9): time and RSS.

Makes an SFT-like Parquet file of ``--rows`` rows (paired ON/OFF answers, ~250 bytes each,
1% of prompts repeated, 2% of answers malformed, a benchmark file sharing 0.1% of the
prompts), then runs the CLI a step at a time, each in a fresh process, and prints wall
time and peak RSS (``wait4``) per step.  Filters run with ``--memory-limit`` (default
2GiB), so their kept and rejected rows are written as several sorted ranges.

    python bench/pipeline_scale.py --rows 3000000
    python bench/pipeline_scale.py --rows 200000 --memory-limit 256MiB   # quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent


def make_sft(path: Path, rows: int, seed: int = 0) -> list[str]:
    """Write the SFT file; return the prompts a benchmark will share with it."""
    rng = np.random.default_rng(seed)
    pairs = rows // 2
    words = np.array(["apples", "trains", "numbers", "friends", "boxes", "coins", "miles",
                      "pages", "cookies", "marbles", "tickets", "hours"])
    a, b = rng.integers(1, 10_000, pairs), rng.integers(1, 10_000, pairs)
    w1, w2 = words[rng.integers(0, len(words), pairs)], words[rng.integers(0, len(words), pairs)]
    src = np.arange(pairs)
    repeat = rng.random(pairs) < 0.01  # 1% of prompts are copies of another prompt
    src[repeat] = rng.integers(0, pairs, int(repeat.sum()))
    prompts = [f"Sam has {a[s]} {w1[s]} and buys {b[s]} more {w2[s]} at the market on day {s}. "
               f"How many {w1[s]} and {w2[s]} does Sam have now, counted together?" for s in src]
    bad = rng.random(rows) < 0.02
    out, reasoning, prompt_col = [], [], []
    for i in range(rows):
        p = i // 2
        total = int(a[src[p]] + b[src[p]])
        on = i % 2 == 0
        reasoning.append("on" if on else "off")
        prompt_col.append(prompts[p])
        if bad[i]:
            out.append("<think>unfinished" if on else "<think>x</think> stray")
        elif on:
            out.append(f"<think>{a[src[p]]} plus {b[src[p]]} is {total}.</think>\n\nThe answer is {total}.")
        else:
            out.append(f"The answer is {total}.")
    table = pa.table({
        "id": [f"s{i:09d}" for i in range(rows)], "prompt_id": [f"p{i // 2:09d}" for i in range(rows)],
        "pair_id": [f"p{i // 2:09d}" for i in range(rows)], "category": ["math"] * rows,
        "reasoning": reasoning, "system_prompt": [f"detailed thinking {r}" for r in reasoning],
        "question": prompt_col, "output": out, "generator": ["bench-teacher"] * rows,
        "output_tokens": np.full(rows, 40), "finish_reason": ["stop"] * rows})
    pq.write_table(table, path, compression="zstd", row_group_size=122_880)
    return [prompts[p] for p in rng.choice(pairs, max(1, pairs // 1000), replace=False)]


def run(label: str, args: list[str], env: dict, tmp: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one CLI process."""
    start = time.perf_counter()
    with (tmp / "out.txt").open("w") as out, (tmp / "err.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "thinkforge", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{(tmp / 'err.txt').read_text()[-3000:]}")
    print(f"{label}: {seconds:.1f} s, {(tmp / 'out.txt').read_text().strip()}", file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def make_files(data: Path, bench: Path, rows: int) -> None:
    import json

    shared = make_sft(data, rows)
    bench.write_text("".join(json.dumps({"id": f"b{i}", "question": q}) + "\n"
                             for i, q in enumerate(shared)), encoding="utf-8")


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make_files(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--near", action="store_true", help="dedup with MinHash near duplicates too (slow)")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        t = time.perf_counter()
        data = tmp / "sft.parquet"
        bench = tmp / "bench.jsonl"
        # made in a child process: a child's peak RSS (wait4) starts from its parent's size at
        # fork, so a parent holding the 3M rows made every step look 2.8 GiB
        subprocess.run([sys.executable, __file__, "--make", str(data), str(bench), str(args.rows)],
                       check=True, cwd=ROOT)
        print(f"data: {args.rows:,} rows, {data.stat().st_size / 2**20:,.0f} MiB Parquet "
              f"(made in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        env = dict(os.environ, PYTHONPATH=str(ROOT), THINKFORGE_STORE=str(tmp / "store"))
        mem = ["--memory-limit", args.memory_limit]
        steps = [
            ("import", ["import", str(data), "--name", "sft", "--kind", "sft", "--map", "input=question",
                        "--on-duplicate", "fail"]),
            ("filter quality", ["filter", "quality", "sft", "--name", "sft-q", *mem]),
            ("filter dedup", ["filter", "dedup", "sft-q", "--name", "sft-d", *mem]
             + ([] if args.near else ["--no-near"])),
            ("filter decontam", ["filter", "decontam", "sft-d", "--against", str(bench), "--name", "sft-c", *mem]),
        ]
        results = []
        for label, cmd in steps:
            seconds, rss = run(label, ["--quiet", *cmd], env, tmp)
            results.append((label, seconds, rss))
        rows = subprocess.run([sys.executable, "-m", "thinkforge", "sql", "--format", "csv",
                               "SELECT (SELECT count(*) FROM \"sft-q\"), (SELECT count(*) FROM \"sft-d\"), "
                               "(SELECT count(*) FROM \"sft-c\")"],
                              env=env, cwd=ROOT, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"\n{args.rows:,} SFT rows, filters with --memory-limit {args.memory_limit}"
          f"{'' if args.near else ', dedup exact only'}; rows after quality, dedup, decontam: {rows}\n")
    print("| step | seconds | rows/s | peak RSS |")
    print("|---|---|---|---|")
    for label, seconds, rss in results:
        print(f"| {label} | {seconds:.1f} | {args.rows / seconds:,.0f} | {rss:,.0f} MiB |")
    print(f"| total | {sum(r[1] for r in results):.1f} | | |")


if __name__ == "__main__":
    main()
