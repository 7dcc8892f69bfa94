"""Generation progress on stderr (silent with --quiet): rows, tokens/s, errors, cost, ETA.

On a terminal it is a rich progress bar.  When stderr is not a terminal (a batch job, a
pipe, CI) a plain line is printed every ``THINKFORGE_PROGRESS_INTERVAL_S`` seconds
(default 30) and once at the end, so a log shows that a long run is alive, and a dead
teacher shows up as errors climbing while rows stand still.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

INTERVAL_S = 30.0


class GenerationProgress:
    def __init__(self, description: str, total: int, done: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.description, self.total, self.done = description, total, done
        self.tokens, self.cost = 0, 0.0
        self.errors: Counter = Counter()
        self.started = time.monotonic()
        self._rows_now = 0  # rows finished by this attempt (the ETA's rate)
        self.console = Console(stderr=True)
        self.lines = enabled and not self.console.is_terminal
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[tok_s]:>7.1f} tok/s"), TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, disable=not enabled or self.lines, transient=False)
        self._task = self._progress.add_task(description, total=total, completed=done, tok_s=0.0,
                                             extra="")

    def __enter__(self) -> GenerationProgress:
        self._progress.start()
        if self.lines:
            interval = float(os.environ.get("THINKFORGE_PROGRESS_INTERVAL_S") or INTERVAL_S)
            self._ticker = threading.Thread(target=self._tick, args=(interval,), daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._print()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._print()

    def _print(self) -> None:
        self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def line(self) -> str:
        """One plain progress line: rows, tokens/s, errors, cost, ETA."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        errors = sum(self.errors.values())
        kinds = ", ".join(f"{k} {n}" for k, n in self.errors.most_common(3))
        left = self.total - self.done
        eta = (_duration(left * elapsed / self._rows_now) if self._rows_now and left > 0
               else "0s" if left <= 0 else "?")
        cost = f", ${self.cost:.4f}" if self.cost else ""
        return (f"{self.description}: {self.done}/{self.total} rows{share}, "
                f"{self.tokens / elapsed:.1f} tok/s, errors {errors}"
                f"{f' ({kinds})' if kinds else ''}{cost}, ETA {eta}")

    def request_done(self, completion, cost: float = 0.0) -> None:
        """One request finished (answered or failed after its last try)."""
        if completion.ok:
            self.advance(1, completion.completion_tokens, cost)
        else:
            self.errors[completion.error_kind] += 1
            self.advance(1, 0)

    def advance(self, rows: int, tokens: int, cost: float = 0.0) -> None:
        self.done += rows
        self._rows_now += rows
        self.tokens += tokens
        self.cost += cost
        elapsed = max(1e-9, time.monotonic() - self.started)
        extra = f"err {sum(self.errors.values())}" if self.errors else ""
        extra += f" ${self.cost:.4f}" if self.cost else ""
        self._progress.update(self._task, advance=rows, tok_s=self.tokens / elapsed, extra=extra)

    def describe(self, description: str) -> None:
        self.description = description
        self._progress.update(self._task, description=description)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
