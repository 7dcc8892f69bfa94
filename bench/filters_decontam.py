"""Decontamination of N rows against benchmark items: thinkforge vs a naive Python set loop.

Data: random texts (30-80 words, 20k-word vocabulary) and benchmark items; a share of the
rows gets a planted span of 13-30 consecutive words copied from a random benchmark item.
Both engines flag rows sharing at least one word 13-gram with an item and name the item.
Recall: planted rows flagged with the item they were planted from.  thinkforge is timed end
to end through the store (read, hash, join, write kept + rejected); the naive loop starts
from Python lists already in memory.

    python bench/filters_decontam.py --rows 1000000 --items 10000
    python bench/filters_decontam.py --rows 50000 --items 2000    # quick
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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


def run_naive(data, bench):
    start = time.perf_counter()
    grams = {}
    for i, text in enumerate(bench):
        toks = words(text)
        for j in range(len(toks) - N + 1):
            grams.setdefault(tuple(toks[j:j + N]), f"b{i:06d}")
    hits = {}
    for i, text in enumerate(data):
        toks = words(text)
        for j in range(len(toks) - N + 1):
            item = grams.get(tuple(toks[j:j + N]))
            if item is not None:
                hits[f"r{i:08d}"] = item
                break
    return hits, time.perf_counter() - start


def run_thinkforge(data, bench, work: Path):
    import pyarrow.parquet as pq

    from filters.base import Resources
    from filters.decontam import run_decontam
    from manifests import DatasetStore

    store = DatasetStore(work / "store")

    def version(name, texts, prefix):
        n = len(texts)
        with store.writer(name, "prompts", step={"type": "bench"}) as w:
            w.write(pa.table({"id": [f"{prefix}{i:0{8 if prefix == 'r' else 6}d}" for i in range(n)],
                              "source": [name] * n, "category": ["math"] * n,
                              "input": [[{"role": "user", "content": t}] for t in texts],
                              "verifier": ["none"] * n}))
        return w.manifest

    rows, items = version("rows", data, "r"), version("bench", bench, "b")
    start = time.perf_counter()
    m = run_decontam(store, rows, [items], "clean", resources=Resources(memory_limit="1GiB"))
    seconds = time.perf_counter() - start
    hits = {}
    for p in store.rejected_paths(m):
        t = pq.read_table(p, columns=["id", "matched_item"])
        hits.update(zip(t.column("id").to_pylist(), t.column("matched_item").to_pylist()))
    return hits, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--planted", type=float, default=0.01)
    args = ap.parse_args()
    data, bench, truth = make_data(args.rows, args.items, args.planted)
    print(f"{args.rows:,} rows, {args.items:,} benchmark items, {len(truth):,} planted overlaps",
          file=sys.stderr)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tf-decontam-") as tmp:
        results["thinkforge"] = run_thinkforge(data, bench, Path(tmp))
    results["naive loop"] = run_naive(data, bench)
    ours = results["thinkforge"][1]
    print(f"{'engine':<11} {'seconds':>8} {'rows/s':>10} {'flagged':>8} {'planted recall':>14} "
          f"{'right item':>10} {'ours faster by':>15}")
    for engine, (hits, seconds) in results.items():
        found = sum(1 for r in truth if r in hits)
        right = sum(1 for r, item in truth.items() if hits.get(r) == item)
        ratio = f"{seconds / ours:.2f}x" if engine != "thinkforge" else ""
        print(f"{engine:<11} {seconds:>8.2f} {args.rows / seconds:>10,.0f} {len(hits):>8,} "
              f"{found / len(truth):>14.4f} {right / len(truth):>10.4f} {ratio:>15}")


if __name__ == "__main__":
    main()
