"""Exact + near dedup on synthetic prompts with planted duplicates: thinkforge vs datasketch.

Data: random texts of 25-60 words from a 20k-word vocabulary; a share of them gets planted
copies (exact copies with changed case/spacing, and near copies with 1-3 word edits).
Truth: the exact Jaccard of word 5-shingle sets, computed for every pair inside a planted
group (unrelated random texts share no 5-shingle).  A row *should be removed* when it is in
a group of rows linked by true pairs (Jaccard >= threshold) and is not its smallest id.
Both engines then do the same thing: exact duplicates by normalised text, MinHash + LSH
candidates, candidates verified by the estimated Jaccard, clusters, keep the smallest id.
Precision and recall are over removed rows; throughput is rows per second end to end
(thinkforge includes reading and writing the store; datasketch starts from Python lists).

    python bench/filters_dedup.py --rows 1000000
    python bench/filters_dedup.py --rows 50000       # quick
    python bench/filters_dedup.py --rows 200000 --dask 2   # local vs Dask, thinkforge only
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
WORD = re.compile(r"[^\w]+")


def make_texts(n: int, share: float, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """Texts and the planted groups (lists of row indices that started from one text)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    n_sources = int(n * (1 - share))
    lengths = rng.integers(25, 61, size=n_sources)
    words = rng.integers(0, len(vocab), size=int(lengths.sum()))
    bounds = np.r_[0, np.cumsum(lengths)]
    texts = [" ".join(vocab[words[bounds[i]:bounds[i + 1]]]) for i in range(n_sources)]
    groups: dict[int, list[int]] = {}
    while len(texts) < n:
        src = int(rng.integers(0, n_sources))
        toks = texts[src].split()
        if rng.random() < 0.3:  # exact copy up to case and spacing
            text = "  " + " ".join(toks).upper()
        else:  # near copy: 1-3 edits
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(toks)))
                op = rng.random()
                if op < 0.4:
                    toks[pos] = str(vocab[rng.integers(0, len(vocab))])
                elif op < 0.7:
                    toks.insert(pos, str(vocab[rng.integers(0, len(vocab))]))
                elif len(toks) > 10:
                    del toks[pos]
            text = " ".join(toks)
        groups.setdefault(src, [src]).append(len(texts))
        texts.append(text)
    return texts, list(groups.values())


def shingles(text: str, k: int) -> set[tuple[str, ...]]:
    toks = [t for t in WORD.split(text.lower()) if t]
    if len(toks) < k:
        return {tuple(toks)}
    return {tuple(toks[i:i + k]) for i in range(len(toks) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def should_remove(texts, groups, ids, threshold, k) -> set[str]:
    from thinkforge.filters.minhash import connected_components

    left, right = [], []
    for group in groups:
        sets = {i: shingles(texts[i], k) for i in group}
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                if jaccard(sets[group[x]], sets[group[y]]) >= threshold:
                    left.append(group[x]), right.append(group[y])
    order = np.argsort(ids)  # component label = position in id order, smallest id wins
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    label = connected_components(len(ids), rank[np.array(left, dtype=np.int64)],
                                 rank[np.array(right, dtype=np.int64)])
    return {ids[order[r]] for r in np.flatnonzero(label != np.arange(len(ids)))}


def write_prompts(store, texts, ids):
    """The bench texts as a prompts version of ``store`` (its writer, for ``w.manifest``)."""
    n = len(texts)
    with store.writer("bench", "prompts", step={"type": "bench"}) as w:
        w.write(pa.table({"id": ids, "source": ["s"] * n, "category": ["math"] * n,
                          "input": [[{"role": "user", "content": t}] for t in texts],
                          "verifier": ["none"] * n}))
    return w


def run_thinkforge(texts, ids, threshold, num_perm, k, fn_weight, work: Path
                   ) -> tuple[set[str], float, str]:
    from thinkforge.filters.base import Resources
    from thinkforge.filters.dedup import DedupConfig, run_dedup
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(work / "store")
    w = write_prompts(store, texts, ids)
    start = time.perf_counter()
    m = run_dedup(store, w.manifest, "dedup", DedupConfig(threshold=threshold, num_perm=num_perm,
                                                          shingle=k, false_negative_weight=fn_weight),
                  resources=Resources(memory_limit="1GiB"))
    seconds = time.perf_counter() - start

    from thinkforge.manifests.selection import read_rejected  # plain shards or a selection's positions

    removed = set(read_rejected(store, m).column("id").to_pylist())
    p = m.provenance
    return removed, seconds, (f"b x r = {p['lsh_bands']} x {p['lsh_rows']}, exact Jaccard, "
                              f"{p['candidate_pairs']:,} candidates")


def run_dask(texts, ids, threshold, num_perm, k, fn_weight, workers: int, work: Path) -> None:
    """thinkforge only: the local executor vs a LocalCluster of ``workers`` single-thread
    worker processes (near dedup in phases), same store; prints both and checks the bytes."""
    import os

    from distributed import Client, LocalCluster
    from thinkforge.manifests import DatasetStore
    from thinkforge.manifests.steps import RunContext, build_config, execute, load_steps

    store = DatasetStore(work / "store")
    w = write_prompts(store, texts, ids)
    desc = load_steps()["dedup"]
    cfg = build_config(desc.config_model(), {"threshold": threshold, "num_perm": num_perm,
                                             "shingle": k, "false_negative_weight": fn_weight})

    def step(name, settings):
        start = time.perf_counter()
        made = execute(RunContext(store, quiet=True, settings=settings), desc,
                       {"data": w.manifest}, name, cfg)
        return next(iter(made.values())), time.perf_counter() - start

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        dask = {"executor": "dask", "scheduler": cluster.scheduler_address}
        runs = {"local": step("local-1", {"memory_limit": "1GiB"}),
                f"dask {workers} (cold)": step("dask-1", {**dask, "memory_limit": "1GiB"}),
                "local again": step("local-2", {"memory_limit": "1GiB"}),
                f"dask {workers} (warm)": step("dask-2", {**dask, "memory_limit": "1GiB"})}
    base = min(runs["local"][1], runs["local again"][1])
    print(f"load average after: {os.getloadavg()}")
    print(f"{'run':<16} {'seconds':>8} {'x local':>8} {'removed':>8}  fingerprint")
    for label, (m, seconds) in runs.items():
        print(f"{label:<16} {seconds:>8.2f} {seconds / base:>7.2f}x {m.rejected.rows:>8,}  "
              f"{m.fingerprint[:16]}")
    assert len({m.fingerprint for m, _ in runs.values()}) == 1, "executors disagree"


def run_datasketch(texts, ids, threshold, num_perm, k, params=None, exact=True
                   ) -> tuple[set[str], float, str]:
    """datasketch's MinHashLSH with ``params`` = (bands, rows) (None: its own choice for the
    threshold), candidates verified by the exact Jaccard of the shingle sets (Python sets,
    kept per row) or, ``exact=False``, by the MinHash estimate."""
    from datasketch import MinHash, MinHashLSH
    from thinkforge.filters.minhash import connected_components

    start = time.perf_counter()
    order = sorted(range(len(ids)), key=ids.__getitem__)
    first: dict[str, int] = {}
    removed_exact = set()
    for i in order:  # exact: normalised text, smallest id first
        key = " ".join(t for t in WORD.split(texts[i].lower()) if t)
        if key in first:
            removed_exact.add(i)
        else:
            first[key] = i
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
    hashes, sets = {}, {}
    left, right = [], []
    candidates = 0
    for i in order:
        if i in removed_exact:
            continue
        m = MinHash(num_perm=num_perm)
        own = shingles(texts[i], k)
        m.update_batch([" ".join(s).encode() for s in own])
        for j in lsh.query(m):
            candidates += 1
            if (jaccard(sets[j], own) if exact else hashes[j].jaccard(m)) >= threshold:
                left.append(j), right.append(i)
        lsh.insert(i, m)
        if exact:
            sets[i] = own
        else:
            hashes[i] = m
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.array(order)] = np.arange(len(ids))
    label = connected_components(len(ids), rank[np.array(left, dtype=np.int64)],
                                 rank[np.array(right, dtype=np.int64)])
    near = {order[r] for r in np.flatnonzero(label != np.arange(len(ids)))}
    seconds = time.perf_counter() - start
    b, r = lsh.b, lsh.r
    return {ids[i] for i in near | removed_exact}, seconds, \
        f"b x r = {b} x {r}, {'exact' if exact else 'estimated'} Jaccard, {candidates:,} candidates"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--planted", type=float, default=0.05, help="share of planted copies")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--shingle", type=int, default=5)
    ap.add_argument("--fn-weight", type=float, default=0.9,
                    help="thinkforge's false_negative_weight; datasketch gets the same b x r")
    ap.add_argument("--datasketch-defaults", action="store_true",
                    help="also run datasketch at its defaults (b x r for weights 0.5/0.5, "
                         "estimated Jaccard)")
    ap.add_argument("--dask", type=int, default=0, metavar="WORKERS",
                    help="instead: thinkforge local vs Dask with WORKERS workers (no datasketch)")
    args = ap.parse_args()
    if args.dask:
        texts, _ = make_texts(args.rows, args.planted)
        ids = [f"r{i:08d}" for i in np.random.default_rng(1).permutation(len(texts))]
        with tempfile.TemporaryDirectory(prefix="tf-dedup-") as tmp:
            run_dask(texts, ids, args.threshold, args.num_perm, args.shingle, args.fn_weight,
                     args.dask, Path(tmp))
        return
    texts, groups = make_texts(args.rows, args.planted)
    ids = [f"r{i:08d}" for i in np.random.default_rng(1).permutation(len(texts))]
    truth = should_remove(texts, groups, ids, args.threshold, args.shingle)
    print(f"{len(texts):,} rows, {sum(len(g) - 1 for g in groups):,} planted copies, "
          f"{len(truth):,} rows truly to remove at Jaccard >= {args.threshold}", file=sys.stderr)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tf-dedup-") as tmp:
        results["thinkforge"] = run_thinkforge(texts, ids, args.threshold, args.num_perm,
                                               args.shingle, args.fn_weight, Path(tmp))
    from thinkforge.filters.minhash import optimal_bands

    same = optimal_bands(args.threshold, args.num_perm, args.fn_weight)
    results["datasketch"] = run_datasketch(texts, ids, args.threshold, args.num_perm,
                                           args.shingle, params=same)
    if args.datasketch_defaults:
        results["datasketch-defaults"] = run_datasketch(texts, ids, args.threshold,
                                                        args.num_perm, args.shingle, exact=False)
    ours = results["thinkforge"][1]
    print(f"{'engine':<19} {'seconds':>8} {'rows/s':>10} {'removed':>8} {'precision':>9} "
          f"{'recall':>7} {'ours faster by':>15}  settings")
    for engine, (removed, seconds, settings) in results.items():
        hit = len(removed & truth)
        precision = hit / len(removed) if removed else 1.0
        recall = hit / len(truth) if truth else 1.0
        ratio = f"{seconds / ours:.2f}x" if engine != "thinkforge" else ""
        print(f"{engine:<19} {seconds:>8.2f} {len(texts) / seconds:>10,.0f} {len(removed):>8,} "
              f"{precision:>9.4f} {recall:>7.4f} {ratio:>15}  {settings}")


if __name__ == "__main__":
    main()
