"""Import + quality + dedup + decontam on millions of SFT rows (issues 13, 15): time and RSS.

Makes an SFT Parquet file of ``--rows`` rows (the Llama-Nemotron schema, paired ON/OFF
answers of log-normal length, ~600 bytes on average; 1% of prompts repeated, 2% of answers
malformed; a benchmark file sharing 0.1% of the prompts), then runs the CLI a step at a
time, each in a fresh process, and prints wall time and peak RSS (``wait4``) per step.
Filters run with ``--memory-limit`` (default 2GiB).

    python bench/pipeline_scale.py --rows 3000000 --near-rows 300000
    python bench/pipeline_scale.py --rows 200000 --memory-limit 256MiB   # quick

Prints wall and CPU time, peak RSS and the bytes each step wrote (a filter writes a
selection: positions, not rows), and extrapolates the filters linearly to ``--target-rows``
(default 33M, the paper's corpus); ``--near-rows`` also times exact + near dedup on a
separate, smaller run and extrapolates it.
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


def make_sft(path: Path, rows: int, seed: int = 0, batch: int = 500_000) -> list[str]:
    """Write the SFT file; return the prompts a benchmark will share with it.

    The Llama-Nemotron post-training schema (input messages, output, reasoning on/off with its
    system prompt, category, license, generator, version, used_in_training); outputs of random
    words with a log-normal length (median ~440 bytes, mean ~600, 1% over 3 KB: a realistic
    long tail scaled down to fit this machine's disk), ON answers a ``<think>`` block plus a
    final answer line; 1% of prompts repeated, 2% of answers malformed.
    """
    from bench.selection_chain import slices, text_buffer

    rng = np.random.default_rng(seed)
    buf = np.frombuffer(text_buffer(rng, 64 << 20), dtype=np.uint8)
    pairs = rows // 2
    words = np.array(["apples", "trains", "numbers", "friends", "boxes", "coins", "miles",
                      "pages", "cookies", "marbles", "tickets", "hours"])
    categories = np.array(["math", "code", "science", "chat", "safety"])
    a, b = rng.integers(1, 10_000, pairs), rng.integers(1, 10_000, pairs)
    w1, w2 = words[rng.integers(0, len(words), pairs)], words[rng.integers(0, len(words), pairs)]
    src = np.arange(pairs)
    repeat = rng.random(pairs) < 0.01  # 1% of prompts are copies of another prompt
    src[repeat] = rng.integers(0, pairs, int(repeat.sum()))
    shared = rng.choice(pairs, max(1, pairs // 1000), replace=False)

    def prompt(s: int) -> str:
        return (f"Sam has {a[s]} {w1[s]} and buys {b[s]} more {w2[s]} at the market on day {s}. "
                f"How many {w1[s]} and {w2[s]} does Sam have now, counted together?")

    writer = None
    try:
        for lo in range(0, rows, batch):
            n = min(batch, rows - lo)
            i = np.arange(lo, lo + n)
            p = src[i // 2]
            on = i % 2 == 0
            lengths = np.clip(rng.lognormal(np.log(440), 0.8, n), 20, 60_000).astype(np.int64)
            bodies = slices(buf, rng.integers(0, len(buf) - lengths.max() - 1, n), lengths).to_pylist()
            total = a[p] + b[p]
            bad = rng.random(n) < 0.02
            out = [("<think>unfinished" if o else "<think>x</think> stray") if x else
                   (f"<think>{body} so {a_} plus {b_} is {t}.</think>\n\nThe answer is {t}." if o
                    else f"{body} The answer is {t}.")
                   for body, o, x, a_, b_, t in zip(bodies, on, bad, a[p], b[p], total, strict=True)]
            reasoning = np.where(on, "on", "off")
            table = pa.table({
                "id": [f"s{k:09d}" for k in i], "prompt_id": [f"p{k // 2:09d}" for k in i],
                "pair_id": [f"p{k // 2:09d}" for k in i],
                "category": categories[p % len(categories)], "reasoning": reasoning,
                "system_prompt": np.char.add("detailed thinking ", reasoning),
                "question": [prompt(s) for s in p.tolist()], "output": out,
                "generator": ["bench-teacher"] * n, "license": ["cc-by-4.0"] * n,
                "version": ["v1"] * n, "used_in_training": ["sft"] * n,
                "output_tokens": lengths // 4 + 8,
                "finish_reason": ["stop"] * n})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=122_880)
    finally:
        if writer is not None:
            writer.close()
    return [prompt(int(s)) for s in src[shared]]


def run(label: str, args: list[str], env: dict, tmp: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all threads) and peak RSS (MiB) of one CLI
    process."""
    start = time.perf_counter()
    with (tmp / "out.txt").open("w") as out, (tmp / "err.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "thinkforge", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{(tmp / 'err.txt').read_text()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{label}: {seconds:.1f} s wall, {cpu:.1f} s CPU, {usage.ru_maxrss / 1024:,.0f} MiB, "
          f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    return seconds, cpu, usage.ru_maxrss / 1024  # KiB on Linux


def make_files(data: Path, bench: Path, rows: int) -> None:
    import json

    shared = make_sft(data, rows)
    bench.write_text("".join(json.dumps({"id": f"b{i}", "question": q}) + "\n"
                             for i, q in enumerate(shared)), encoding="utf-8")


def version_bytes(store: Path, name: str) -> int:
    return sum(f.stat().st_size for f in (store / "datasets" / name).rglob("*") if f.is_file())


def pipeline(tmp: Path, rows: int, memory_limit: str, near: bool) -> tuple[list, dict]:
    """Make the data, then import + quality + dedup + decontam, each a fresh CLI process."""
    t = time.perf_counter()
    data, bench = tmp / "sft.parquet", tmp / "bench.jsonl"
    # made in a child process: a child's peak RSS (wait4) starts from its parent's size at
    # fork, so a parent holding the rows made every step look 2.8 GiB
    subprocess.run([sys.executable, __file__, "--make", str(data), str(bench), str(rows)],
                   check=True, cwd=ROOT)
    print(f"data: {rows:,} rows, {data.stat().st_size / 2**20:,.0f} MiB Parquet "
          f"(made in {time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKFORGE_STORE=str(tmp / "store"))
    mem = ["--memory-limit", memory_limit]
    steps = [
        ("import", "sft", ["import", str(data), "--name", "sft", "--kind", "sft", "--map",
                           "input=question", "--on-duplicate", "fail"]),
        ("filter quality", "sft-q", ["filter", "quality", "sft", "--name", "sft-q", *mem]),
        ("filter dedup" + (" (exact + near)" if near else " (exact)"), "sft-d",
         ["filter", "dedup", "sft-q", "--name", "sft-d", *mem] + ([] if near else ["--no-near"])),
        ("filter decontam", "sft-c", ["filter", "decontam", "sft-d", "--against", str(bench),
                                      "--name", "sft-c", *mem]),
    ]
    results = []
    for label, name, cmd in steps:
        seconds, cpu, rss = run(label, ["--quiet", *cmd], env, tmp)
        results.append((label, seconds, cpu, rss, version_bytes(tmp / "store", name)))
    counts = subprocess.run(
        [sys.executable, "-m", "thinkforge", "sql", "--format", "csv",
         "SELECT (SELECT count(*) FROM \"sft-q\"), (SELECT count(*) FROM \"sft-d\"), "
         "(SELECT count(*) FROM \"sft-c\")"],
        env=env, cwd=ROOT, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return results, {"counts": counts, "parquet_mib": data.stat().st_size / 2**20}


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make_files(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--memory-limit", default="2GiB")
    ap.add_argument("--near", action="store_true", help="dedup with MinHash near duplicates too (slow)")
    ap.add_argument("--near-rows", type=int, default=0,
                    help="also time exact + near dedup on a separate run of this many rows and "
                         "extrapolate it linearly (0: skip)")
    ap.add_argument("--target-rows", type=int, default=33_000_000,
                    help="row count to extrapolate to (the paper's 33M)")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        results, info = pipeline(Path(d), args.rows, args.memory_limit, args.near)
    near = None
    if args.near_rows:
        with tempfile.TemporaryDirectory(dir=args.tmp) as d:
            near_results, _ = pipeline(Path(d), args.near_rows, args.memory_limit, True)
            near = near_results[2]
    load1 = os.getloadavg()
    scale = args.target_rows / args.rows
    print(f"\n{args.rows:,} SFT rows ({info['parquet_mib']:,.0f} MiB Parquet), filters with "
          f"--memory-limit {args.memory_limit}{'' if args.near else ', dedup exact only'}; rows "
          f"after quality, dedup, decontam: {info['counts']}; load average {load0[0]:.2f} before, "
          f"{load1[0]:.2f} after\n")
    print(f"| step | wall s | CPU s | rows/s (wall) | peak RSS | bytes written | "
          f"extrapolated to {args.target_rows / 1e6:g}M rows (wall, linear) |")
    print("|---|---|---|---|---|---|---|")
    for label, seconds, cpu, rss, nbytes in results:
        print(f"| {label} | {seconds:.1f} | {cpu:.1f} | {args.rows / seconds:,.0f} | {rss:,.0f} MiB | "
              f"{nbytes:,d} | {seconds * scale / 60:.1f} min |")
    filters = [r for r in results if r[0] != "import"]
    fw, fc = sum(r[1] for r in filters), sum(r[2] for r in filters)
    print(f"| quality + dedup + decontam | {fw:.1f} | {fc:.1f} | | {max(r[3] for r in filters):,.0f} "
          f"MiB | {sum(r[4] for r in filters):,d} | **{fw * scale / 60:.1f} min** "
          f"({fc * scale / 60:.1f} CPU-min; {fc * scale / 120:.1f} min if both cores stay busy) |")
    if near is not None:
        label, seconds, cpu, rss, _ = near
        per_row = seconds / args.near_rows
        print(f"\nnear dedup (exact + MinHash/LSH, {args.near_rows:,} rows measured): {seconds:.1f} s "
              f"wall, {cpu:.1f} s CPU, {rss:,.0f} MiB -> {per_row * args.rows / 60:.1f} min at "
              f"{args.rows:,} rows, {per_row * args.target_rows / 60:.1f} min at "
              f"{args.target_rows:,} rows (linear)")


if __name__ == "__main__":
    main()
