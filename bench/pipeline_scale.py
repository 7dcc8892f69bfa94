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

    Vectorised (numpy gathers and Arrow string kernels, no Python loop per row) and written
    in ``batch``-row chunks, so memory stays bounded (~1 GiB) at any ``rows``: ~10 s per 1M
    rows on this machine, where the row-at-a-time version took ~55 s.
    """
    import pyarrow.compute as pc

    from bench.selection_chain import text_buffer

    rng = np.random.default_rng(seed)
    # 64 MiB of random words, repeated: a chunk's bodies are consecutive slices of it from a
    # random start, an Arrow array over the buffer itself (no per-byte gather)
    words64 = text_buffer(rng, 64 << 20)
    span = 64 << 20
    buf = pa.py_buffer(words64 * (2 + (batch * 1_000) // span))
    pairs = (rows + 1) // 2
    words = pa.array(["apples", "trains", "numbers", "friends", "boxes", "coins", "miles",
                      "pages", "cookies", "marbles", "tickets", "hours"])
    categories = pa.array(["math", "code", "science", "chat", "safety"])
    a = rng.integers(1, 10_000, pairs, dtype=np.int32)
    b = rng.integers(1, 10_000, pairs, dtype=np.int32)
    w1 = rng.integers(0, len(words), pairs, dtype=np.int8)
    w2 = rng.integers(0, len(words), pairs, dtype=np.int8)
    src = np.arange(pairs)
    repeat = rng.random(pairs) < 0.01  # 1% of prompts are copies of another prompt
    src[repeat] = rng.integers(0, pairs, int(repeat.sum()))
    shared = rng.choice(pairs, max(1, pairs // 1000), replace=False)

    def text(x: np.ndarray) -> pa.Array:
        return pc.cast(pa.array(x), pa.string())

    def join(*parts) -> pa.Array:
        return pc.binary_join_element_wise(*parts, "")

    def prompts(s: np.ndarray) -> pa.Array:
        x, y = words.take(w1[s]), words.take(w2[s])
        return join("Sam has ", text(a[s]), " ", x, " and buys ", text(b[s]), " more ", y,
                    " at the market on day ", text(s), ". How many ", x, " and ", y,
                    " does Sam have now, counted together?")

    def padded(prefix: str, k: np.ndarray) -> pa.Array:
        return join(prefix, pc.utf8_lpad(text(k), 9, "0"))

    def const(v: str, n: int) -> pa.Array:
        return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), [v]).cast(pa.string())

    writer = None
    try:
        for lo in range(0, rows, batch):
            n = min(batch, rows - lo)
            i = np.arange(lo, lo + n)
            p = src[i // 2]
            on = pa.array(i % 2 == 0)
            lengths = np.clip(rng.lognormal(np.log(440), 0.8, n), 20, 60_000).astype(np.int64)
            offsets = np.empty(n + 1, dtype=np.int64)
            offsets[0] = rng.integers(0, span)
            np.cumsum(lengths, out=offsets[1:])
            offsets[1:] += offsets[0]
            if offsets[-1] > buf.size:  # ~1,000 bytes a row on average: never at these lengths
                raise SystemExit(f"chunk of {n} outputs is {offsets[-1]:,} bytes: lower batch")
            body = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), buf)
            sa, sb, st = text(a[p]), text(b[p]), text(a[p] + b[p])
            good = pc.if_else(on, join("<think>", body, " so ", sa, " plus ", sb, " is ", st,
                                       ".</think>\n\nThe answer is ", st, "."),
                              join(body, " The answer is ", st, "."))
            bad = pa.array(rng.random(n) < 0.02)
            out = pc.if_else(bad, pc.if_else(on, pa.scalar("<think>unfinished"),
                                             pa.scalar("<think>x</think> stray")), good)
            reasoning = pc.if_else(on, pa.scalar("on"), pa.scalar("off"))
            pair = padded("p", i // 2)
            table = pa.table({
                "id": padded("s", i), "prompt_id": pair, "pair_id": pair,
                "category": categories.take(p % len(categories)), "reasoning": reasoning,
                "system_prompt": join("detailed thinking ", reasoning),
                "question": prompts(p), "output": out,
                "generator": const("bench-teacher", n), "license": const("cc-by-4.0", n),
                "version": const("v1", n), "used_in_training": const("sft", n),
                "output_tokens": lengths // 4 + 8, "finish_reason": const("stop", n)})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=122_880)
            del table, body, good, out
    finally:
        if writer is not None:
            writer.close()
    return prompts(src[shared]).to_pylist()


def copy_parquet(src: Path, dst: Path) -> None:
    """The import's floor: read the input Parquet in the importer's batches and write it
    again (zstd, 100k-row writes), nothing else: no mapping, checks, digests or stats."""
    pf = pq.ParquetFile(src)
    pending, rows = [], 0
    with pq.ParquetWriter(dst, pf.schema_arrow, compression="zstd") as writer:
        for batch in (b for g in range(pf.num_row_groups)  # one row group at a time, as import reads
                      for b in pf.iter_batches(batch_size=10_000, row_groups=[g])):
            pending.append(batch)
            rows += batch.num_rows
            if rows >= 100_000:
                writer.write_table(pa.Table.from_batches(pending))
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending))


def run(label: str, cmd: list[str], env: dict, tmp: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, all threads) and peak RSS (MiB) of one child
    process (``cmd`` after the Python interpreter)."""
    start = time.perf_counter()
    with (tmp / "out.txt").open("w") as out, (tmp / "err.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, *cmd], env=env, cwd=ROOT, stdout=out, stderr=err)
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


PHASES = ("make", "floor", "import", "quality", "dedup", "decontam", "near")


def phase_step(phase: str, tmp: Path, rows: int, memory_limit: str, near: bool
               ) -> tuple[str, str | None, list[str]]:
    """(label, version written, command after the interpreter) of one phase."""
    data, bench = tmp / "sft.parquet", tmp / "bench.jsonl"
    mem = ["--memory-limit", memory_limit]
    cli = ["-m", "thinkforge", "--quiet"]
    # the data is made in a child process too: a child's peak RSS (wait4) starts from its
    # parent's size at fork, so a parent holding the rows made every step look 2.8 GiB
    return {
        "make": ("make data", None, [__file__, "--make", str(data), str(bench), str(rows)]),
        "floor": ("floor: read + write the Parquet", None, [__file__, "--copy", str(data), str(tmp / "copy.parquet")]),
        "import": ("import", "sft", [*cli, "import", str(data), "--name", "sft", "--kind", "sft",
                                     "--map", "input=question", "--on-duplicate", "fail"]),
        "quality": ("filter quality", "sft-q", [*cli, "filter", "quality", "sft", "--name", "sft-q", *mem]),
        "dedup": ("filter dedup" + (" (exact + near)" if near else " (exact)"), "sft-d",
                  [*cli, "filter", "dedup", "sft-q", "--name", "sft-d", *mem] + ([] if near else ["--no-near"])),
        "decontam": ("filter decontam", "sft-c", [*cli, "filter", "decontam", "sft-d", "--against",
                                                  str(bench), "--name", "sft-c", *mem]),
        # near dedup on its own: exact + MinHash/LSH over the quality version, beside sft-d
        "near": ("filter dedup (exact + near)", "sft-n", [*cli, "filter", "dedup", "sft-q", "--name",
                                                          "sft-n", *mem]),
    }[phase]


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def run_phase(phase: str, tmp: Path, rows: int, memory_limit: str, near: bool = False) -> dict:
    """Run one phase in a fresh child process; its record (also appended to results.jsonl)."""
    import datetime
    import json

    label, name, cmd = phase_step(phase, tmp, rows, memory_limit, near)
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKFORGE_STORE=str(tmp / "store"))
    load0, started = os.getloadavg()[0], datetime.datetime.now(datetime.UTC)
    seconds, cpu, rss = run(label, cmd, env, tmp)
    if phase == "floor":
        written = (tmp / "copy.parquet").stat().st_size
        (tmp / "copy.parquet").unlink()
    elif name is None:
        written = sum(f.stat().st_size for f in (tmp / "sft.parquet", tmp / "bench.jsonl"))
    else:
        written = version_bytes(tmp / "store", name)
    record = {"phase": phase, "label": label, "rows": rows, "wall": seconds, "cpu": cpu, "rss_mib": rss,
              "bytes": written, "commit": commit(), "start": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
              "load_before": load0, "load_after": os.getloadavg()[0], "memory_limit": memory_limit}
    with (tmp / "results.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def counts(tmp: Path, names: list[str]) -> dict[str, int]:
    store = tmp / "store"
    have = [n for n in names if (store / "datasets" / n).exists()]
    if not have:
        return {}
    env = dict(os.environ, PYTHONPATH=str(ROOT), THINKFORGE_STORE=str(store))
    query = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{n}")' for n in have)
    out = subprocess.run([sys.executable, "-m", "thinkforge", "sql", "--format", "csv", query],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(zip(have, map(int, out.stdout.strip().splitlines()[-1].split(",")), strict=True))


def report(records: list[dict], rows: int, target: int, counted: dict[str, int],
           near_records: list[dict]) -> None:
    """The markdown table: measured per step, extrapolated linearly to ``target`` rows when
    the run was smaller."""
    scale = target / rows
    extra = scale != 1
    loads = [r["load_before"] for r in records] + [r["load_after"] for r in records]
    commits = sorted({r["commit"] for r in records})
    parquet = next((r["bytes"] for r in records if r["phase"] == "make"), None)
    print(f"\n{rows:,} SFT rows{f' ({parquet / 2**20:,.0f} MiB of input Parquet + benchmark)' if parquet else ''}"
          f"; rows after {', '.join(f'{k} {v:,}' for k, v in counted.items())}; load average "
          f"{min(loads):.2f}-{max(loads):.2f}; commit(s) {', '.join(commits)}\n")
    head = "| step | started | commit | wall s | CPU s | rows/s (wall) | peak RSS | bytes written |"
    print(head + (f" extrapolated to {target / 1e6:g}M rows (wall, linear) |" if extra else ""))
    print("|---" * (9 if extra else 8) + "|")
    for r in records:
        print(f"| {r['label']} | {r['start'][11:16]} | {r['commit']} | {r['wall']:.1f} | {r['cpu']:.1f} | "
              f"{rows / r['wall']:,.0f} | {r['rss_mib']:,.0f} MiB | {r['bytes']:,d} |"
              + (f" {r['wall'] * scale / 60:.1f} min |" if extra else ""))
    floor = next((r for r in records if r["phase"] == "floor"), None)
    imp = next((r for r in records if r["phase"] == "import"), None)
    if floor and imp:
        mb = next((r["bytes"] for r in records if r["phase"] == "make"), 0) / 2**20
        print(f"| **import / floor** | | | **{imp['wall'] / floor['wall']:.2f}x** | "
              f"{imp['cpu'] / floor['cpu']:.2f}x | floor reads {mb / floor['wall']:,.0f} MiB/s of "
              f"Parquet | | |" + (" |" if extra else ""))
    filters = [r for r in records if r["phase"] in ("quality", "dedup", "decontam")]
    if filters:
        fw, fc = sum(r["wall"] for r in filters), sum(r["cpu"] for r in filters)
        print(f"| **quality + dedup + decontam** | | | **{fw:.1f}** ({fw / 60:.1f} min) | {fc:.1f} | "
              f"{rows / fw:,.0f} | {max(r['rss_mib'] for r in filters):,.0f} MiB | "
              f"{sum(r['bytes'] for r in filters):,d} |"
              + (f" **{fw * scale / 60:.1f} min** ({fc * scale / 60:.1f} CPU-min) |" if extra else ""))
    for r in near_records:
        per_row = r["wall"] / r["rows"]
        how = "measured" if r["rows"] == target else f"measured at {r['rows']:,} rows, linear"
        print(f"\nnear dedup (exact + MinHash/LSH on the prompts, {r['rows']:,} rows): {r['wall']:.1f} s "
              f"wall, {r['cpu']:.1f} s CPU, {r['rss_mib']:,.0f} MiB -> {per_row * target / 60:.1f} min at "
              f"{target:,} rows ({how})")


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make_files(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    if sys.argv[1:2] == ["--copy"]:
        copy_parquet(Path(sys.argv[2]), Path(sys.argv[3]))
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
    ap.add_argument("--dir", default=None,
                    help="a persistent run directory (data, store, results.jsonl): with --phase, "
                         "each step can run in its own process and lock hold")
    ap.add_argument("--phase", action="append", choices=(*PHASES, "report"),
                    help="run only these phases over --dir (repeatable; 'near' is exact + near "
                         "dedup over the quality version; 'report' prints the table of every "
                         "phase recorded in --dir)")
    args = ap.parse_args()
    if args.phase:
        if args.dir is None:
            ap.error("--phase needs --dir")
        tmp = Path(args.dir)
        tmp.mkdir(parents=True, exist_ok=True)
        for phase in args.phase:
            if phase != "report":
                run_phase(phase, tmp, args.rows, args.memory_limit, args.near)
        if "report" in args.phase:
            import json

            records = [json.loads(line) for line in (tmp / "results.jsonl").read_text().splitlines()]
            latest = {r["phase"]: r for r in records if r["rows"] == args.rows}  # the last of each
            main_steps = [latest[p] for p in PHASES if p in latest and p != "near"]
            report(main_steps, args.rows, args.target_rows, counts(tmp, ["sft", "sft-q", "sft-d", "sft-c", "sft-n"]),
                   [latest["near"]] if "near" in latest else [])
        return
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        records = [run_phase(p, tmp, args.rows, args.memory_limit, args.near)
                   for p in ("make", "floor", "import", "quality", "dedup", "decontam")]
        counted = counts(tmp, ["sft", "sft-q", "sft-d", "sft-c"])
    near = []
    if args.near_rows:
        with tempfile.TemporaryDirectory(dir=args.tmp) as d:
            for p in ("make", "import", "quality"):
                run_phase(p, Path(d), args.near_rows, args.memory_limit)
            near.append(run_phase("near", Path(d), args.near_rows, args.memory_limit))
    report(records, args.rows, args.target_rows, counted, near)


if __name__ == "__main__":
    main()
