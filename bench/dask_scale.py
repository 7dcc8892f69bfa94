"""Strong scaling of the Dask executor: local vs 1 and 2 single-thread Dask workers.

Runs pass rate (rollouts x prompts), near + exact dedup and decontamination through the
public API (``tf.steps.<type>(store, ..., resources={"executor": "dask", "scheduler": ...})``)
three ways on the same versions:

* ``local``: the local executor (DuckDB with every core), the baseline;
* ``dask1``: a LocalCluster of 1 worker process with 1 thread (DuckDB 1 thread);
* ``dask2``: a LocalCluster of 2 worker processes with 1 thread each: every step is split
  into 2 partitions, each worker's DuckDB reads only its partition from the shared store
  and writes narrow partition files; the driver merges them into one version.

Printed per step: wall seconds, the ratio to local, the 1 -> 2 worker speed-up, the time
of the step outside its Dask tasks (client, driver phases, merge and publish) from Dask's
task stream, and a check that every executor's version has the local fingerprint and the
local bytes (every file's sha256, as the manifests record them).  Before and after the
steps, on the dask2 cluster: the machine's ceiling (``calibrate``: a fixed pure-CPU task
alone on one worker, then on both at once; 2.0 on two idle cores, less on shared ones),
and per step the speed-up as a share of it, Amdahl's serial fraction and the bound the
driver's serial part allows.

    python bench/dask_scale.py --prompts 60000 --k 10 --docs 60000          # a quick look
    python bench/dask_scale.py --data /tmp/dask10m --prompts 1000000 --k 10 --docs 600000 \\
        --make-data-only                                           # data once, own lock hold
    python bench/dask_scale.py --data /tmp/dask10m --prompts 1000000 --k 10 --docs 600000

Clusters are started once per worker count and warmed (one no-op task per worker imports
thinkforge there) before anything is timed: start-up is printed separately.  Figures:
bench/README.md "dask_scale.py".
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STEPS = ("passrate", "dedup", "decontam")


def _tokens(rng, n: int, words: int = 40, vocab: int = 20_000) -> np.ndarray:
    """Word ids of ``n`` documents of ``words`` words; 5% exact and 15% near copies (last
    word changed) of an earlier document, so dedup has work at its default threshold (0.8)."""
    tokens = rng.integers(0, vocab, size=(n, words))
    src = rng.integers(0, np.maximum(1, np.arange(n)))
    kind = rng.random(n)
    exact, near = kind < 0.05, (kind >= 0.05) & (kind < 0.20)
    tokens[exact] = tokens[src[exact]]
    tokens[near] = tokens[src[near]]
    tokens[near, -1] = rng.integers(vocab, 2 * vocab, size=int(near.sum()))
    return tokens


def _join(tokens: np.ndarray) -> pa.Array:
    """The texts ``w<id> w<id> ...`` of word-id rows, joined by Arrow (10M documents in
    seconds, where a Python join per row took minutes)."""
    import pyarrow.compute as pc

    vocab = pa.array([f"w{i}" for i in range(int(tokens.max(initial=0)) + 1)])
    return pc.binary_join_element_wise(*(vocab.take(pa.array(tokens[:, j]))
                                         for j in range(tokens.shape[1])), " ")


def _texts(rng, n: int) -> list[str]:
    return _join(_tokens(rng, n)).to_pylist()


def _prompts(ids, texts) -> pa.Table:
    n = len(ids)
    texts = pa.array(texts, pa.string())
    messages = pa.ListArray.from_arrays(  # one user message per prompt
        pa.array(np.arange(n + 1, dtype=np.int32)),
        pa.StructArray.from_arrays([pa.array(["user"] * n), texts], names=["role", "content"]))
    return pa.table({
        "id": pa.array(ids, pa.string()), "source": pa.array(["synthetic"] * n),
        "category": pa.array(["math"] * n), "input": messages,
        "ground_truth": pa.array(["42"] * n), "verifier": pa.array(["math"] * n),
        "license": pa.array(["cc0"] * n), "metadata": pa.array(["{}"] * n)})


def make_data(work: Path, prompts: int, k: int, docs: int, bench_items: int) -> None:
    """Parquet files, imported with ``tf.steps.import_`` as: prompts, rollouts (prompts x k),
    docs (the dedup / decontam input) and bench (benchmark items, 1% taken from docs)."""
    import thinkforge as tf

    store = tf.Store(work / "store")
    rng = np.random.default_rng(0)
    files = work / "files"
    files.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i}" for i in range(prompts)]
    pq.write_table(_prompts(ids, [f"Question {i}: what is {i} + {i}?" for i in range(prompts)]),
                   files / "prompts.parquet")
    skill = rng.beta(1.2, 1.2, size=prompts)
    with pq.ParquetWriter(files / "rollouts.parquet", pa.schema([
            ("prompt_id", pa.string()), ("sample", pa.int64()), ("generator", pa.string()),
            ("reasoning", pa.string()), ("output", pa.string()), ("answer", pa.string()),
            ("correct", pa.bool_()), ("format_ok", pa.bool_()), ("reward", pa.float64()),
            ("output_tokens", pa.int64()), ("finish_reason", pa.string())])) as out:
        step = max(1, min(100_000, 3_000_000 // k))  # ~3M rollouts a chunk at any k
        for lo in range(0, prompts, step):
            hi = min(prompts, lo + step)
            n = (hi - lo) * k
            correct = rng.random(n) < np.repeat(skill[lo:hi], k)
            out.write_table(pa.table({
                "prompt_id": pa.array(np.repeat(np.array(ids[lo:hi]), k)),
                "sample": np.tile(np.arange(k), hi - lo), "generator": pa.array(["policy"] * n),
                "reasoning": pa.array(["on"] * n), "output": pa.array(["<think>...</think> 42"] * n),
                "answer": pa.array(["42"] * n), "correct": correct,
                "format_ok": np.ones(n, bool), "reward": correct.astype(float),
                "output_tokens": np.full(n, 12), "finish_reason": pa.array(["stop"] * n)},
                schema=out.schema))
    tokens = _tokens(rng, docs)  # 10M x 40 word ids: 3.2 GB; texts are joined per chunk
    writer = None
    for lo in range(0, docs, 1_000_000):
        part = _prompts([f"d{i}" for i in range(lo, min(docs, lo + 1_000_000))],
                        _join(tokens[lo:lo + 1_000_000]))
        writer = writer or pq.ParquetWriter(files / "docs.parquet", part.schema)
        writer.write_table(part)
    writer.close()
    picked = rng.choice(docs, size=max(1, bench_items // 100), replace=False)
    bench = _join(tokens[picked]).to_pylist() + _texts(np.random.default_rng(1),
                                                       bench_items - len(picked))
    del tokens
    pq.write_table(_prompts([f"b{i}" for i in range(len(bench))], bench), files / "bench.parquet")
    for name, kind in (("prompts", "prompts"), ("rollouts", "rollouts"), ("docs", "prompts"),
                       ("bench", "prompts")):
        tf.steps.import_(store, name=name, path=str(files / f"{name}.parquet"), kind=kind)


_RUNS = itertools.count()


def run_step(store, step: str, label: str, resources: dict) -> dict:
    """One step under ``resources``; its wall time and version."""
    import thinkforge as tf

    # never reused (a step finishing within the second must not meet its own version again)
    name = f"{step}-{label}-{time.strftime('%H%M%S')}-{os.getpid()}-{next(_RUNS)}"
    t0 = time.perf_counter()
    if step == "passrate":
        made = tf.steps.passrate(store, "rollouts", "prompts", name=name, resources=resources)
    elif step == "dedup":
        made = tf.steps.dedup(store, "docs", name=name, resources=resources)
    else:
        made = tf.steps.decontam(store, "docs", against=["bench"], name=name, resources=resources)
    wall = time.perf_counter() - t0
    # every file the version reads, as its manifest records it (sha256 checked at publish)
    files = sorted((what, e.path, e.sha256) for what, e, _ in
                   store.datasets.version_files(made.manifest))
    return {"wall_s": wall, "fingerprint": made.fingerprint, "files": files, "rows": made.rows}


def _task_span(client, since: float) -> tuple[int, float, float]:
    """Tasks the scheduler ran since ``since`` (unix time): their number, summed compute
    seconds and the span from the first start to the last end."""
    records = client.get_task_stream(start=since)
    spans = [(s["start"], s["stop"], s["action"]) for r in records for s in r["startstops"]]
    compute = sum(b - a for a, b, act in spans if act == "compute")
    span = (max(b for _, b, _ in spans) - min(a for a, _, _ in spans)) if spans else 0.0
    return len(records), compute, span


def _noop() -> None:
    import thinkforge  # noqa: F401  (the warm-up: workers import thinkforge once)


def burn(n: int) -> tuple[float, float]:
    """A fixed pure-CPU task: interpreter integer arithmetic (no memory traffic, no I/O, the
    GIL held), so it measures how much CPU a worker process gets; its start and end (unix
    time, comparable across the worker processes of one machine)."""
    start, x = time.time(), 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFFFFFF
    return start, time.time()


def ceiling(single_s: float, pair_s: float) -> float:
    """The 1 -> 2 worker speed-up the machine allows: two copies of a task done in the
    wall time ``pair_s`` of running them at once, against one copy alone in ``single_s``
    (2.0 on two idle cores; less when other processes take CPU)."""
    return 2 * single_s / pair_s


def serial_fraction(speedup: float, limit: float) -> float:
    """Amdahl's serial fraction f of a step that ran ``speedup`` times faster on a machine
    whose ceiling is ``limit``: speedup = 1 / (f + (1 - f) / limit).  0 when the step
    reached the ceiling, 1 when it did not speed up; outside [0, 1] only from noise."""
    return (limit / speedup - 1) / (limit - 1)


def amdahl_bound(one_s: float, serial_s: float, work_s: float, limit: float) -> float:
    """The best 1 -> 2 speed-up of a step that takes ``one_s`` on one worker, when on two
    its ``serial_s`` (the driver's part) stays serial and its tasks' summed ``work_s``
    split perfectly up to the machine's ``limit``."""
    return one_s / (serial_s + work_s / limit)


def calibrate(client, n: int = 3_000_000, rounds: int = 4) -> dict:
    """The machine's ceiling now, on the cluster's first two workers: ``burn`` alone on
    one, then on both at once (each round: one of each; the best of ``rounds`` counts, as
    for the steps).  The pair's time is the longer of its two tasks' own times: how much
    CPU each worker got, not the scheduler's few ms between the two starts (printed as
    the skew).  About 2-3 s at the default ``n``."""
    workers = sorted(client.scheduler_info()["workers"])[:2]
    load_before = os.getloadavg()
    client.run(burn, n // 20)  # warm: the function reaches every worker once
    singles, pairs, skews = [], [], []
    for _ in range(rounds):
        start, end = client.submit(burn, n, workers=workers[:1], pure=False).result()
        singles.append(end - start)
        spans = client.gather([client.submit(burn, n, workers=[w], pure=False)
                               for w in workers])
        pairs.append(max(e - s for s, e in spans))
        skews.append(abs(spans[0][0] - spans[1][0]))
    return {"single_s": min(singles), "pair_s": min(pairs), "skew_s": max(skews),
            "ceiling": ceiling(min(singles), min(pairs)),
            "rounds": [ceiling(a, b) for a, b in zip(singles, pairs, strict=True)],
            "load_before": load_before, "load_after": os.getloadavg()}


def measure(store, steps: list[str], repeat: int, local_threads: int | None) -> dict:
    from distributed import Client, LocalCluster

    runs: dict[str, dict[str, dict]] = {}
    base_res = {"threads": local_threads} if local_threads else {}
    runs["local"] = {s: min((run_step(store, s, "local", base_res) for _ in range(repeat)),
                            key=lambda r: r["wall_s"]) for s in steps}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(_noop)
            startup = time.perf_counter() - t0
            client.get_task_stream()  # installs the scheduler's task stream plugin
            res = {"executor": "dask", "scheduler": cluster.scheduler_address}
            label = f"dask{workers}"
            runs[label] = {"startup_s": startup}
            if workers == 2:
                runs["calibration"] = [calibrate(client)]
            for s in steps:
                best = None
                for _ in range(repeat):
                    since = time.time()
                    r = run_step(store, s, label, res)
                    r["tasks"], r["task_s"], span = _task_span(client, since)
                    r["span_s"] = span
                    r["outside_s"] = r["wall_s"] - span
                    if best is None or r["wall_s"] < best["wall_s"]:
                        best = r
                runs[label][s] = best
            if workers == 2:
                runs["calibration"].append(calibrate(client))
    return runs


def report(runs: dict, steps: list[str]) -> None:
    cal = runs["calibration"]
    for when, c in zip(("before the steps", "after the steps"), cal, strict=False):
        print(f"machine ceiling {when}: burn alone {c['single_s']:.3f} s, two at once "
              f"{c['pair_s']:.3f} s each -> {c['ceiling']:.2f}x (rounds "
              f"{', '.join(f'{r:.2f}' for r in c['rounds'])}; load average "
              f"{c['load_before'][0]:.2f} -> {c['load_after'][0]:.2f}; starts up to "
              f"{c['skew_s'] * 1000:.0f} ms apart)")
    limit = sum(c["ceiling"] for c in cal) / len(cal)
    print(f"ceiling used below: {limit:.2f}x (mean of the {len(cal)} calibrations)")
    print(f"{'step':9} {'local s':>8} {'dask1 s':>8} {'dask2 s':>8} {'dask2/local':>11} "
          f"{'1->2':>6} {'of ceil':>7} {'Amdahl f':>8} {'outside s':>9} {'bound':>6} "
          f"{'tasks':>5} {'task cpu s':>10} {'overlap':>7} {'rows':>10}")
    for s in steps:
        loc, d1, d2 = runs["local"][s], runs["dask1"][s], runs["dask2"][s]
        for label, r in (("dask1", d1), ("dask2", d2)):
            assert r["fingerprint"] == loc["fingerprint"], f"{s} {label}: another version"
            assert r["files"] == loc["files"], f"{s} {label}: other file bytes"
        speedup = d1["wall_s"] / d2["wall_s"]
        bound = amdahl_bound(d1["wall_s"], d2["outside_s"], d2["task_s"], limit)
        print(f"{s:9} {loc['wall_s']:8.2f} {d1['wall_s']:8.2f} {d2['wall_s']:8.2f} "
              f"{d2['wall_s'] / loc['wall_s']:10.2f}x {speedup:5.2f}x {speedup / limit:6.0%} "
              f"{serial_fraction(speedup, limit):8.2f} {d2['outside_s']:9.2f} {bound:5.2f}x "
              f"{d2['tasks']:5d} {d2['task_s']:10.2f} {d2['task_s'] / d2['span_s']:7.2f} "
              f"{loc['rows']:10d}")
    print("1->2 = dask1 / dask2; of ceil = that / the ceiling; Amdahl f = the serial fraction "
          "that explains it at the ceiling; outside = dask2's time outside its tasks (the "
          "driver: merge, publish); bound = dask1 / (outside + task cpu / ceiling): the best "
          "1->2 with that part serial; overlap = task cpu / the tasks' span (2.00: both "
          "workers busy from the first start to the last end)")
    print(f"cluster start + warm-up: dask1 {runs['dask1']['startup_s']:.2f} s, dask2 "
          f"{runs['dask2']['startup_s']:.2f} s (not in the step times)")
    print("fingerprints and every file's sha256 equal across executors: yes (asserted)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=60_000, help="prompts (pass rate)")
    ap.add_argument("--k", type=int, default=10, help="rollouts per prompt")
    ap.add_argument("--docs", type=int, default=60_000, help="rows of the dedup / decontam input")
    ap.add_argument("--bench-items", type=int, default=10_000, help="decontam benchmark items")
    ap.add_argument("--steps", default=",".join(STEPS), help="comma-separated: " + ", ".join(STEPS))
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds per executor (the best counts; the first warms caches)")
    ap.add_argument("--local-threads", type=int, default=None,
                    help="DuckDB threads of the local baseline (default: every core)")
    ap.add_argument("--data", type=Path, default=None, help="make (or reuse) the data here")
    ap.add_argument("--make-data-only", action="store_true", help="make --data and stop")
    args = ap.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    if unknown := set(steps) - set(STEPS):
        ap.error(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    import thinkforge as tf

    work = args.data or Path(tempfile.mkdtemp(prefix="tf-daskscale-"))
    if not (work / "store").is_dir():
        t0 = time.perf_counter()
        make_data(work, args.prompts, args.k, args.docs, args.bench_items)
        print(f"data: {work}: {args.prompts} prompts x {args.k} rollouts, {args.docs} docs, "
              f"{args.bench_items} benchmark items, in {time.perf_counter() - t0:.1f} s",
              flush=True)
    if args.make_data_only:
        return
    store = tf.Store(work / "store")
    print(f"rollouts {store.get('rollouts').rows}, docs {store.get('docs').rows}; "
          f"load average before {os.getloadavg()}", flush=True)
    runs = measure(store, steps, args.repeat, args.local_threads)
    print(f"load average after {os.getloadavg()}", flush=True)
    report(runs, steps)


if __name__ == "__main__":
    main()
