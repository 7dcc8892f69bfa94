"""Where things are printed: data to stdout, logs, progress and errors to stderr.

rich is imported on first use, so commands that print plain data start faster.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any


@cache
def stdout_console():
    from rich.console import Console

    # piped output keeps whole rows: 160 columns instead of rich's default 80
    # emoji=False: data strings such as "pair_partner:on:incorrect" keep their ":on:"
    return Console(soft_wrap=True, highlight=False, emoji=False,
                   width=None if sys.stdout.isatty() else 160)


@cache
def stderr_console():
    from rich.console import Console

    # soft_wrap: a log line is never broken mid-sentence at 80 columns when stderr is a
    # pipe or a file (a terminal still wraps it visually)
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class _LazyConsole:
    """`err.print(...)` without importing rich until something is printed."""

    def __init__(self, factory):
        self._factory = factory

    def __getattr__(self, name: str):
        return getattr(self._factory(), name)


out = _LazyConsole(stdout_console)
err = _LazyConsole(stderr_console)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_published(manifest, as_json: bool) -> None:
    """What a command that publishes a version prints on stdout: the manifest, or its ref.

    An sft version below the verified-rate threshold also gets its warning on stderr
    (even with --quiet: it is not progress).
    """
    if as_json:
        print_json(manifest.model_dump(by_alias=True))
    else:
        sys.stdout.write(manifest.ref + "\n")
    warn_verified(manifest)


def warn_verified(manifest) -> None:
    from thinkforge.manifests.gates import verified_rate_warning

    warning = verified_rate_warning(manifest)
    if warning:
        import logging

        logging.getLogger("thinkforge.cli").warning(warning)


def print_table(rows: list[dict[str, Any]], title: str | None = None,
                columns: list[str] | None = None) -> None:
    """Rows as a rich table; values are Text, never markup, so '[red]42[/red]' prints as is.
    With no rows: the ``columns`` header (when known) over a "(no rows)" caption."""
    from rich.table import Table
    from rich.text import Text

    if not rows and not columns:
        out.print("(no rows)")
        return
    table = Table(title=None if title is None else Text(title), show_lines=False,
                  caption=None if rows else Text("(no rows)"))
    for column in (rows[0] if rows else columns):
        table.add_column(Text(str(column)), overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row.values()))
    out.print(table)


def log(message: str) -> None:
    """An INFO line of the CLI on stderr (``thinkforge.cli`` logger; thinkforge/logs.py): as it
    is, never markup nor emoji codes, since messages carry file names and values (rejection
    reasons such as ``pair_partner:on:incorrect``)."""
    import logging

    logging.getLogger("thinkforge.cli").info(message)
