"""What a filter step is doing, on stderr: one line per phase with its progress and ETA.

A phase is either a DuckDB statement (its progress is DuckDB's own estimate, polled from a
background thread with ``query_progress()``) or a Python loop over rows (``advance``).  A
finished phase that took a second or more keeps its line with the time it took, so the
output also says where the time went; quicker ones vanish.  Disabled (the library default)
it does nothing and starts no thread.
"""

from __future__ import annotations

import threading
from typing import Any

_POLL_SECONDS = 0.25
KEEP_PHASES_OF_SECONDS = 1.0  # a finished phase keeps its line only if it took this long


class StepProgress:
    def __init__(self, title: str, con: Any, enabled: bool):
        self.title, self.con, self.enabled = title, con, enabled
        self._task = None
        self._rows = False  # the current phase counts rows (else: DuckDB's percentage)
        self._stop = threading.Event()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=20),
            TextColumn("{task.fields[done]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True))
        self._poller = threading.Thread(target=self._poll, name="step-progress", daemon=True)

    def __enter__(self) -> StepProgress:
        if self.enabled:
            self._progress.start()
            self._poller.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._poller.join()
            if exc_type is None:  # a failed phase keeps its last state, not "done"
                self._finish()
            self._progress.stop()

    def phase(self, description: str, rows: int | None = None) -> None:
        """Start a phase: a DuckDB statement, or a loop over ``rows`` rows."""
        if not self.enabled:
            return
        self._finish()
        self._rows = rows is not None
        self._task = self._progress.add_task(f"{self.title}: {description}",
                                             total=rows if self._rows else 100.0,
                                             done=f"0/{rows:,} rows" if self._rows else "")

    def advance(self, rows: int) -> None:
        if self.enabled and self._task is not None:
            self._progress.advance(self._task, rows)
            task = self._progress.tasks[self._task]
            self._progress.update(self._task, done=f"{int(task.completed):,}/{int(task.total):,} rows")

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            self._progress.update(self._task, completed=task.total,
                                  done=f"{int(task.total):,} rows" if self._rows else "done",
                                  visible=(task.elapsed or 0) >= KEEP_PHASES_OF_SECONDS)
            self._progress.stop_task(self._task)
            self._task = None

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            task = self._task
            if task is None or self._rows:
                continue
            try:
                percent = self.con.query_progress()
            except Exception:  # the connection is closing: nothing to report
                return
            if percent >= 0:
                self._progress.update(task, completed=min(percent, 100.0), done=f"{percent:3.0f}%")
