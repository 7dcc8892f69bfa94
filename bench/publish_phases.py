"""Where the time of pass rate + curriculum goes, per phase, with the publish split out (bench helper).

    python bench/publish_phases.py --prompts 1000000 --k 10 --dir /tmp/pp   # data made once in --dir

Makes the same data as ``filters_passrate.py`` once (kept in ``--dir``), then runs
``run_passrate`` + ``run_curriculum`` ``--repeat`` times, each in a fresh process on a fresh
copy of the store, timing the publish's parts (the functions below are wrapped with a timer;
time inside a part nested in another is counted in both) and every DuckDB statement of the
steps over ``--min-sql`` seconds.  Prints one table per run: part, calls, seconds.  Run it
with another tree's interpreter (``/work/main/.venv/bin/python bench/publish_phases.py ...``)
for a baseline on the same data.  thinkforge's modules are byte-compiled first, as
``filters_passrate.py`` does (``--no-compile`` skips it): under ``PYTHONDONTWRITEBYTECODE=1``
a tree without ``__pycache__`` would otherwise compile them from source in every child
(~0.1 s of "imports").
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

# (module, attribute, label): what a checked publish does, and the fixed costs around it
PARTS = [
    ("thinkforge.manifests.writer", "scan_positions", "positions checked (range, repeats, order)"),
    ("thinkforge.manifests.writer", "selection_digests", "row digests of the selection"),
    ("thinkforge.manifests.writer.VersionWriter", "_check_values", "value checks (required, enums)"),
    ("thinkforge.manifests.writer", "compute_stats", "stats (SQL part)"),
    ("thinkforge.manifests.writer.VersionWriter", "_base_counts", "stats: base-column counts"),
    ("thinkforge.manifests.writer", "sha256_file", "sha256 of files written"),
    ("thinkforge.manifests.writer.VersionWriter", "_rejected_summary", "rejected counts"),
    ("thinkforge.manifests.writer", "publish_dir", "manifest, signature, rename, log"),
    ("thinkforge.manifests.writer.DatasetStore", "after_publish", "catalog refresh"),
    ("thinkforge.manifests.store.StoreReader", "verify", "inputs verified (sha256 cache)"),
    ("thinkforge.filters.base", "connect", "step connection"),
    ("thinkforge.manifests.writer", "connect", "publish's own connection"),
    ("thinkforge.manifests.writer.VersionWriter", "publish", "publish (all of it)"),
]


def _wrap(times, label, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[label][0] += 1
            times[label][1] += time.perf_counter() - t0
    return timed


def child(store_dir: Path, min_sql: float) -> None:
    import importlib

    t0 = time.perf_counter()
    from sqltrace import traced
    from thinkforge.filters.base import Resources
    from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
    from thinkforge.filters.passrate import run_passrate
    from thinkforge.manifests import DatasetStore

    imports = time.perf_counter() - t0
    times: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for mod, attr, label in PARTS:
        path = mod.split(".")
        try:
            owner = importlib.import_module(mod)
        except ImportError:
            owner = getattr(importlib.import_module(".".join(path[:-1])), path[-1])
        if hasattr(owner, attr):  # a part an older tree does not have is left out
            setattr(owner, attr, _wrap(times, label, getattr(owner, attr)))
    store = DatasetStore(store_dir)
    res = Resources(memory_limit="1GiB")
    t1 = time.perf_counter()
    with traced(min_seconds=min_sql) as log:
        pool = run_passrate(store, store.resolve("rollouts"), store.resolve("prompts"), "pool",
                            resources=res)
        run_curriculum(store, pool, "cur", CurriculumConfig(batch_size=1024), resources=res)
    steps = time.perf_counter() - t1
    sql = defaultdict(float)
    for dt, stmt in log:
        s = " ".join(str(stmt).split())
        key = next((k for k in ("COPY", "__rows", "__srows", "__judged", "decided", "scored",
                                "ranked", "placed") if k in s), "other statements")
        sql[key] += dt
    print(json.dumps({"imports": imports, "steps": steps,
                      "parts": {k: v for k, v in times.items()},
                      "sql": dict(sql), "sql_total": sum(dt for dt, _ in log)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dir", type=Path, required=True, help="where the data is made once and kept")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--min-sql", type=float, default=10.0, help="print statements over this (s)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--no-compile", action="store_true",
                    help="do not byte-compile thinkforge's modules first")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.min_sql)
    if not args.no_compile:
        from filters_passrate import compile_thinkforge

        compile_thinkforge()
    made = args.dir / f"made-{args.prompts}x{args.k}"
    if not made.is_dir():
        from filters_passrate import make_data

        t0 = time.perf_counter()
        shutil.rmtree(args.dir / "tmp", ignore_errors=True)
        make_data(args.dir / "tmp", args.prompts, args.k)
        (args.dir / "tmp").rename(made)
        print(f"data made in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for r in range(args.repeat):
        run_dir = args.dir / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(made / "store", run_dir)
        from thinkforge.manifests import DatasetStore
        from thinkforge.manifests.catalog import refresh_catalog

        refresh_catalog(DatasetStore(run_dir), force=True)  # as in the bench: built for its path
        out = subprocess.run([sys.executable, __file__, "--dir", str(args.dir), "--min-sql",
                              str(args.min_sql), "--child", str(run_dir)],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"run {r + 1}: imports {res['imports']:.2f} s, steps {res['steps']:.2f} s "
              f"({res['sql_total']:.2f} s in the steps' DuckDB statements)")
        for label, (n, s) in sorted(res["parts"].items(), key=lambda kv: -kv[1][1]):
            print(f"  {s:6.3f} s  x{n:<3} {label}")
        for key, s in sorted(res["sql"].items(), key=lambda kv: -kv[1]):
            print(f"  {s:6.3f} s  sql  {key}")


if __name__ == "__main__":
    main()
