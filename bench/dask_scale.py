"""Local executor vs --executor dask (LocalCluster of 1 and 2 worker processes).

1. passrate + curriculum over synthetic rollouts (bench/filters_passrate.make_data): wall
   time per executor, the ratio to local, and a check that every executor's versions have
   the same fingerprints.
2. generate rollouts against a fast fake OpenAI-compatible endpoint (instant replies):
   wall time per generated row, local vs Dask; the difference is the orchestration
   overhead (client connect, task submit, the step's rebuild on the worker), per row.

    python bench/dask_scale.py --prompts 25000 --k 8 --gen-prompts 500 --gen-k 4
    # the filter half at the issue's 10M rollouts, data made once in its own lock hold
    python bench/dask_scale.py --filters-only --prompts 1000000 --k 10 --data /tmp/d10m --make-data-only
    python bench/dask_scale.py --filters-only --prompts 1000000 --k 10 --data /tmp/d10m

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
    from thinkforge.manifests.steps import RunContext, build_config, execute, load_steps

    desc = load_steps()[step_type]
    made = execute(RunContext(store, quiet=True, settings=resources), desc, inputs, name,
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
    from thinkforge.manifests.selection import read_table

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


# -- the filter half at the size (daskfilt): `--filters-only` -------------------------

def _task_stream(client, since: float) -> dict[str, float]:
    """Tasks the scheduler ran since ``since`` (unix time): how many, their summed compute
    time on the workers, and the span from the first task's start to the last one's end."""
    records = client.get_task_stream(start=since)
    computes = [(s["start"], s["stop"]) for r in records for s in r["startstops"]
                if s["action"] == "compute"]
    spans = [(s["start"], s["stop"]) for r in records for s in r["startstops"]]
    return {"tasks": len(records), "compute_s": sum(b - a for a, b in computes),
            "span_s": (max(b for _, b in spans) - min(a for a, _ in spans)) if spans else 0.0}


MERGE_S: list[float] = []
RUN = time.strftime("%Y%m%d%H%M%S")


def _time_merges() -> None:
    """Time the driver's merges of partitions (thinkforge.filters.partitioned.merge_partitions)."""
    import thinkforge.filters.partitioned as partitioned
    import thinkforge.filters.partitioned_curriculum as phased
    from thinkforge.manifests.partitions import register_merge

    real = partitioned.merge_partitions

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            MERGE_S.append(time.perf_counter() - t0)

    register_merge(timed)
    phased.merge_partitions = timed


def filters_traced(store, label, resources, client=None):
    """passrate + curriculum (``filters``), with each step's Dask tasks when ``client``."""
    import time as clock

    out = {}
    label = f"{label}-{RUN}"  # never a version an earlier run over the same --data made
    names = {"passrate": f"pool-{label}", "curriculum": f"cur-{label}"}
    for step in ("passrate", "curriculum"):
        since = clock.time()
        MERGE_S.clear()
        t0 = time.perf_counter()
        inputs = ({"rollouts": store.resolve("rollouts"), "prompts": store.resolve("prompts")}
                  if step == "passrate" else {"pool": store.resolve(names["passrate"])})
        made = _step(store, step, inputs, names[step],
                     {} if step == "passrate" else {"batch_size": 1024}, resources)
        wall = time.perf_counter() - t0
        out[step] = {"wall_s": wall, "fingerprint": made.fingerprint, "rows": made.rows,
                     "merge_s": sum(MERGE_S),
                     **(_task_stream(client, since) if client is not None else {})}
    return out


def sched_per_task(client, n: int, rounds: int = 5) -> float:
    """Seconds the scheduler adds per task when a phase submits ``n`` tasks at once and
    gathers them (no-op tasks on a warm cluster; the client is already connected)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        client.gather([client.submit(_noop, pure=False) for _ in range(n)])
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def filters_main(args) -> None:
    """Local vs Dask 1 and 2 workers on passrate + curriculum at ``--prompts`` x ``--k``."""
    import os

    from distributed import Client, LocalCluster
    from filters_passrate import make_data
    from thinkforge.manifests import DatasetStore

    work = args.data or Path(tempfile.mkdtemp(prefix="tf-daskf-", dir=args.tmp))
    if not (work / "store" / "datasets").is_dir():
        t0 = time.perf_counter()
        make_data(work, args.prompts, args.k)
        print(f"data: {work} ({args.prompts} prompts x {args.k}) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    if args.make_data_only:
        return
    store = DatasetStore(work / "store")
    _time_merges()
    print(f"load average before: {os.getloadavg()}", flush=True)
    runs: dict[str, dict] = {}
    for r in range(args.repeat):
        runs[f"local-r{r}"] = filters_traced(store, f"local{r}", {})
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            startup = time.perf_counter() - t0
            client.get_task_stream()  # installs the scheduler's task stream plugin
            res = {"executor": "dask", "scheduler": cluster.scheduler_address}
            for r in range(args.repeat):
                label = f"dask{workers}-{'cold' if r == 0 else f'r{r}'}"
                runs[label] = filters_traced(store, label.replace("-", ""), res, client)
                runs[label]["startup_s"] = startup if r == 0 else 0.0
            runs[f"dask{workers}-sched"] = {"per_task_s": sched_per_task(client, workers)}
    print(f"load average after: {os.getloadavg()}", flush=True)
    _print_filters(runs)


def _print_filters(runs: dict[str, dict]) -> None:
    local = min((r for k, r in runs.items() if k.startswith("local")),
                key=lambda r: r["passrate"]["wall_s"] + r["curriculum"]["wall_s"])
    base = local["passrate"]["wall_s"] + local["curriculum"]["wall_s"]
    print(f"{'run':12} {'passrate s':>10} {'curric. s':>9} {'x local':>7} {'tasks':>5} "
          f"{'task cpu s':>10} {'outside s':>9} {'merge s':>7} {'sched ms/part':>13}")
    for label, r in runs.items():
        if "passrate" not in r:
            continue
        p, c = r["passrate"], r["curriculum"]
        assert (p["fingerprint"], c["fingerprint"]) == (local["passrate"]["fingerprint"],
                                                        local["curriculum"]["fingerprint"])
        tasks = p.get("tasks", 0) + c.get("tasks", 0)
        cpu = p.get("compute_s", 0) + c.get("compute_s", 0)
        outside = (p["wall_s"] - p.get("span_s", p["wall_s"])
                   + c["wall_s"] - c.get("span_s", c["wall_s"]))
        sched = runs.get(label.split("-")[0] + "-sched", {}).get("per_task_s")
        print(f"{label:12} {p['wall_s']:10.2f} {c['wall_s']:9.2f} "
              f"{(p['wall_s'] + c['wall_s']) / base:7.2f} {tasks:5d} {cpu:10.2f} "
              f"{outside if tasks else 0:9.2f} {p['merge_s'] + c['merge_s']:7.2f} "
              f"{1000 * sched if sched is not None else float('nan'):13.2f}")
    print("fingerprints equal across executors: yes (asserted)")


# -- the generation half (genfan): `--gen-only` ------------------------------------------------

def _fake_endpoint():
    """A fake OpenAI-compatible server (tests/generators/fault_proxy.py, instant replies) in
    a process of its own, so its work is not done under the driver's GIL."""
    import subprocess

    code = ("import sys, time; sys.path.insert(0, {!r}); "
            "from fault_proxy import FakeOpenAIServer; s = FakeOpenAIServer().__enter__(); "
            "print(s.url, flush=True); time.sleep(10 ** 6)").format(
                str(ROOT / "tests" / "generators"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def gen_run(store, label, resources, urls, n, k, concurrency):
    """generate rollouts (n prompts x k) against ``urls``: wall, rows and, on Dask, the
    fan-out's own figures (provenance ``fan_out``: partitions, the tasks phase, the time
    inside the tasks, client connect + close, reading the chunks back)."""
    t0 = time.perf_counter()
    made = _step(store, "generate_rollouts", {"prompts": store.resolve("gen-prompts")},
                 f"gen-{label}", {"teacher": {"backend": "openai", "base_url": urls[0],
                                              "endpoints": urls[1:], "model": "fake",
                                              "concurrency": concurrency},
                                  "k": k, "limit": n, "modes": ["on"]}, resources)
    wall = time.perf_counter() - t0
    assert made.rows == n * k, made.rows
    out = {"wall_s": wall, "rows": made.rows, "fingerprint": made.fingerprint,
           **made.provenance.get("fan_out", {})}
    return out


def gen_main(args) -> None:
    """Local vs Dask 1 and 2 workers generating against two fake endpoints: the ratio to
    local, orchestration overhead per generated row and per partition."""
    import os
    from contextlib import ExitStack

    from distributed import Client, LocalCluster
    from filters_passrate import make_data
    from thinkforge.manifests import DatasetStore
    from thinkforge.manifests.selection import read_table

    work = Path(tempfile.mkdtemp(prefix="tf-dask-gen-", dir=args.tmp))
    make_data(work, max(args.gen_prompts, 100), 1)
    store = DatasetStore(work / "store")
    src = store.resolve("prompts")
    with store.writer("gen-prompts", "prompts", step={"type": "bench"}, parents=[src]) as w:
        w.write(read_table(store, src).slice(0, args.gen_prompts))
    n, k, conc = args.gen_prompts, args.gen_k, args.gen_concurrency
    print(f"generation: {n} prompts x {k} = {n * k} rows against 2 fake endpoints "
          f"(own processes), concurrency {conc}; load {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[str, list[dict]] = {}
    extra: dict[str, dict] = {}
    with ExitStack() as stack:
        endpoints = [_fake_endpoint() for _ in range(2)]
        for proc, _ in endpoints:
            stack.callback(proc.kill)
        urls = [url for _, url in endpoints]
        runs["local"] = [gen_run(store, f"local{r}", {}, urls, n, k, conc)
                         for r in range(args.repeat)]
        for workers in (1, 2):
            t0 = time.perf_counter()
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, \
                    Client(cluster.scheduler_address) as client:
                startup = time.perf_counter() - t0
                res = {"executor": "dask", "scheduler": cluster.scheduler_address}
                t0 = time.perf_counter()  # the workers' first task imports thinkforge, openai
                gen_run(store, f"warm{workers}", res, urls, 10, 2, conc)
                label = f"dask{workers}"
                extra[label] = {"startup_s": startup, "warmup_s": time.perf_counter() - t0}
                runs[label] = [gen_run(store, f"{label}-{r}", res, urls, n, k, conc)
                               for r in range(args.repeat)]
                tasks = runs[label][0]["partitions"]
                extra[label]["sched_s"] = sched_per_task(client, max(1, tasks))
    _print_gen(runs, extra)


def _print_gen(runs: dict[str, list[dict]], extra: dict[str, dict]) -> None:
    best = {label: min(rs, key=lambda r: r["wall_s"]) for label, rs in runs.items()}
    base = best["local"]
    nan = float("nan")
    print(f"{'executor':9} {'wall s':>7} {'x local':>8} {'ms/row':>7} {'+ms/row':>8} "
          f"{'parts':>5} {'tasks s':>7} {'in tasks s':>10} {'idle ms/part':>12} "
          f"{'sched ms/part':>13} {'connect s':>9} {'read back s':>11} {'start s':>7} "
          f"{'warm-up s':>9}")
    for label, r in best.items():
        assert r["fingerprint"] == base["fingerprint"], f"{label}: version differs"
        ms = 1000 * r["wall_s"] / r["rows"]
        over = 1000 * (r["wall_s"] - base["wall_s"]) / r["rows"]
        e = extra.get(label, {})
        parts = r.get("partitions")
        # worker time in the tasks phase spent outside a partition's function, per partition
        idle = (1000 * (r["tasks_s"] * r["workers"] - r["in_tasks_s"]) / parts) if parts else nan
        print(f"{label:9} {r['wall_s']:7.2f} {r['wall_s'] / base['wall_s']:8.2f} {ms:7.3f} "
              f"{over:8.3f} {parts or '-':>5} {r.get('tasks_s', nan):7.2f} "
              f"{r.get('in_tasks_s', nan):10.2f} {idle:12.1f} "
              f"{1000 * e.get('sched_s', nan):13.2f} {r.get('connect_close_s', nan):9.3f} "
              f"{r.get('read_back_s', nan):11.3f} {e.get('startup_s', 0):7.2f} "
              f"{e.get('warmup_s', 0):9.2f}")
    print("fingerprints equal across executors: yes (asserted); best of "
          f"{len(runs['local'])} rounds each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=25_000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--gen-prompts", type=int, default=500)
    ap.add_argument("--gen-k", type=int, default=4)
    ap.add_argument("--tmp", type=Path, default=None)
    ap.add_argument("--filters-only", action="store_true",
                    help="only the filter half: passrate + curriculum, local vs Dask 1 and 2 "
                         "workers, with tasks, their CPU and the scheduling cost per partition")
    ap.add_argument("--data", type=Path, default=None,
                    help="reuse (or make) the data in this folder (--filters-only)")
    ap.add_argument("--make-data-only", action="store_true", help="make --data and stop")
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds per executor (--filters-only, --gen-only)")
    ap.add_argument("--gen-only", action="store_true",
                    help="only the generation half: --gen-prompts x --gen-k against two fake "
                         "endpoints, local vs Dask 1 and 2 workers (fanned out)")
    ap.add_argument("--gen-concurrency", type=int, default=16,
                    help="requests in flight per endpoint (and worker) (--gen-only)")
    args = ap.parse_args()
    if args.gen_only:
        gen_main(args)
        return
    if args.filters_only or args.make_data_only:
        filters_main(args)
        return

    from distributed import LocalCluster
    from fault_proxy import FakeOpenAIServer
    from filters_passrate import make_data
    from thinkforge.manifests import DatasetStore

    work = Path(tempfile.mkdtemp(prefix="tf-dask-", dir=args.tmp))
    make_data(work, args.prompts, args.k)
    store = DatasetStore(work / "store")
    src = store.resolve("prompts")
    from thinkforge.manifests.selection import read_table

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
