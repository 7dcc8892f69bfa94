"""Pass rate + buckets + curriculum on synthetic rollouts: thinkforge (DuckDB) vs pandas vs polars.

Each engine runs in its own child process (so peak RSS is its own) on the same Parquet
files and does the same work: per-prompt n_samples / n_correct / pass_rate, drop >= 0.75,
bucket labels, write the pool and the rejected prompts (sorted by id), then the
progressive-batching curriculum (same allocation, seeded order within a level and within a
batch) written in curriculum order.  thinkforge also checks and checksums every shard,
computes the manifest stats and refreshes the catalog (its publish step, ~1 s here).

    python bench/filters_passrate.py --prompts 1000000 --k 10      # the issue's 10M rollouts
    python bench/filters_passrate.py --prompts 50000 --repeat 1    # quick

thinkforge's modules are byte-compiled first (``compileall``), as ``pip install`` does for a
wheel and as polars', pandas' and DuckDB's modules already are (on a machine with
``PYTHONDONTWRITEBYTECODE=1`` an editable install would otherwise compile thinkforge from
source in every child); ``--no-compile`` skips that.

Each engine runs ``--repeat`` times (rounds interleaved, each thinkforge run on fresh inputs
so nothing is reused: a copy of the store made before the run replaces it after); the table
shows each engine's best round and peak RSS over all rounds.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1024
EDGES = [0, 0.25, 0.5, 0.75, 1]


def make_data(work: Path, n_prompts: int, k: int) -> None:
    """Prompts + rollouts as store versions (thinkforge) and as plain Parquet (baselines)."""
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(work / "store")
    rng = np.random.default_rng(0)
    ids = np.char.add("p", np.arange(n_prompts).astype(str))
    prompts = pa.table({
        "id": ids, "source": np.full(n_prompts, "synthetic"), "category": np.full(n_prompts, "math"),
        "input": pa.array([[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]
                           for i in range(n_prompts)]),
        "ground_truth": (np.arange(n_prompts) * 2).astype(str), "verifier": np.full(n_prompts, "math"),
        "license": np.full(n_prompts, "cc0"), "metadata": np.full(n_prompts, "{}")})
    with store.writer("prompts", "prompts", step={"type": "bench"}) as w:
        w.write(prompts)
    pq.write_table(prompts, work / "prompts.parquet")
    skill = rng.beta(1.2, 1.2, size=n_prompts)
    with store.writer("rollouts", "rollouts", step={"type": "bench"}, parents=[w.manifest],
                      provenance={"K": k}) as wr, \
            pq.ParquetWriter(work / "rollouts.parquet", wr.schema, compression="zstd") as plain:
        for lo in range(0, n_prompts, 100_000):
            hi = min(n_prompts, lo + 100_000)
            n = (hi - lo) * k
            correct = rng.random(n) < np.repeat(skill[lo:hi], k)
            t = pa.table({"prompt_id": np.repeat(ids[lo:hi], k), "sample": np.tile(np.arange(k), hi - lo),
                          "generator": np.full(n, "policy"), "reasoning": np.full(n, "on"),
                          "output": np.full(n, "<think>...</think> 42"), "answer": np.full(n, "42"),
                          "correct": correct, "format_ok": np.ones(n, bool),
                          "reward": correct.astype(float), "output_tokens": np.full(n, 12),
                          "finish_reason": np.full(n, "stop")})
            wr.write(t)
            from thinkforge.manifests.writer import conform
            plain.write_table(conform(t, wr.schema))


def run_thinkforge(store_dir: Path, memory_limit: str) -> int:
    from thinkforge.filters.base import Resources
    from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
    from thinkforge.filters.passrate import run_passrate
    from thinkforge.manifests import DatasetStore

    store = DatasetStore(store_dir)
    res = Resources(memory_limit=memory_limit)
    pool = run_passrate(store, store.resolve("rollouts"), store.resolve("prompts"), "pool",
                        resources=res)
    cur = run_curriculum(store, pool, "cur", CurriculumConfig(batch_size=BATCH), resources=res)
    return cur.rows


def _alloc_rows(levels, counts):
    from thinkforge.filters.curriculum_plan import plan_batches

    plan = plan_batches(counts, BATCH)
    out = {"level_rate": [], "batch": [], "first_rank": []}
    for li, rate in enumerate(levels):
        start = 0
        for b, n in enumerate(plan[:, li].tolist()):
            if n:
                out["level_rate"].append(rate), out["batch"].append(b), out["first_rank"].append(start)
                start += n
    return out


def run_pandas(work: Path) -> int:
    import pandas as pd

    r = pd.read_parquet(work / "rollouts.parquet", columns=["prompt_id", "correct"])
    agg = r.groupby("prompt_id", sort=False)["correct"].agg(n_samples="count", n_correct="sum")
    del r
    p = pd.read_parquet(work / "prompts.parquet")
    pool = p.merge(agg, left_on="id", right_index=True)
    pool["pass_rate"] = pool["n_correct"] / pool["n_samples"]
    easy = pool["pass_rate"] >= 0.75
    pool[easy].assign(reason="too_easy").sort_values("id").to_parquet(work / "pandas-rejected.parquet")
    pool = pool[~easy].copy()
    pool["bucket"] = pd.cut(pool["pass_rate"], EDGES, right=False).astype(str)
    pool.loc[pool["pass_rate"] == 0, "bucket"] = "unsolved"
    pool.sort_values("id").to_parquet(work / "pandas-pool.parquet")
    pool["level_rate"] = pool["pass_rate"].round(6)
    counts = pool.groupby("level_rate").size().sort_index(ascending=False)
    alloc = pd.DataFrame(_alloc_rows(counts.index.tolist(), counts.tolist()))
    pool["h"] = pd.util.hash_pandas_object(pool["id"] + ":0", index=False).to_numpy()
    pool = pool.sort_values(["level_rate", "h"])
    pool["level_rank"] = pool.groupby("level_rate").cumcount()
    pool = pd.merge_asof(pool.sort_values("level_rank"), alloc.sort_values("first_rank"),
                         left_on="level_rank", right_on="first_rank", by="level_rate")
    pool["h2"] = pd.util.hash_pandas_object(pool["id"] + ":pos:0", index=False).to_numpy()
    pool = pool.sort_values(["batch", "h2"])
    pool["curriculum_position"] = pool.groupby("batch").cumcount()
    pool.drop(columns=["h", "h2", "level_rank", "first_rank"]).to_parquet(work / "pandas.parquet")
    return len(pool)


def run_polars(work: Path) -> int:
    import polars as pl

    agg = (pl.scan_parquet(work / "rollouts.parquet").group_by("prompt_id")
           .agg(pl.col("correct").count().alias("n_samples"), pl.col("correct").sum().alias("n_correct")))
    scored = (pl.scan_parquet(work / "prompts.parquet").join(agg, left_on="id", right_on="prompt_id")
              .with_columns((pl.col("n_correct") / pl.col("n_samples")).alias("pass_rate"))
              .collect())
    scored.filter(pl.col("pass_rate") >= 0.75).with_columns(reason=pl.lit("too_easy")) \
        .sort("id").write_parquet(work / "polars-rejected.parquet")
    pool = (scored.lazy().filter(pl.col("pass_rate") < 0.75)
            .with_columns(pl.when(pl.col("pass_rate") == 0).then(pl.lit("unsolved"))
                          .otherwise(pl.col("pass_rate").cut(EDGES[1:-1], left_closed=True)
                                     .cast(pl.String)).alias("bucket"),
                          pl.col("pass_rate").round(6).alias("level_rate"))
            .sort("id").collect())
    pool.write_parquet(work / "polars-pool.parquet")
    counts = pool.group_by("level_rate").len().sort("level_rate", descending=True)
    alloc = pl.DataFrame(_alloc_rows(counts["level_rate"].to_list(), counts["len"].to_list()))
    out = (pool.lazy().with_columns((pl.col("id") + ":0").hash(0).alias("h"))
           .sort(["level_rate", "h"])
           .with_columns(pl.int_range(pl.len()).over("level_rate").alias("level_rank"))
           .sort("level_rank")
           .join_asof(alloc.lazy().sort("first_rank"), left_on="level_rank", right_on="first_rank",
                      by="level_rate")
           .with_columns((pl.col("id") + ":pos:0").hash(0).alias("h2"))
           .sort(["batch", "h2"])
           .with_columns(pl.int_range(pl.len()).over("batch").alias("curriculum_position"))
           .drop(["h", "h2", "level_rank", "first_rank"]).collect())
    out.write_parquet(work / "polars.parquet")
    return out.height


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(engine: str, work: Path, memory_limit: str, store_dir: Path) -> None:
    start = time.perf_counter()
    rows = {"thinkforge": lambda: run_thinkforge(store_dir, memory_limit),
            "pandas": lambda: run_pandas(work),
            "polars": lambda: run_polars(work)}[engine]()
    seconds = time.perf_counter() - start
    rss = peak_rss_mib()
    print(json.dumps({"engine": engine, "seconds": seconds, "rows": rows, "peak_rss_mib": rss}))


def compile_thinkforge() -> None:
    """Bytecode for the packages the thinkforge child imports (see the module docstring)."""
    import compileall
    import importlib

    for name in ("thinkforge", "thinkforge.manifests", "thinkforge.filters", "thinkforge.generators"):
        for folder in importlib.import_module(name).__path__:
            compileall.compile_dir(folder, quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--memory-limit", default="1GiB", help="DuckDB memory_limit for thinkforge")
    ap.add_argument("--engines", default="thinkforge,polars,pandas")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of all engines, interleaved; the table shows each one's best "
                         "(the machine is shared: the best round is the least disturbed)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--no-compile", action="store_true",
                    help="do not byte-compile thinkforge's modules first")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.work, args.memory_limit, args.store)
    if not args.no_compile:
        compile_thinkforge()
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        make_data(work, args.prompts, args.k)
        print(f"data: {args.prompts:,} prompts x {args.k} = {args.prompts * args.k:,} rollouts "
              f"({time.perf_counter() - t0:.0f}s to generate)", file=sys.stderr)
        results: dict[str, list[dict]] = {}
        for round_ in range(args.repeat):
            for engine in args.engines.split(","):
                # fresh inputs each round: thinkforge would otherwise reuse the version the
                # last round published (the bench measures a cold run).  The run uses the store
                # where it was made (its catalog names that path, as a user's store does); a
                # copy made beforehand replaces it afterwards.
                store_dir = work / "store"
                if engine == "thinkforge":
                    shutil.copytree(store_dir, work / "store-next")
                out = subprocess.run([sys.executable, __file__, "--child", engine, "--work",
                                      str(work), "--memory-limit", args.memory_limit,
                                      "--store", str(store_dir)], capture_output=True, text=True)
                if engine == "thinkforge":
                    shutil.rmtree(store_dir)
                    (work / "store-next").rename(store_dir)
                if out.returncode:
                    print(f"{engine} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"round {round_ + 1}: {engine} {r['seconds']:.2f}s", file=sys.stderr)
                results.setdefault(engine, []).append(r)
    results = {e: {**min(rs, key=lambda r: r["seconds"]),
                   "all": sorted(r["seconds"] for r in rs),
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs)} for e, rs in results.items()}
    ours = results.get("thinkforge")
    print(f"{'engine':<11} {'best s':>7} {'rows':>10} {'peak RSS MiB':>13} {'ours faster by':>15}  "
          "all rounds (s)")
    for engine, r in results.items():
        ratio = f"{r['seconds'] / ours['seconds']:.2f}x" if ours and engine != "thinkforge" else ""
        print(f"{engine:<11} {r['seconds']:>7.2f} {r['rows']:>10,} {r['peak_rss_mib']:>13.0f} "
              f"{ratio:>15}  {', '.join(f'{s:.2f}' for s in r['all'])}")


if __name__ == "__main__":
    main()
