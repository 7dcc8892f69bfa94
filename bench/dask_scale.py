"""Local executor vs --executor dask (LocalCluster of 1 and 2 worker processes).

1. passrate + curriculum over synthetic rollouts (bench/filters_passrate.make_data): wall
   time per executor, the ratio to local, and a check that every executor's versions have
   the same fingerprints.
2. generate rollouts against a fast fake OpenAI-compatible endpoint (instant replies):
   wall time per generated row, local vs Dask; the difference is the orchestration
   overhead (client connect, task submit, the step's rebuild on the worker), per row.

    python bench/dask_scale.py --prompts 25000 --k 8 --gen-prompts 500 --gen-k 4

Cluster start-up is timed separately (it is paid once per command with --workers, never
with --scheduler).  Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "generators")]


def _step(store, step_type, inputs, name, config, resources):
    from curation.steps import load_steps
    from manifests.steps import RunContext, build_config, execute

    desc = load_steps()[step_type]
    made = execute(RunContext(store, quiet=True, resources=resources), desc, inputs, name,
                   build_config(desc.config_model(), config))
    return next(iter(made.values()))


def filters(store, label, resources):
    t0 = time.perf_counter()
    pool = _step(store, "passrate", {"rollouts": store.resolve("rollouts"),
                                      "prompts": store.resolve("prompts")},
                 f"pool-{label}", {}, resources)
    t1 = time.perf_counter()
    cur = _step(store, "curriculum", {"pool": pool}, f"cur-{label}", {"batch_size": 1024},
                resources)
    t2 = time.perf_counter()
    return {"passrate_s": t1 - t0, "curriculum_s": t2 - t1, "total_s": t2 - t0,
            "fingerprints": (pool.fingerprint, cur.fingerprint), "rows": cur.rows}


def generation(store, label, resources, url, n, k):
    from manifests.selection import read_table

    prompts = store.resolve("gen-prompts")
    t0 = time.perf_counter()
    m = _step(store, "generate_rollouts", {"prompts": prompts}, f"ro-{label}", {
        "teacher": {"backend": "openai", "base_url": url, "model": "fake", "concurrency": 32},
        "k": k, "limit": n, "modes": ["off"]}, resources)
    wall = time.perf_counter() - t0
    assert m.rows == n * k and read_table(store, m).num_rows == n * k
    return {"wall_s": wall, "rows": m.rows, "ms_per_row": 1000 * wall / m.rows}


def _noop():
    return None


def step_roundtrip(address: str, n: int = 10) -> float:
    """Seconds the executor adds to one step on a warm cluster: connect a client, submit one
    task, wait for its result, close (what run_on_dask does around the step itself)."""
    from distributed import Client

    with Client(address) as client:  # warm the workers (first task)
        client.submit(_noop, pure=False).result()
    t0 = time.perf_counter()
    for _ in range(n):
        with Client(address) as client:
            client.submit(_noop, pure=False).result()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=25_000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--gen-prompts", type=int, default=500)
    ap.add_argument("--gen-k", type=int, default=4)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()

    from distributed import LocalCluster
    from fault_proxy import FakeOpenAIServer
    from filters_passrate import make_data

    from manifests import DatasetStore

    work = Path(tempfile.mkdtemp(prefix="tf-dask-", dir=args.tmp))
    make_data(work, args.prompts, args.k)
    store = DatasetStore(work / "store")
    src = store.resolve("prompts")
    from manifests.selection import read_table

    with store.writer("gen-prompts", "prompts", step={"type": "bench"}, parents=[src]) as w:
        w.write(read_table(store, src).slice(0, args.gen_prompts))
    print(f"data: {args.prompts * args.k} rollouts over {args.prompts} prompts; generation "
          f"{args.gen_prompts} prompts x {args.gen_k}", flush=True)

    results = {}
    with FakeOpenAIServer() as server:
        results["local"] = {"filters": filters(store, "local", {}),
                            "gen": generation(store, "local", {}, server.url, args.gen_prompts,
                                              args.gen_k)}
        for workers in (1, 2):
            t0 = time.perf_counter()
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                startup = time.perf_counter() - t0
                res = {"executor": "dask", "scheduler": cluster.scheduler_address}
                roundtrip = step_roundtrip(cluster.scheduler_address)
                label = f"dask{workers}"
                # first steps on fresh workers: they import thinkforge (cold), then warm
                results[label + "-cold"] = {
                    "startup_s": startup, "filters": filters(store, label + "c", res),
                    "gen": generation(store, label + "c", res, server.url, args.gen_prompts,
                                      args.gen_k)}
                results[label] = {"roundtrip_s": roundtrip, "filters": filters(store, label, res),
                                  "gen": generation(store, label, res, server.url,
                                                    args.gen_prompts, args.gen_k)}
    base = results["local"]
    print(f"{'executor':11} {'start s':>8} {'passrate s':>11} {'curric. s':>10} {'filters x':>10} "
          f"{'gen ms/row':>11} {'overhead ms/row':>16}")
    for label, r in results.items():
        f, g = r["filters"], r["gen"]
        assert f["fingerprints"] == base["filters"]["fingerprints"], f"{label}: versions differ"
        print(f"{label:11} {r.get('startup_s', 0):8.2f} {f['passrate_s']:11.2f} "
              f"{f['curriculum_s']:10.2f} {f['total_s'] / base['filters']['total_s']:10.2f} "
              f"{g['ms_per_row']:11.3f} {g['ms_per_row'] - base['gen']['ms_per_row']:16.3f}")
    print("fingerprints equal across executors: yes")
    for label, r in results.items():
        if "roundtrip_s" in r:
            print(f"{label}: per-step orchestration (connect + submit + result, no-op task) "
                  f"{1000 * r['roundtrip_s']:.1f} ms = {1000 * r['roundtrip_s'] / r['gen']['rows']:.3f}"
                  f" ms per generated row at {r['gen']['rows']} rows")


if __name__ == "__main__":
    main()
