"""Import of many small JSONL rows: the streaming importer vs the row-at-a-time one it replaced.

"Before" is ``curation/importer.py`` (with its readers and presets) as of commit
``BEFORE`` (the last main commit with the importer that held every row as a Python dict),
loaded from git into a temporary package; "after" is the importer of this tree.  Each
import runs in a fresh process into a fresh store (`import_file`, publish included); the
figure is wall time, CPU time (user + system: the fair one when other jobs share the
cores) and peak RSS of that process (``wait4``).  Both sides read the same
file; "before" can be given fewer rows (``--before-rows``) since it needs ~2 KB of RAM
per row, and the comparison is per row.

    python bench/import_stream.py --rows 10000000 --before-rows 1000000
    python bench/import_stream.py --rows 200000            # quick
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
from manifests import DatasetStore
if sys.argv[2] == "before":
    from curation_before.importer import ImportOptions, import_file
else:
    from curation.importer import ImportOptions, import_file
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
    ap.add_argument("--rows", type=int, default=200_000, help="rows for the streaming importer")
    ap.add_argument("--before-rows", type=int, default=None,
                    help="rows for the old importer (default: --rows, at most 1,000,000)")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    ap.add_argument("--git", default=str(ROOT), help="a git clone holding commit BEFORE (default: this one)")
    args = ap.parse_args()
    before_rows = args.before_rows or min(args.rows, 1_000_000)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        t = time.perf_counter()
        big = tmp / "rows.jsonl"
        make_file(big, max(args.rows, before_rows))
        print(f"data: {max(args.rows, before_rows):,} rows, {big.stat().st_size / 2**20:,.0f} MiB of JSONL "
              f"(made in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        small = big
        if before_rows != max(args.rows, before_rows):
            small = tmp / "before.jsonl"
            head(big, small, before_rows)
        extra = before_package(tmp, Path(args.git))
        results = {}
        for side, path in (("before", small), ("after", big if args.rows >= before_rows else small)):
            results[side] = run(side, path, tmp / f"store-{side}", extra)
            print(f"{side}: {results[side]}", file=sys.stderr)
        if small != big:
            small.unlink()
    b, a = results["before"], results["after"]
    us = {k: v["seconds"] / v["rows"] * 1e6 for k, v in results.items()}
    cpu = {k: v["cpu"] / v["rows"] * 1e6 for k, v in results.items()}
    print("\n| importer | rows | wall s | CPU s | wall us/row | CPU us/row | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for key, name in (("before", f"before (row at a time, {BEFORE})"), ("after", "after (streaming)")):
        r = results[key]
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu']:.1f} | {us[key]:.1f} | "
              f"{cpu[key]:.1f} | {r['rss_mib']:,.0f} MiB |")
    print(f"\nper row: {cpu['before'] / cpu['after']:.2f}x less CPU, {us['before'] / us['after']:.2f}x "
          f"less wall time (the whole process: start-up, import, publish); peak RSS "
          f"{b['rss_mib']:,.0f} MiB for {b['rows']:,} rows before, {a['rss_mib']:,.0f} MiB for "
          f"{a['rows']:,} rows after")


if __name__ == "__main__":
    main()
