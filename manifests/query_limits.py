"""The limits a ``thinkforge sql`` query runs under, for the whole process
(docs/reliability.md, "Read-only SQL"): DuckDB's own memory limit is not enough (a string
expression can peak far past it) and ``interrupt`` alone can wait for a long function call.

``QueryGuard`` interrupts the query at its ``--timeout``, watches the process's resident
memory, caps its data segment while the query runs (restored after), and ends a process stuck
past the deadline; ``SigintWatcher`` turns Ctrl-C into an interrupt of the query.
"""

from __future__ import annotations

import signal
import threading

import duckdb


class QueryGuard:
    """The query's limits, held for the whole process while the query runs.

    ``timeout``: a thread interrupts the connection at the deadline and again every 0.1 s
    (an interrupt that lands between two phases of a query is otherwise lost); with
    ``hard_stop`` (the CLI) a query still running 1.5 s later, stuck in one long function
    call that never checks for interrupts, ends the process with exit 11.
    ``memory_bytes``: DuckDB's own limit covers its buffers only; the process's data segment
    is capped too (``RLIMIT_DATA``, which counts heap and private anonymous mappings, not the
    mapped libraries) at its size now plus the limit, so one huge allocation (a 2 GB
    ``repeat``) fails at once, and the thread interrupts the query when the resident size
    grows past the limit (anonymous resident memory: files the query reads, mapped by the
OS's page cache, are not the query's).  Both are restored when the query ends.
    """

    SLACK = 64 << 20  # thread stacks and the rows being written out

    def __init__(self, con, timeout: float | None, memory_bytes: int | None, hard_stop: bool):
        import time

        self.con, self.timeout, self.memory_bytes, self.hard_stop = con, timeout, memory_bytes, hard_stop
        self.timed_out = self.over_memory = False
        self._done = threading.Event()
        self._old_limit = None
        self._deadline = time.monotonic() + timeout if timeout else None
        self._rss_cap = None
        if memory_bytes:
            rss, data = _proc_status("RssAnon"), _proc_status("VmData")
            self._rss_cap = rss + memory_bytes + self.SLACK if rss else None
            if data:
                self._old_limit = _cap_data(data + memory_bytes + self.SLACK)
        if self._deadline or self._rss_cap:
            threading.Thread(target=self._watch, daemon=True, name="thinkforge-query-guard").start()

    def _watch(self) -> None:
        import os
        import sys
        import time

        stopped_at = None
        while not self._done.wait(0.05):
            now = time.monotonic()
            if self._deadline and now >= self._deadline:
                self.timed_out = True
            if self._rss_cap and (_proc_status("RssAnon") or 0) > self._rss_cap:
                self.over_memory = True
            if not (self.timed_out or self.over_memory):
                continue
            stopped_at = stopped_at or now
            try:
                self.con.interrupt()
            except duckdb.Error:  # closed meanwhile: the query is over
                return
            if self.hard_stop and now - stopped_at > 1.5 and not self._done.is_set():
                what = (f"--timeout {self.timeout:g} s" if self.timed_out else "--memory-limit")
                sys.stderr.write(f"error: query stopped: it ran past {what} and did not stop when "
                                 "interrupted (one long function call)\n  hint: narrow the query\n")
                sys.stderr.flush()
                os._exit(11)
            time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()
        if self._old_limit is not None:
            import resource

            try:
                resource.setrlimit(resource.RLIMIT_DATA, self._old_limit)
            except (ValueError, OSError):
                pass
            self._old_limit = None


def _proc_status(field: str) -> int | None:
    """A size from /proc/self/status in bytes (Linux); None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cap_data(limit: int):
    """Lower RLIMIT_DATA's soft limit to ``limit``; returns the old limits (None: not set)."""
    try:
        import resource

        old = resource.getrlimit(resource.RLIMIT_DATA)
        if old[0] != resource.RLIM_INFINITY and old[0] <= limit:
            return None
        hard = old[1]
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY
                                                  else min(limit, hard), hard))
        return old
    except (ImportError, ValueError, OSError):
        return None


def parse_size(text: str) -> int:
    """Bytes of a size such as 2GB, 512MiB or 100 MB (DuckDB's units: KB = 1000 bytes)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"{text!r} is not a size")
    unit = m.group(2).upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return int(float(m.group(1)) * scale)


class SigintWatcher:
    """Ctrl-C stops the query even while DuckDB holds the main thread in C code.

    Python runs its SIGINT handler only between bytecodes, and DuckDB does not check for
    signals while rows are fetched; the C-level handler does write the signal number to
    the wakeup fd at once, so a thread waiting on it interrupts the connection.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._old = None
        if threading.current_thread() is not threading.main_thread():
            return
        import socket

        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        try:
            self._old = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        except ValueError:
            self._read.close()
            self._write.close()
            return

        def watch() -> None:
            try:
                while data := self._read.recv(16):
                    if signal.SIGINT in data:
                        con.interrupt()
            except (OSError, duckdb.Error):  # closed: the query is over anyway
                pass

        threading.Thread(target=watch, daemon=True).start()

    def close(self) -> None:
        if self._old is not None:
            signal.set_wakeup_fd(self._old)
            self._old = None
            self._write.close()
            self._read.shutdown(2)
            self._read.close()
