"""Messages go through ``logging`` (docs/architecture.md, "Logging").

Every module logs to its own ``thinkforge.*`` logger (``logging.getLogger(__name__)``); this
module decides where the lines go.  On import of ``thinkforge`` the ``thinkforge`` logger
gets one handler, plain lines on stderr at INFO, so a script or notebook sees what the CLI
shows; the CLI then configures it from ``--log-level`` / ``--log-json`` / ``--quiet``:

* a terminal: rich's handler (no markup: messages carry file names and values as they are);
* otherwise (a batch job, a pipe): plain lines, ``warning: ...`` / ``error: ...`` prefixed;
* ``--log-json`` (clusters): one JSON object per line (time, level, logger, message).

An application that configures logging itself removes this handler
(``logging.getLogger("thinkforge").handlers.clear()``) or calls ``configure``.  Progress bars
stay on rich (``generators/progress.py``, ``filters/progress.py``); stdout is data only.
"""

from __future__ import annotations

import json
import logging
import sys
import time

ROOT = "thinkforge"
LEVELS = ("debug", "info", "warning", "error")


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is emitted (a test runner or
    click's runner swaps it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):  # StreamHandler.__init__ assigns one; stderr is always current
        pass


class PlainFormatter(logging.Formatter):
    """The message as it is; warnings and errors say so first."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors on clusters."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                           + f".{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()},
                          ensure_ascii=False)


def _handler(json_lines: bool) -> logging.Handler:
    if not json_lines and sys.stderr.isatty():
        from rich.logging import RichHandler

        from .output import stderr_console

        return RichHandler(console=stderr_console(), show_time=False, show_path=False,
                           markup=False, rich_tracebacks=False, keywords=[])
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    return handler


def configure(level: str = "info", json_lines: bool = False) -> None:
    """Route the ``thinkforge`` loggers to stderr at ``level`` (plain, rich or JSON lines)."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if getattr(h, "_thinkforge", False)]:
        logger.removeHandler(old)
    handler = _handler(json_lines)
    handler._thinkforge = True  # ours: replaced on the next configure
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def reset() -> None:
    """Back to the import-time default (tests: one CLI call's --quiet must not leak)."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if getattr(h, "_thinkforge", False)]:
        logger.removeHandler(old)
    install_default()


def install_default() -> None:
    """Plain lines at INFO (rich loads only for the CLI), once: called when ``thinkforge`` is
    first imported, so an application that configures logging afterwards wins."""
    logger = logging.getLogger(ROOT)
    if not any(getattr(h, "_thinkforge", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(PlainFormatter())
        handler._thinkforge = True
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
