"""Load test of `thinkforge serve`: 32 concurrent clients, mixed page and SQL requests.

A real server (`thinkforge serve` in its own process, uvicorn on 127.0.0.1) over a store
of one SFT version (``--pairs`` ON/OFF pairs), its prompts, rejected rows, a training
run record and a generation checkpoint.  First one client alone (the baseline latency),
then ``--clients`` at once for ``--seconds``.  Prints requests, status codes, lost
responses (errors, timeouts), p50/p95/p99 latency per request kind, and the server's
RSS (sampled every 0.5 s); exits 1 on any 5xx or lost response, or when the RSS went
past ``--max-rss-mib``.  Loopback only.

    flock /tmp/tf-cpu.lock .venv/bin/python bench/serve_load.py [--clients 32] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil

CATEGORIES = ["math", "code", "science", "chat"]


def build_store(root: Path, pairs: int) -> None:
    from thinkforge.generators.runs import RunCheckpoint
    from thinkforge.manifests import DatasetStore
    from thinkforge.manifests.training_runs import RunData, RunRecord, TrainingRuns

    store = DatasetStore(root)
    prompts = [{"id": f"p{i}", "source": "bench", "category": CATEGORIES[i % 4],
                "input": [{"role": "user", "content": f"What is {i} + {i}? " * 4}],
                "ground_truth": str(2 * i), "verifier": "math", "license": "MIT"} for i in range(pairs)]
    with store.writer("bench-prompts", "prompts", step={"type": "bench", "config": {}}) as w:
        w.write(prompts)
    rows = []
    for i, p in enumerate(prompts):
        for mode in ("on", "off"):
            answer = str(2 * i if i % 5 else i)
            output = (f"<think>{i} plus {i} is {2 * i}. " * 6 + "</think>\n\n" if mode == "on" else "") + \
                f"The answer is {answer}."
            rows.append({"id": f"s{i}-{mode}", "prompt_id": p["id"], "pair_id": f"pair{i}",
                         "category": p["category"], "reasoning": mode,
                         "system_prompt": f"detailed thinking {mode}", "input": p["input"], "output": output,
                         "generator": "bench-model", "license": "MIT", "ground_truth": p["ground_truth"],
                         "verified": answer == p["ground_truth"], "answer": answer,
                         "output_tokens": len(output) // 4, "finish_reason": "stop"})
    with store.writer("bench-sft", "sft", step={"type": "bench", "config": {}},
                      parents=[store.resolve("bench-prompts")]) as w:
        w.write(rows)
        w.reject([{"id": f"r{i}", "detail": "no think block"} for i in range(pairs // 20)], reason="format")
    sft = w.manifest
    TrainingRuns(store).publish(RunRecord(
        run_id="run-sft-bench-1", method="sft", base_model="bench-base", output_dir="/tmp/none",
        data=[RunData(ref=sft.ref, name=sft.name, version=sft.version, kind=sft.kind,
                      fingerprint=sft.fingerprint, rows=sft.rows)]))
    checkpoint = RunCheckpoint(store.runs_dir, "bench-gen", {"name": "bench-gen", "requests": 2000})
    now = time.time()
    checkpoint.append([{"key": f"k{i}", "prompt_id": f"p{i}", "mode": "on", "sample": 0, "model": "m",
                        "text": "t", "prompt_tokens": 5, "completion_tokens": 40, "finish_reason": "stop",
                        "error_kind": None, "error": None, "attempts": 1, "seconds": 1.0,
                        "finished_at": now + i / 10} for i in range(500)])


def requests_mix(pairs: int):
    """(kind, method, path, json body) drawn at random: pages, API reads and SQL."""
    rng = random.Random()
    rows = 2 * pairs

    def draw():
        r = rng.random()
        if r < 0.10:
            return "catalog", "GET", "/", None
        if r < 0.30:
            return "version page", "GET", f"/v/bench-sft@v1?offset={rng.randrange(0, rows, 25)}", None
        if r < 0.40:
            cat = rng.choice(CATEGORIES)
            return "filtered page", "GET", f"/v/bench-sft@v1?mode=on&category={cat}&offset=" \
                                           f"{rng.randrange(0, pairs // 4, 25)}", None
        if r < 0.55:
            return "pair page", "GET", f"/v/bench-sft@v1/pair/pair{rng.randrange(pairs)}", None
        if r < 0.65:
            return "rows api", "GET", f"/api/versions/bench-sft/rows?size=50&offset={rng.randrange(rows)}", None
        if r < 0.72:
            return "lineage/runs", "GET", rng.choice(["/v/bench-sft@v1/lineage", "/api/runs", "/runs"]), None
        if r < 0.90:
            query = (f'SELECT category, reasoning, count(*) AS n, avg(output_tokens) AS tokens FROM "bench-sft" '
                     f"WHERE output_tokens > {rng.randrange(60)} GROUP BY ALL ORDER BY ALL")
            return "sql api", "POST", "/api/sql", {"query": query, "size": 100}
        query = f'SELECT * FROM "bench-sft" WHERE verified = false AND id > \'s{rng.randrange(pairs)}\''
        return "sql page", "GET", "/sql?" + httpx.QueryParams({"q": query}).__str__(), None

    return draw


async def client_loop(base: str, token: str, draw, stop_at: float, results: list, lost: list) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        while time.monotonic() < stop_at:
            kind, method, path, body = draw()
            started = time.perf_counter()
            try:
                response = await client.request(method, path, json=body)
                await response.aread()
            except httpx.HTTPError as exc:
                lost.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            results.append((kind, response.status_code, time.perf_counter() - started))


async def phase(base: str, token: str, draw, clients: int, seconds: float):
    results: list = []
    lost: list = []
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(client_loop(base, token, draw, stop_at, results, lost) for _ in range(clients)))
    return results, lost


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(title: str, results: list, lost: list, seconds: float) -> float:
    latencies = [r[2] for r in results]
    codes = Counter(r[1] for r in results)
    print(f"\n{title}: {len(results)} responses in {seconds:.0f} s ({len(results) / seconds:.1f}/s), "
          f"status {dict(sorted(codes.items()))}, lost {len(lost)}")
    if not latencies:
        return float("nan")
    print(f"  all: p50 {pct(latencies, .5):.0f} ms  p95 {pct(latencies, .95):.0f} ms  "
          f"p99 {pct(latencies, .99):.0f} ms  max {max(latencies) * 1000:.0f} ms")
    by_kind = defaultdict(list)
    for kind, _, latency in results:
        by_kind[kind].append(latency)
    for kind, values in sorted(by_kind.items()):
        print(f"  {kind:14s} n={len(values):5d}  p50 {pct(values, .5):6.0f} ms  p95 {pct(values, .95):6.0f} ms")
    for line in lost[:5]:
        print("  lost:", line)
    return pct(latencies, .95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline-seconds", type=float, default=10)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--max-rss-mib", type=float, default=1024,
                        help="the server's RSS bound (4 sandboxes at once, each under --memory-limit 1GB)")
    args = parser.parse_args()

    from thinkforge.console.tokens import TokenFile

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        root = Path(tmp) / "store"
        t0 = time.perf_counter()
        build_store(root, args.pairs)
        token = TokenFile(Path(tmp) / "tokens.json").add("bench")
        print(f"store: {2 * args.pairs} SFT rows, built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        server = subprocess.Popen([sys.executable, "-m", "thinkforge", "--store", str(root), "--quiet", "serve",
                                   "--token-file", str(Path(tmp) / "tokens.json"), "--host", "127.0.0.1",
                                   "--port", str(args.port)])
        base = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(base + "/login", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                print("the server did not start", file=sys.stderr)
                return 1
            proc = psutil.Process(server.pid)
            rss = [proc.memory_info().rss]
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.wait(0.5):
                    rss.append(proc.memory_info().rss)

            threading.Thread(target=sample, daemon=True).start()
            draw = requests_mix(args.pairs)
            base_results, base_lost = asyncio.run(phase(base, token, draw, 1, args.baseline_seconds))
            p95_one = report("1 client (baseline)", base_results, base_lost, args.baseline_seconds)
            rss_after_baseline = max(rss)
            results, lost = asyncio.run(phase(base, token, draw, args.clients, args.seconds))
            p95_many = report(f"{args.clients} clients", results, lost, args.seconds)
            sampling.set()
            errors = sum(1 for r in results + base_results if r[1] >= 500)
            print(f"\nserver RSS: {rss[0] / 2**20:.0f} MiB at start, {rss_after_baseline / 2**20:.0f} MiB after "
                  f"the baseline, {max(rss) / 2**20:.0f} MiB max, {rss[-1] / 2**20:.0f} MiB at the end")
            print(f"p95 latency: {args.clients} clients {p95_many:.0f} ms vs 1 client {p95_one:.0f} ms "
                  f"(ratio {p95_many / p95_one:.1f}x); 5xx: {errors}; lost: {len(lost) + len(base_lost)}; "
                  f"median of 1 client {statistics.median(r[2] for r in base_results) * 1000:.0f} ms")
            over = max(rss) / 2**20 > args.max_rss_mib
            if over:
                print(f"RSS went past --max-rss-mib {args.max_rss_mib:g}", file=sys.stderr)
            return 1 if errors or lost or base_lost or over else 0
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
