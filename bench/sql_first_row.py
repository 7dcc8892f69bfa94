"""Time to first row: `thinkforge sql` versus plain DuckDB on the same query and Parquet.

Both run as fresh processes (what a researcher feels at the shell), and in process
(the engine's share). Prints medians of several runs and the ratio ours / baseline.

    python bench/sql_first_row.py [--rows 1000000] [--runs 7] [--no-compile]

Before timing, thinkforge's modules are byte-compiled (``compileall``), as ``pip install``
does for a wheel and as DuckDB's own modules already are: in an editable install on a
machine with ``PYTHONDONTWRITEBYTECODE=1`` every fresh process would otherwise compile
thinkforge from source (~30 ms) while ``import duckdb`` loads bytecode.  ``--no-compile``
measures the source as it is (no ``__pycache__`` written; one left by an earlier run is read).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from thinkforge.manifests import DatasetStore  # noqa: E402
from thinkforge.manifests.sql import run_sql  # noqa: E402

QUERY = "SELECT category, count(*) AS n, avg(length(input[1].content)) AS chars FROM bench GROUP BY ALL"


def build(store: DatasetStore, rows: int) -> list[Path]:
    cats = ["math", "code", "science", "chat"]
    batch = 200_000
    with store.writer("bench", "prompts", step={"type": "bench", "config": {"rows": rows}}) as w:
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            ids = [f"p{i}" for i in range(start, start + n)]
            w.write(pa.table({
                "id": ids, "source": ["bench"] * n, "category": [cats[i % 4] for i in range(start, start + n)],
                "input": [[{"role": "user", "content": f"question number {i} " * 8}] for i in range(start, start + n)],
                "verifier": ["none"] * n}))
    return store.shard_paths(w.manifest)


def first_line_seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.communicate()
    return elapsed


def median_of(fn, runs: int) -> float:
    fn()  # warm the OS cache
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true",
                        help="do not byte-compile thinkforge's modules first")
    args = parser.parse_args()
    if not args.no_compile:
        import compileall

        import thinkforge.manifests

        import thinkforge

        for package in (thinkforge, thinkforge.manifests):  # the modules `thinkforge sql` imports
            for folder in package.__path__:
                compileall.compile_dir(folder, quiet=1, maxlevels=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = DatasetStore(Path(tmp) / "store")
        shards = build(store, args.rows)
        files = ", ".join(f"'{p}'" for p in shards)
        plain = QUERY.replace("FROM bench", f"FROM read_parquet([{files}])")
        ours_cli = [sys.executable, "-m", "thinkforge", "--store", str(store.root), "--quiet", "sql",
                    QUERY, "--format", "csv"]
        base_cli = [sys.executable, "-c",
                    f"import duckdb; print(duckdb.execute({plain!r}).fetchone())"]

        def ours_inproc() -> float:
            t = time.perf_counter()
            next(run_sql(store, QUERY).rows())
            return time.perf_counter() - t

        def base_inproc() -> float:
            import duckdb

            t = time.perf_counter()
            con = duckdb.connect()
            con.execute(plain).fetchone()
            con.close()
            return time.perf_counter() - t

        results = [
            ("process: thinkforge sql vs python -c duckdb.sql",
             median_of(lambda: first_line_seconds(ours_cli), args.runs),
             median_of(lambda: first_line_seconds(base_cli), args.runs)),
            ("in process: run_sql vs duckdb.connect().sql", median_of(ours_inproc, args.runs),
             median_of(base_inproc, args.runs)),
        ]
    print(f"time to first row, {args.rows:,} prompt rows, median of {args.runs} runs")
    print(f"{'measure':<50} {'thinkforge':>11} {'duckdb':>9} {'ratio':>7}")
    for label, ours, base in results:
        print(f"{label:<50} {ours * 1000:>9.0f}ms {base * 1000:>7.0f}ms {ours / base:>6.2f}x")


if __name__ == "__main__":
    main()
