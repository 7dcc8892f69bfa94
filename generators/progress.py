"""A rich progress bar on stderr: rows done, tokens per second, ETA (silent with --quiet)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class GenerationProgress:
    def __init__(self, description: str, total: int, done: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.tokens = 0
        self.started = time.monotonic()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[tok_s]:>7.1f} tok/s"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not enabled, transient=False)
        self._task = self._progress.add_task(description, total=total, completed=done, tok_s=0.0)

    def __enter__(self) -> GenerationProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, rows: int, tokens: int) -> None:
        self.tokens += tokens
        elapsed = max(1e-9, time.monotonic() - self.started)
        self._progress.update(self._task, advance=rows, tok_s=self.tokens / elapsed)

    def describe(self, description: str) -> None:
        self._progress.update(self._task, description=description)
