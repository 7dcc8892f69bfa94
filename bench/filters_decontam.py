"""Decontamination of N rows against benchmark items: thinkforge vs a naive Python set loop.

Data: random texts (30-80 words, 20k-word vocabulary) and benchmark items; a share of the
rows gets a planted span of 13-30 consecutive words copied from a random benchmark item.
Both engines flag rows sharing at least one word 13-gram with an item and name the item.
Recall: planted rows flagged with the item they were planted from.  Both are timed end to end
on the same work: read the rows and the benchmark from the store's Parquet shards, find the
hits, write the kept rows and the rejected rows (with the matched item) as zstd Parquet.
thinkforge also checks and checksums its shards and publishes a version.  The naive loop's
time without its reading and writing is printed too.

    python bench/filters_decontam.py --rows 1000000 --items 10000
    python bench/filters_decontam.py --rows 50000 --items 2000    # quick
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

WORD = re.compile(r"[^\w]+")
N = 13


def make_data(rows: int, items: int, planted: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])

    def texts(n):
        lengths = rng.integers(30, 81, size=n)
        words = vocab[rng.integers(0, len(vocab), size=int(lengths.sum()))]
        bounds = np.r_[0, np.cumsum(lengths)]
        return [" ".join(words[bounds[i]:bounds[i + 1]]) for i in range(n)]

    bench, data = texts(items), texts(rows)
    truth = {}
    for r in rng.choice(rows, size=int(rows * planted), replace=False).tolist():
        item = int(rng.integers(0, items))
        toks = bench[item].split()
        span = int(rng.integers(N, min(30, len(toks)) + 1))
        start = int(rng.integers(0, len(toks) - span + 1))
        row = data[r].split()
        at = int(rng.integers(0, len(row)))
        data[r] = " ".join(row[:at] + [t.capitalize() for t in toks[start:start + span]] + row[at:])
        truth[f"r{r:08d}"] = f"b{item:06d}"
    return data, bench, truth


def words(text: str) -> list[str]:
    return [t for t in WORD.split(text.lower()) if t]


def run_naive(store, rows, items, work: Path):
    """Python lists from the shards, a dict of benchmark 13-gram tuples, kept/rejected out."""
    import pyarrow.parquet as pq

    start = time.perf_counter()

    def texts(m):
        t = pq.read_table(store.shard_paths(m))
        return t, [" ".join(msg["content"] for msg in row) for row in t.column("input").to_pylist()]

    table, data = texts(rows)
    bench_table, bench = texts(items)
    bench_ids, ids = bench_table.column("id").to_pylist(), table.column("id").to_pylist()
    loop = time.perf_counter()
    grams = {}
    for i, text in enumerate(bench):
        toks = words(text)
        for j in range(len(toks) - N + 1):
            grams.setdefault(tuple(toks[j:j + N]), bench_ids[i])
    hits = {}
    for i, text in enumerate(data):
        toks = words(text)
        for j in range(len(toks) - N + 1):
            item = grams.get(tuple(toks[j:j + N]))
            if item is not None:
                hits[ids[i]] = item
                break
    loop = time.perf_counter() - loop
    flagged = pa.array([i in hits for i in ids])
    pq.write_table(table.filter(pa.compute.invert(flagged)), work / "naive-kept.parquet",
                   compression="zstd")
    pq.write_table(table.filter(flagged).append_column(
        "matched_item", pa.array([hits[i] for i in ids if i in hits], pa.string())),
        work / "naive-rejected.parquet", compression="zstd")
    return hits, time.perf_counter() - start, loop


def run_thinkforge(store, rows, items, trace: bool = False):
    import cProfile
    import pstats
    from contextlib import nullcontext

    from sqltrace import traced  # bench/ is on the path of a script run from it
    from thinkforge.filters.base import Resources
    from thinkforge.filters.decontam import run_decontam

    profile = cProfile.Profile() if trace else None
    start = time.perf_counter()
    with traced(0.05) if trace else nullcontext():
        if profile:
            profile.enable()
        m = run_decontam(store, rows, [items], "clean", resources=Resources(memory_limit="1GiB"))
        if profile:
            profile.disable()
    seconds = time.perf_counter() - start
    if profile:  # where the main thread's time went ('acquire': waiting for DuckDB's next batch)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(14)
    from thinkforge.manifests.selection import read_rejected  # plain shards or a selection's positions

    t = read_rejected(store, m)
    hits = dict(zip(t.column("id").to_pylist(), t.column("matched_item").to_pylist(), strict=True))
    return hits, seconds, None


def make_versions(data, bench, work: Path):
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(work / "store")

    def version(name, texts, prefix):
        n = len(texts)
        with store.writer(name, "prompts", step={"type": "bench"}) as w:
            w.write(pa.table({"id": [f"{prefix}{i:0{8 if prefix == 'r' else 6}d}" for i in range(n)],
                              "source": [name] * n, "category": ["math"] * n,
                              "input": [[{"role": "user", "content": t}] for t in texts],
                              "verifier": ["none"] * n}))
        return w.manifest

    return store, version("rows", data, "r"), version("bench", bench, "b")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--planted", type=float, default=0.01)
    ap.add_argument("--trace", action="store_true",
                    help="print the time of each DuckDB statement thinkforge runs (stderr)")
    args = ap.parse_args()
    data, bench, truth = make_data(args.rows, args.items, args.planted)
    print(f"{args.rows:,} rows, {args.items:,} benchmark items, {len(truth):,} planted overlaps",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tf-decontam-") as tmp:
        store, rows, items = make_versions(data, bench, Path(tmp))
        del data, bench
        print(f"load average before: {os.getloadavg()}", file=sys.stderr)
        results = {"thinkforge": run_thinkforge(store, rows, items, args.trace),
                    "naive loop": run_naive(store, rows, items, Path(tmp))}
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    ours = results["thinkforge"][1]
    print(f"{'engine':<11} {'seconds':>8} {'rows/s':>10} {'flagged':>8} {'planted recall':>14} "
          f"{'right item':>10} {'ours faster by':>15}")
    for engine, (hits, seconds, loop) in results.items():
        found = sum(1 for r in truth if r in hits)
        right = sum(1 for r, item in truth.items() if hits.get(r) == item)
        ratio = f"{seconds / ours:.2f}x" if engine != "thinkforge" else ""
        print(f"{engine:<11} {seconds:>8.2f} {args.rows / seconds:>10,.0f} {len(hits):>8,} "
              f"{found / len(truth):>14.4f} {right / len(truth):>10.4f} {ratio:>15}")
        if loop is not None:
            print(f"{'  loop only':<11} {loop:>8.2f} {args.rows / loop:>10,.0f} {'':>8} {'':>14} "
                  f"{'':>10} {loop / ours:>14.2f}x")


if __name__ == "__main__":
    main()
