"""Selection versions vs materialised copies: the filter chain quality -> exact dedup ->
decontam -> split on a synthetic SFT version with long outputs (issue 15), side by side.

Makes an SFT version of ``--rows`` rows (paired ON/OFF answers; each output a ``<think>``
block of ~``--output-bytes`` random words plus an answer; 2% malformed, 1% exact copies of
another row's output, 1% of prompts carrying a 20-word span of one of ``--items`` benchmark
prompts), then runs the chain twice in one process on the same store: as selections (the
default) and materialised (``Resources(materialize=True)``, what every filter did before).
Prints per step: wall time, bytes the step added to the store, and the ratio; checks both
chains end with the same fingerprints; then times ``thinkforge sql`` (``thinkforge.manifests.sql.run_sql``,
in process) over the 3-deep selection (decontam's output) against its materialised twin.

    flock /tmp/tf-cpu.lock python bench/selection_chain.py --rows 1000000
    # or in two lock holds: make the base once, then run the chains over it
    flock /tmp/tf-cpu.lock python bench/selection_chain.py --rows 1000000 --dir /tmp/sc --phase base
    flock /tmp/tf-cpu.lock python bench/selection_chain.py --dir /tmp/sc --phase chains
    python bench/selection_chain.py --rows 50000 --output-bytes 1024      # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no "
         "will more can who out up what about into than them only other time some could these "
         "two may first then do any like my now over such our man me even most made after also "
         "did many before must through back years where much your way well down should because "
         "each just those people how too little state good very make world still own see men "
         "work long get here between both life being under never day same another know while "
         "last might us great old year off come since against go came right used take three").split()


def text_buffer(rng: np.random.Generator, nbytes: int) -> bytes:
    vocab = [w.encode() for w in WORDS] + [f"w{i}".encode() for i in range(5000)]
    out = b" ".join(vocab[i] for i in rng.integers(0, len(vocab), nbytes // 5))
    return out[:nbytes]


def slices(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    data = buf[idx]
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data)
                                            ).cast(pa.string())


def make_base(store, rows: int, output_bytes: int, items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    buf = np.frombuffer(text_buffer(rng, 64 << 20), dtype=np.uint8)
    bench_texts = [bytes(buf[s:s + 400]).decode() for s in rng.integers(0, len(buf) - 400, items)]
    with store.writer("bench-items", "prompts", step={"type": "bench"}) as w:
        w.write(pa.table({"id": [f"b{i}" for i in range(items)], "source": ["bench"] * items,
                          "category": ["math"] * items, "verifier": ["none"] * items,
                          "input": [[{"role": "user", "content": t}] for t in bench_texts]}))
    items_tbl = w.manifest
    batch = 50_000
    with store.writer("base", "sft", step={"type": "bench", "config": {"rows": rows}}) as w:
        for lo in range(0, rows, batch):
            n = min(batch, rows - lo)
            i = np.arange(lo, lo + n)
            on = i % 2 == 0
            lengths = np.maximum(16, rng.normal(output_bytes, output_bytes / 4, n).astype(np.int64))
            starts = rng.integers(0, len(buf) - lengths.max() - 1, n)
            dup = rng.random(n) < 0.01  # an exact copy of the previous row of the same mode
            starts[dup] = np.roll(starts, 2)[dup]
            lengths[dup] = np.roll(lengths, 2)[dup]
            body = slices(buf, starts, lengths).to_pylist()
            bad = rng.random(n) < 0.02
            outputs = [(f"<think>{b}</think>\n\nThe answer is {k % 97}." if o else
                        f"The answer is {k % 97}. {b}") if not x else
                       ("<think>unfinished" if o else "<think>x</think> stray")
                       for b, o, x, k in zip(body, on, bad, i, strict=True)]
            pstarts = rng.integers(0, len(buf) - 300, n // 2 + 1)
            prompts = slices(buf, pstarts, np.full(len(pstarts), 240)).to_pylist()
            hit = rng.random(len(prompts)) < 0.01
            for j in np.flatnonzero(hit):
                words = bench_texts[rng.integers(0, items)].split()
                prompts[j] += " " + " ".join(words[5:25])
            w.write(pa.table({
                "id": [f"s{k:09d}" for k in i], "prompt_id": [f"p{k // 2:09d}" for k in i],
                "pair_id": [f"p{k // 2:09d}" for k in i], "category": ["math"] * n,
                "reasoning": np.where(on, "on", "off"),
                "system_prompt": np.where(on, "detailed thinking on", "detailed thinking off"),
                "input": [[{"role": "user", "content": prompts[(k - lo) // 2]}] for k in i],
                "output": outputs, "generator": ["synthetic"] * n,
                "output_tokens": (lengths // 4).astype(np.int64), "finish_reason": ["stop"] * n}))
    return w.manifest, items_tbl


def dir_bytes(store, manifests) -> int:
    return sum(p.stat().st_size for m in manifests for p in store.version_dir(m).rglob("*")
               if p.is_file())


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def chains(store, base, items, memory_limit: str, tag: str = ""):
    """Both chains, a step of one then the same step of the other (a change in the load of a
    shared machine hits both); wall and process CPU time (DuckDB's threads included)."""
    from thinkforge.curation.split import SplitConfig, run_split
    from thinkforge.filters.base import Resources
    from thinkforge.filters.decontam import DecontamConfig, run_decontam
    from thinkforge.filters.dedup import DedupConfig, run_dedup
    from thinkforge.filters.quality import QualityConfig, run_quality

    def steps(suffix, materialize):
        suffix += tag  # fresh names per run: a rerun on a kept store must not reuse versions
        res = Resources(materialize=materialize, memory_limit=memory_limit)
        return [
            ("quality", lambda d: [run_quality(store, d, f"q-{suffix}", QualityConfig(), resources=res)]),
            ("dedup (exact)", lambda d: [run_dedup(store, d, f"d-{suffix}",
                                                   DedupConfig(near=False, on="output"), resources=res)]),
            ("decontam", lambda d: [run_decontam(store, d, [items], f"c-{suffix}", DecontamConfig(),
                                                 resources=res)]),
            ("split", lambda d: list(run_split(store, d, f"s-{suffix}", SplitConfig(),
                                               materialize=materialize).values())),
        ]

    out = {"selection": [], "materialised": []}
    data = {"selection": base, "materialised": base}
    plans = {"selection": steps("selection", False), "materialised": steps("materialised", True)}
    for i in range(4):
        for suffix in ("selection", "materialised"):
            label, run = plans[suffix][i]
            t0, c0 = time.perf_counter(), cpu_seconds()
            made = run(data[suffix])
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            out[suffix].append((label, wall, dir_bytes(store, made), made, cpu))
            data[suffix] = made[0]
            print(f"  {suffix:12s} {label:14s} {wall:8.2f} s wall {cpu:8.2f} s cpu "
                  f"{dir_bytes(store, made):>14,d} B", file=sys.stderr, flush=True)
    return out["selection"], out["materialised"]


def sql_chain(store, base, items, memory_limit: str, tag: str) -> None:
    """The selection chain up to decontam (the 3-deep selection ``--phase sql`` reads) and
    its materialised twin written by ``materialize`` (same rows, same fingerprint)."""
    from thinkforge.filters.base import Resources
    from thinkforge.filters.decontam import DecontamConfig, run_decontam
    from thinkforge.filters.dedup import DedupConfig, run_dedup
    from thinkforge.filters.quality import QualityConfig, run_quality
    from thinkforge.manifests.maintenance import materialize

    res = Resources(memory_limit=memory_limit)
    t0 = time.perf_counter()
    q = run_quality(store, base, f"q-selection{tag}", QualityConfig(), resources=res)
    d = run_dedup(store, q, f"d-selection{tag}", DedupConfig(near=False, on="output"), resources=res)
    c = run_decontam(store, d, [items], f"c-selection{tag}", DecontamConfig(), resources=res)
    twin = materialize(store, c, f"c-materialised{tag}")
    assert twin.fingerprint == c.fingerprint
    print(f"selection chain + twin: {time.perf_counter() - t0:.1f} s; {c.ref} ({c.rows:,d} rows) "
          f"and {twin.ref}", file=sys.stderr, flush=True)


def time_sql(store, query: str, repeats: int) -> float:
    from thinkforge.manifests.sql import run_sql

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(run_sql(store, query).rows())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(args, base_bytes, sel, mat) -> None:
    for (label, _, _, a, _), (_, _, _, b, _) in zip(sel, mat, strict=True):
        assert [m.fingerprint for m in a] == [m.fingerprint for m in b], label
    print(f"\n{args.rows:,d} rows, outputs ~{args.output_bytes} B; base version "
          f"{base_bytes / 1e6:,.1f} MB (shards + row digests)\n")
    print("| step | selection wall (s) | materialised wall (s) | faster by (wall) | "
          "selection CPU (s) | materialised CPU (s) | faster by (CPU) | bytes added, selection | "
          "bytes added, materialised | selection / base |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (label, ws, bs, _, cs), (_, wm, bm, _, cm) in zip(sel, mat, strict=True):
        print(f"| {label} | {ws:.2f} | {wm:.2f} | {wm / ws:.1f}x | {cs:.2f} | {cm:.2f} | "
              f"{cm / cs:.1f}x | {bs:,d} | {bm:,d} | {100 * bs / base_bytes:.3f}% |")
    ts, tm = sum(r[1] for r in sel), sum(r[1] for r in mat)
    cs, cm = sum(r[4] for r in sel), sum(r[4] for r in mat)
    bs, bm = sum(r[2] for r in sel), sum(r[2] for r in mat)
    print(f"| **whole chain** | {ts:.2f} | {tm:.2f} | **{tm / ts:.1f}x** | {cs:.2f} | {cm:.2f} | "
          f"**{cm / cs:.1f}x** | {bs:,d} | {bm:,d} | **{100 * bs / base_bytes:.3f}%** |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--output-bytes", type=int, default=4096)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--memory-limit", default="6GiB")
    ap.add_argument("--sql-repeats", type=int, default=5)
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed); kept")
    ap.add_argument("--phase", choices=("all", "base", "chains", "sqlchain", "sql"), default="all",
                    help="base: only make the base (in --dir); chains: run the chains over the base "
                         "in --dir (no sql); sqlchain: only the selection chain's quality -> dedup -> "
                         "decontam over the base in --dir and its decontam output materialised "
                         "(`thinkforge materialize`: the same rows and fingerprint) as the twin; "
                         "sql: only the sql timings, over the newest chains in --dir")
    args = ap.parse_args()
    os.environ.pop("THINKFORGE_MATERIALIZE", None)
    from thinkforge.manifests import DatasetStore

    tmp = Path(args.dir or tempfile.mkdtemp(prefix="tf-selbench-"))
    try:
        store = DatasetStore(tmp / "store")
        t0 = time.perf_counter()
        if args.phase in ("chains", "sqlchain", "sql"):
            base, items = store.resolve("base"), store.resolve("bench-items")
            args.rows = base.rows
        else:
            base, items = make_base(store, args.rows, args.output_bytes, args.items)
        base_bytes = dir_bytes(store, [base])
        print(f"base: {base.rows:,d} rows, {base_bytes:,d} bytes ({time.perf_counter() - t0:.1f} s "
              "to make or open)", file=sys.stderr, flush=True)
        if args.phase == "base":
            return
        if args.phase == "sqlchain":
            sql_chain(store, base, items, args.memory_limit, tag=f"-{int(time.time())}")
            return
        if args.phase != "sql":
            print(f"load average at start: {os.getloadavg()}", file=sys.stderr, flush=True)
            sel, mat = chains(store, base, items, args.memory_limit, tag=f"-{int(time.time())}")
            print(f"load average after the chains: {os.getloadavg()}", file=sys.stderr, flush=True)
            report(args, base_bytes, sel, mat)
            deep_sel, deep_mat = sel[2][3][0], mat[2][3][0]
            if args.phase == "chains":
                return
        else:
            newest = sorted(n for n in store.names() if n.startswith("c-selection"))[-1]
            deep_sel = store.resolve(newest)
            deep_mat = store.resolve(newest.replace("c-selection", "c-materialised"))
        print(f"\nthinkforge sql over {deep_sel.ref} (3-deep selection) vs {deep_mat.ref} "
              f"(materialised twin), median of {args.sql_repeats}, in process; load average "
              f"{os.getloadavg()[0]:.2f}:\n")
        print("| query | selection (s) | materialised (s) | ratio |")
        print("|---|---|---|---|")
        for label, q in (("count(*) by reasoning", 'SELECT reasoning, count(*) FROM "{}" GROUP BY ALL'),
                         ("avg length(output) by reasoning",
                          'SELECT reasoning, avg(length(output)) FROM "{}" GROUP BY ALL'),
                         ("first 10 rows (id, output)", 'SELECT id, left(output, 20) FROM "{}" LIMIT 10'),
                         ("rows with 'w42 ' in output", "SELECT count(*) FROM \"{}\" WHERE output LIKE '%w42 %'")):
            a = time_sql(store, q.format(deep_sel.ref), args.sql_repeats)
            b = time_sql(store, q.format(deep_mat.ref), args.sql_repeats)
            print(f"| {label} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
        print("\nThe same queries straight on DuckDB over the selection's relation, in version order "
              "(ORDER BY the selection's row; what exports and trainers read) and in any order "
              "(what a view could use):\n")
        print("| query | ordered (s) | any order (s) | materialised (s) | ordered / mat | any / mat |")
        print("|---|---|---|---|---|---|")
        from thinkforge.manifests.duck import connect
        from thinkforge.manifests.selection import row_relation

        con = connect()
        for label, q in (("count(*) by reasoning", "SELECT reasoning, count(*) FROM {} GROUP BY ALL"),
                         ("avg length(output) by reasoning",
                          "SELECT reasoning, avg(length(output)) FROM {} GROUP BY ALL"),
                         ("rows with 'w42 ' in output", "SELECT count(*) FROM {} WHERE output LIKE '%w42 %'")):
            got = []
            for rel in (row_relation(store, deep_sel), row_relation(store, deep_sel, ordered=False),
                        row_relation(store, deep_mat)):
                times = []
                for _ in range(args.sql_repeats):
                    t0 = time.perf_counter()
                    con.execute(q.format(rel)).fetchall()
                    times.append(time.perf_counter() - t0)
                got.append(statistics.median(times))
            print(f"| {label} | {got[0]:.3f} | {got[1]:.3f} | {got[2]:.3f} | {got[0] / got[2]:.2f}x | "
                  f"{got[1] / got[2]:.2f}x |")
        con.close()
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
