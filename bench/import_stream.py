"""Import of many small JSONL rows: the columnar streaming importer vs the row-at-a-time one
it replaced.

"Before" is ``curation/importer.py`` (with its readers and presets) as of commit
``BEFORE`` (the last main commit with the importer that held every row as a Python dict),
loaded from git into a temporary package (it publishes through this tree's store, so the
publish is the same on both sides); "after" is the importer of this tree.  Each import
runs in a fresh process into a fresh store (`import_file`, publish included); the figure
is wall time, CPU time (user + system: the fair one when other jobs share the cores) and
peak RSS of that process (``wait4``).  "Before" reads the first ``--before-rows`` rows of
the file (it needs ~2 KB of RAM per row); "after" reads those rows too and, when
``--rows`` is larger, the whole file in a second run (peak RSS at both sizes).  The ratio
compares the two sides on the same rows.  ``--before-rows 0`` skips the old importer.

    python bench/import_stream.py --rows 1000000                    # ratio at 1M rows
    python bench/import_stream.py --rows 10000000 --before-rows 0   # RSS at 10M rows
    python bench/import_stream.py --rows 200000                     # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "14f4216"

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from thinkforge.manifests import DatasetStore
if sys.argv[2] == "before":
    from curation_before.importer import ImportOptions, import_file
else:
    from thinkforge.curation.importer import ImportOptions, import_file
start = time.perf_counter()
m = import_file(DatasetStore(Path(sys.argv[4])), Path(sys.argv[3]), ImportOptions(
    name="bench", category="math", mapping={"input": "question", "ground_truth": "answer"}))
Path(sys.argv[5]).write_text(json.dumps({"rows": m.rows, "seconds": time.perf_counter() - start}))
"""


def make_file(path: Path, rows: int) -> None:
    subjects = ["algebra", "geometry", "arithmetic", "counting", "number theory"]
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, rows, 100_000):
            f.write("".join(
                json.dumps({"question": f"What is {i} + {i % 97}? Show the steps.",
                            "answer": str(i + i % 97), "level": i % 5,
                            "subject": subjects[i % 5]}) + "\n"
                for i in range(start, min(rows, start + 100_000))))


def head(src: Path, dst: Path, rows: int) -> None:
    with src.open("rb") as f, dst.open("wb") as out:
        for _, line in zip(range(rows), f, strict=False):
            out.write(line)


def before_package(tmp: Path, repo: Path) -> Path:
    pkg = tmp / "before" / "curation_before"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("importer", "readers", "presets"):
        text = subprocess.run(["git", "-C", str(repo), "show", f"{BEFORE}:curation/{name}.py"],
                              check=True, capture_output=True, text=True).stdout
        (pkg / f"{name}.py").write_text(text)
    return pkg.parent


def run(side: str, path: Path, store: Path, extra_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result_file = store.with_suffix(".json")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(extra_path), side, str(path), str(store),
                             str(result_file)], stdout=sys.stderr, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{side} import failed (exit {proc.returncode})")
    result = json.loads(result_file.read_text())
    result["rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    result["cpu"] = usage.ru_utime + usage.ru_stime  # the fair figure on a shared machine
    shutil.rmtree(store, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the file (the largest run)")
    ap.add_argument("--before-rows", type=int, default=None,
                    help="rows for the old importer (default: --rows, at most 1,000,000; 0: skip it)")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    ap.add_argument("--git", default=str(ROOT), help="a git clone holding commit BEFORE (default: this one)")
    args = ap.parse_args()
    before_rows = min(args.rows, 1_000_000) if args.before_rows is None else min(args.before_rows, args.rows)
    runs: list[tuple[str, int]] = []
    if before_rows:
        runs += [("before", before_rows), ("after", before_rows)]
    if args.rows != before_rows:
        runs.append(("after", args.rows))
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        t = time.perf_counter()
        big = tmp / "rows.jsonl"
        make_file(big, args.rows)
        print(f"data: {args.rows:,} rows, {big.stat().st_size / 2**20:,.0f} MiB of JSONL "
              f"(made in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        files = {args.rows: big}
        if before_rows and before_rows != args.rows:
            files[before_rows] = tmp / "head.jsonl"
            head(big, files[before_rows], before_rows)
        extra = before_package(tmp, Path(args.git)) if before_rows else tmp
        results = []
        for side, rows in runs:
            r = run(side, files[rows], tmp / f"store-{side}-{rows}", extra)
            results.append((side, r))
            print(f"{side}: {r}", file=sys.stderr)
    print("\n| importer | rows | wall s | CPU s | wall us/row | CPU us/row | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    names = {"before": f"before (row at a time, {BEFORE})", "after": "after (columnar, streaming)"}
    for side, r in results:
        print(f"| {names[side]} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu']:.1f} | "
              f"{r['seconds'] / r['rows'] * 1e6:.2f} | {r['cpu'] / r['rows'] * 1e6:.2f} | "
              f"{r['rss_mib']:,.0f} MiB |")
    if before_rows:
        b, a = results[0][1], results[1][1]
        print(f"\nper row at {b['rows']:,} rows: {b['cpu'] / a['cpu']:.2f}x less CPU, "
              f"{b['seconds'] / a['seconds']:.2f}x less wall time (CPU: the whole process, start-up, "
              f"import and publish; wall: import_file); goal >= 5x")
    for side, r in results:
        if side == "after":
            print(f"peak RSS after, {r['rows']:,} rows: {r['rss_mib']:,.0f} MiB"
                  + (" (goal < 1 GiB at 10M rows)" if r["rows"] >= 10_000_000 else ""))


if __name__ == "__main__":
    main()
