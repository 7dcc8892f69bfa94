"""Where things are printed: data to stdout, logs, progress and errors to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# piped output keeps whole rows: 160 columns instead of rich's default 80
out = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    if not rows:
        out.print("(no rows)")
        return
    table = Table(title=title, show_lines=False)
    for column in rows[0]:
        table.add_column(str(column), overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(table)


def log(message: str) -> None:
    err.print(message)
