"""Where a filter step's time goes: wall time of every DuckDB statement it runs (bench helper).

    from sqltrace import traced    # in a bench script: bench/ is on its path
    with traced(min_seconds=0.1):
        run_decontam(...)          # prints "[ 1.23 s] <statement>" lines on stderr

Patches ``thinkforge.filters.base.open_connection`` so the step's connection times each ``execute``;
the time between statements is Python (numpy, UDFs outside DuckDB, publishing).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class _Timed:
    def __init__(self, con, min_seconds: float, log: list):
        self._con, self._min, self._log = con, min_seconds, log

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        t0 = time.perf_counter()
        result = self._con.execute(sql, *args, **kwargs)
        dt = time.perf_counter() - t0
        self._log.append((dt, sql))
        if dt >= self._min:
            print(f"    [{dt:6.2f} s] {' '.join(str(sql).split())[:160]}", file=sys.stderr, flush=True)
        return result


@contextmanager
def traced(min_seconds: float = 0.1):
    import thinkforge.filters.base as base

    original = base.open_connection
    log: list = []

    def open_connection(store, resources):
        con, spill = original(store, resources)
        return _Timed(con, min_seconds, log), spill

    base.open_connection = open_connection
    t0 = time.perf_counter()
    try:
        yield log
    finally:
        base.open_connection = original
        total = time.perf_counter() - t0
        in_sql = sum(dt for dt, _ in log)
        print(f"    step {total:.2f} s: {in_sql:.2f} s in {len(log)} DuckDB statements, "
              f"{total - in_sql:.2f} s outside them", file=sys.stderr, flush=True)
