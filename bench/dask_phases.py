"""Where a Dask step's time goes: per-task timings from the scheduler's task stream and the
driver's phases (cProfile), for pass rate, near dedup and decontam over ``bench/dask_scale.py``'s data.

    python bench/dask_scale.py --data /tmp/dask10m --prompts 1000000 --k 10 --docs 600000 \\
        --make-data-only
    python bench/dask_phases.py --data /tmp/dask10m --workers 2

Each step runs once to warm the workers (imports, numba, DuckDB caches), then once timed:
printed are each task (phase, worker, start after the call, seconds), the driver's time
before the first task, between task phases and after the last (merge + publish), and the
driver functions that took longest (cumulative).  Figures: bench/README.md "dask_scale.py".
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path

STEPS = ("passrate", "dedup", "decontam")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dask_scale.py --data folder")
    ap.add_argument("--workers", type=int, default=2, help="single-thread workers")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--top", type=int, default=25, help="driver functions shown")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    import thinkforge as tf

    store = tf.Store(args.data / "store")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("thinkforge"))
        client.get_task_stream()
        res = {"executor": "dask", "scheduler": cluster.scheduler_address}
        for step in args.steps.split(","):
            for attempt in ("warm", "timed"):
                name = f"{step}-phases-{attempt}-{time.strftime('%H%M%S')}-{os.getpid()}"
                prof = cProfile.Profile() if attempt == "timed" else None
                since = time.time()
                t0 = time.perf_counter()
                if prof:
                    prof.enable()
                if step == "passrate":
                    tf.steps.passrate(store, "rollouts", "prompts", name=name, resources=res)
                elif step == "dedup":
                    tf.steps.dedup(store, "docs", name=name, resources=res)
                else:
                    tf.steps.decontam(store, "docs", against=["bench"], name=name,
                                      resources=res)
                if prof:
                    prof.disable()
                wall = time.perf_counter() - t0
            stream = client.get_task_stream(start=since)
            tasks = sorted((s["start"], s["stop"], r["key"], r["worker"]) for r in stream
                            for s in r["startstops"] if s["action"] == "compute")
            print(f"\n== {step}: {wall:.2f} s wall, {args.workers} workers, load "
                  f"{os.getloadavg()[0]:.2f}")
            for start, stop, key, worker in tasks:
                label = str(key).split("-")[-2] if "-" in str(key) else str(key)
                print(f"  task {label:10} on :{worker.rsplit(':', 1)[-1]:6} from "
                      f"{start - since:6.2f} s  {stop - start:6.2f} s")
            if tasks:
                first, last = tasks[0][0] - since, wall - (max(t[1] for t in tasks) - since)
                print(f"  driver before first task {first:.2f} s, after last task {last:.2f} s")
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(args.top)
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
