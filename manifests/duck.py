"""The one place that opens DuckDB connections and turns names and paths into SQL text.

Values are always bound with ``?``; identifiers and store paths are quoted here, after
validation, and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

_NO_EXTENSION_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def quote_ident(name: str) -> str:
    """Quote an identifier (table, view or column name) for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a string literal; used only for paths the store generated itself."""
    return "'" + text.replace("'", "''") + "'"


def parquet_source(paths: Iterable[Path | str]) -> str:
    """SQL for a relation over Parquet shards, with the shard list spelled out (no globs)."""
    items = ", ".join(quote_literal(str(p)) for p in paths)
    return f"read_parquet([{items}])"


def connect(database: str | Path = ":memory:", *, read_only: bool = False,
            memory_limit: str | None = None, temp_directory: str | Path | None = None,
            threads: int | None = None,
            storage_version: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection for thinkforge's own work (filters, stats, catalog builds).

    ``memory_limit`` and ``temp_directory`` keep big jobs out of core: DuckDB spills to
    the temp directory instead of failing when the limit is reached.
    """
    config: dict[str, object] = dict(_NO_EXTENSION_DOWNLOADS)
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = str(temp_directory)
    if threads:
        config["threads"] = threads
    if storage_version:  # files older DuckDB clients can open (see manifests/catalog.py)
        config["storage_compatibility_version"] = storage_version
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    # DuckDB draws its progress bar on stdout (even into a pipe) for queries over ~2 s: that
    # would land inside the data a command prints (filters/progress.py shows it on stderr)
    con.execute("SET enable_progress_bar = false")
    return con


def connection_threads(con) -> int:
    """The threads DuckDB may use on ``con`` (its ``threads`` setting): a step's share of the
    machine, 1 on a single-thread Dask worker, whose extra busy threads would take a core
    another worker owns."""
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)$", re.IGNORECASE)


def valid_memory_limit(text: str) -> bool:
    return bool(_SIZE.match(text.strip()))
