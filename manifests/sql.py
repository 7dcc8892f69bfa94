"""Read-only SQL over every version of a store: the sandbox behind ``thinkforge sql``.

Two locks keep a query from changing anything; each one alone is enough to keep the
store's bytes unchanged, so a hole in one is not a hole in the promise.

1. **What may run** (an allow-list, decided by DuckDB's own parser): exactly one statement,
   and it must be a query: SELECT, WITH, VALUES, FROM-first, DESCRIBE, SUMMARIZE, PIVOT with
   its values listed, UNPIVOT, or a plain ``EXPLAIN`` of one of these.  ``json_serialize_sql``
   serializes SELECT trees only, so a statement that is not a query anywhere inside it is
   refused.  ``EXPLAIN ANALYZE`` executes its statement and is refused whatever it holds;
   EXPLAIN options (``EXPLAIN (...)``) too.
2. **What a query can touch**: nothing on disk.  The query runs on an in-memory DuckDB
   with ``enable_external_access = false`` set *after* opening (opened with it, DuckDB
   2.0 allow-lists ``<cwd>/:memory:`` files, which COPY can write), no allowed directories
   or paths, no temp directory (no spilling), no extension auto-loading, no Python
   replacement scans, and the configuration locked.  DuckDB's Parquet reader reads the
   shards of the versions the query names as ``thinkforge://datasets/...`` through
   ``query_files.QueryFiles``: exactly those files, for reading only (every write, delete,
   listing or glob is refused), and ``allowed_paths`` lists only those URLs.  So no local
   path a query names can be opened, for reading or for writing: not a shard, not
   ``catalog.duckdb``, not a manifest, not ``/etc/passwd``; ``COPY ... TO``, ``EXPORT
   DATABASE``, ``ATTACH 'file'``, ``read_blob``/``read_text`` fail with a permission error
   even when the statement got past the first lock, and so does a write to a shard's URL.

``current_setting`` shows no path of the store (the URLs are relative to it), and
``versions.path`` is relative to the store.  The one exception: a *selection* version
(``manifests/selection.py``) is a join DuckDB runs over ``read_parquet(...,
file_row_number=true)`` of local paths; when a query names one, exactly the files its rows
are read from (its selection file, the base shards and digests) are made readable with
``allowed_paths`` before external access is switched off.  Lock 1 still refuses every
statement that could write them.

One DuckDB is opened per query (opening one costs ~30 ms): it parses the query first, and
is closed off (``_close_off``) before any view exists or anything runs.

Trade-offs: with no temp directory a query that needs more than ``memory_limit`` fails
(``--memory-limit`` raises it) instead of spilling to disk; shards are checked by size
before a query (``verify=True`` checks sha256 with the per-file cache).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import duckdb

from .errors import (
    InputDataError,
    Interrupted,
    NotFoundError,
    ResourceLimitError,
    SqlRefusedError,
)
from .query_limits import QueryGuard, SigintWatcher, parse_size
from .sql_views import _attach_versions, _first_line, _unreadable, query_files, selection_files  # noqa: F401
from .store import StoreReader as DatasetStore  # reads only

_REFUSED_HINT = ("use SELECT (CTEs, joins and window functions work) or plain EXPLAIN; new "
                 "versions are made with import, filter and build")
_NO_FILES = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
             "python_enable_replacements": False, "temp_directory": ""}
_RUNS_QUERY_TEXT = {"query", "query_table"}  # table functions that take SQL text


_PARSER_LOCK = threading.Lock()
_PARSERS: dict[int, duckdb.DuckDBPyConnection] = {}


def _parser() -> duckdb.DuckDBPyConnection:
    """One parsing connection per process (opening a DuckDB costs ~45 ms; the web console
    checks many queries).  It holds no data and can open no file; used under _PARSER_LOCK."""
    import os

    pid = os.getpid()  # a forked child opens its own
    if pid not in _PARSERS:
        parser = duckdb.connect(":memory:", config=dict(_NO_FILES))
        parser.execute("SET enable_external_access=false")
        _PARSERS.clear()
        _PARSERS[pid] = parser
    return _PARSERS[pid]


def check_read_only(query: str, parser: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """Refuse anything but one plain query (or plain EXPLAIN of one); return its parse tree.

    The tree is DuckDB's ``json_serialize_sql`` of the query (of EXPLAIN's body).  ``parser``:
    a connection of the caller's own that only parses here (run_sql's sandbox before it is
    closed off: one DuckDB opened per query, not two); default: the process's parser.
    """
    if parser is not None:
        return _check_read_only(query, parser)
    with _PARSER_LOCK:
        return _check_read_only(query, _parser())


def _check_read_only(query: str, parser: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    try:
        statements = parser.extract_statements(query)
    except duckdb.Error as exc:
        raise InputDataError(f"SQL error: {exc}") from exc
    if len(statements) != 1:
        raise SqlRefusedError(f"expected one SQL statement, got {len(statements)}",
                              hint="run statements one at a time")
    try:
        kind = str(statements[0].type).rsplit(".", 1)[-1]
    except ValueError:  # a statement type this duckdb's Python enum lacks (UPDATE EXTENSIONS)
        kind = "this kind of"
    if kind == "EXPLAIN":
        return _select_tree(parser, _explain_body(query))
    if kind == "SELECT":
        return _select_tree(parser, query)
    if kind == "MULTI":  # PIVOT without IN (...) creates an ENUM type first
        raise SqlRefusedError("this statement runs more than one statement (PIVOT without "
                              "an IN list creates a type first)",
                              hint="list the pivot values: PIVOT t ON col IN ('a', 'b') ...")
    raise SqlRefusedError(f"{kind} statements are refused: `thinkforge sql` is read-only"
                          if kind != "this kind of" else "this statement is refused: `thinkforge "
                          "sql` runs queries only",
                          hint=_REFUSED_HINT)


def _explain_body(query: str) -> str:
    """The statement after a plain ``EXPLAIN``; EXPLAIN ANALYZE and EXPLAIN (options) refused."""
    tokens = [off for off, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    words = [query[a:b].strip() for a, b in zip(tokens, [*tokens[1:], len(query)], strict=True)]
    if len(words) < 2 or words[0].upper() != "EXPLAIN":
        raise SqlRefusedError("could not read this EXPLAIN statement", hint="use EXPLAIN SELECT ...")
    if words[1].upper() in ("ANALYZE", "ANALYSE") or words[1].startswith("("):
        raise SqlRefusedError("EXPLAIN ANALYZE and EXPLAIN (options) are refused: they run the "
                              "statement", hint="use plain EXPLAIN SELECT ..., or run the SELECT")
    return query[tokens[1]:]


def _select_tree(parser: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any]:
    tree = json.loads(parser.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    if tree.get("error"):
        raise SqlRefusedError(f"refused: only queries may run ({tree.get('error_message')})",
                              hint=_REFUSED_HINT)
    if len(tree.get("statements", [])) != 1:
        raise SqlRefusedError("expected one SQL statement", hint="run statements one at a time")
    _refuse_introspection(parser, tree)
    return tree


# what shows the sandbox's settings (allowed_paths: store paths) or view definitions (a
# selection's view reads its files by absolute path): no query result may show the store's path
_HIDDEN_FUNCTIONS = {"current_setting", "duckdb_settings", "duckdb_views", "getvariable",
                     "duckdb_secrets", "which_secret"}
_HIDDEN_TABLES = {"pg_views", "pg_settings", "sqlite_master", "sqlite_schema", "sqlite_temp_master",
                  "sqlite_temp_schema", "duckdb_settings", "duckdb_views"}


def _refuse_introspection(parser: duckdb.DuckDBPyConnection, tree: Any) -> None:
    """Refuse settings and view definitions (they name store paths), also inside ``query('...')``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        function = str(node.get("function_name") or "").lower() if node.get("class") == "FUNCTION" else ""
        table = str(node.get("table_name") or "").lower()
        schema = str(node.get("schema_name") or "").lower()
        if function in _HIDDEN_FUNCTIONS or table in _HIDDEN_TABLES or \
                (schema == "information_schema" and table == "views"):
            raise SqlRefusedError(f"{function or table} is refused: the sandbox's settings and view "
                                  "definitions are not shown (they name the store's files)",
                                  hint="query the versions' views and the tables versions, lineage, runs")
        if function in _RUNS_QUERY_TEXT:
            args = node.get("children") or [a.get("expression") or {} for a in node.get("arguments") or []
                                            if isinstance(a, dict)]
            text = args[0] if args and isinstance(args[0], dict) else {}
            sql = None
            if text.get("class") == "CONSTANT":  # the constant's shape differs between versions
                literal, value = text.get("literal") or {}, text.get("value") or {}
                sql = literal.get("text") if literal.get("kind") == "STRING" else value.get("value")
            if not isinstance(sql, str):
                raise SqlRefusedError(f"{function}() takes a constant SQL string here",
                                      hint="write the query itself instead of building its text")
            _select_tree(parser, sql)
        stack.extend(node.values())


def referenced_names(tree: Any) -> set[str] | None:
    """Every table name the query mentions; None when it runs SQL text (``query(...)``)."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class") == "FUNCTION" and node.get("function_name") in _RUNS_QUERY_TEXT:
                return None
            if isinstance(node.get("table_name"), str) and node["table_name"]:
                names.add(node["table_name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def sandbox_connection(memory_limit: str | None = None, threads: int | None = None,
                       readable: list[str] = (), files=None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can open no file at all (see the module docstring), but
    the ``readable`` files (the selection files and base shards of selection views the
    query names) and the shards ``files`` (a ``QueryFiles``) serves read-only."""
    return _close_off(_open_sandbox(memory_limit, threads), readable, files)


def _open_sandbox(memory_limit: str | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """The sandbox before it is closed off: nothing may run on it but parsing."""
    config: dict[str, Any] = dict(_NO_FILES)
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")  # it would print into stdout's data (duck.py)
    return con


def _close_off(con: duckdb.DuckDBPyConnection, readable: list[str] = (),
               files=None) -> duckdb.DuckDBPyConnection:
    readable = list(readable)
    if files is not None:
        con.register_filesystem(files)
        readable += files.urls()
    expected_paths = "[]"
    if readable:
        con.execute("SET allowed_paths=?", [readable])
        expected_paths = con.execute("SELECT current_setting('allowed_paths')::VARCHAR").fetchone()[0]
    con.execute("SET enable_external_access=false")
    allowed = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                               "('allowed_paths', 'allowed_directories', 'temp_directory', "
                               "'enable_external_access')").fetchall())
    if allowed != {"allowed_paths": expected_paths, "allowed_directories": "[]", "temp_directory": "",
                   "enable_external_access": "false"}:  # never run a query on a leaky sandbox
        con.close()
        raise SqlRefusedError(f"the SQL sandbox could not be closed off ({allowed})",
                              hint="report this: this DuckDB version behaves differently")
    return con


class SqlResult:
    """A streaming query result; rows are fetched in chunks as they are consumed.

    DuckDB errors while fetching (timeout, memory limit, Ctrl-C) become ForgeErrors.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, query: str, limit: int | None,
                 timeout: float | None = None, memory_bytes: int | None = None,
                 hard_stop: bool = False):
        self._con, self._query, self._limit = con, query, limit
        self._timeout = timeout
        self._closed = False
        self._guard = QueryGuard(con, timeout, memory_bytes, hard_stop)
        self._sigint = SigintWatcher(con)
        # run now, so binder errors surface in run_sql; on `con` itself, not a cursor: the
        # registered views are temporary, visible to this connection only
        try:
            with self._errors():
                con.execute(query)
        except BaseException:
            self.close()  # the process's limits are restored whatever went wrong
            raise
        self.columns: list[str] = [d[0] for d in con.description]

    @property
    def _timed_out(self) -> bool:
        return self._guard.timed_out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._guard.stop()
        self._sigint.close()
        self._con.close()

    def _errors(self):
        return _mapped_errors(self)

    def rows(self, chunk: int = 2048) -> Iterator[tuple]:
        """Python tuples, the first chunk as soon as DuckDB has it (no Arrow needed)."""
        left = self._limit
        try:
            while left is None or left > 0:
                with self._errors():
                    rows = self._con.fetchmany(chunk if left is None else min(chunk, left))
                if not rows:
                    break
                if left is not None:
                    left -= len(rows)
                yield from rows
        finally:
            self.close()

    def arrow(self) -> ArrowBatches:
        """The result as pyarrow RecordBatches: ``.schema``, then iterate."""
        with self._errors():
            self._con.abort()  # the Arrow path runs the query afresh as a relation
            relation = self._con.sql(self._query)
            if self._limit is not None:
                relation = relation.limit(self._limit)
            return ArrowBatches(self, relation.to_arrow_reader(8192))

    def table(self):
        import pyarrow as pa

        batches = self.arrow()
        return pa.Table.from_batches(list(batches), schema=batches.schema)


class ArrowBatches:
    """Record batches of a result, DuckDB errors mapped as for rows(); closes at the end."""

    def __init__(self, result: SqlResult, reader):
        self._result, self._reader = result, reader
        self.schema = reader.schema

    def __iter__(self):
        try:
            while True:
                with self._result._errors():
                    try:
                        batch = self._reader.read_next_batch()
                    except StopIteration:
                        return
                yield batch
        finally:
            self._result.close()


class _mapped_errors:
    """DuckDB's errors during a query, as ForgeErrors with a hint (no traceback)."""

    def __init__(self, result: SqlResult):
        self.result = result

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        guard = self.result._guard
        stopped = guard.timed_out or guard.over_memory  # by the guard, not by Ctrl-C
        ctrl_c = isinstance(exc, KeyboardInterrupt) or (  # DuckDB turns SIGINT into this
            isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower() and not stopped)
        if ctrl_c or (isinstance(exc, duckdb.InterruptException) and not stopped):
            self.result.close()
            raise Interrupted("query interrupted (Ctrl-C); nothing was written") from None
        interrupted = isinstance(exc, duckdb.InterruptException) or (
            isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())
        if interrupted and guard.over_memory or isinstance(exc, MemoryError):
            self.result.close()
            raise ResourceLimitError("query used more memory than --memory-limit allows",
                                     hint="raise --memory-limit, or narrow the query") from None
        if interrupted:
            self.result.close()
            raise ResourceLimitError(f"query stopped after --timeout {self.result._timeout:g} s",
                                     hint="raise --timeout, or narrow the query (WHERE, LIMIT)") from None
        if isinstance(exc, duckdb.OutOfMemoryException):
            self.result.close()
            raise ResourceLimitError(f"query ran out of memory: {_first_line(exc)}",
                                     hint="raise --memory-limit (queries do not spill to disk), "
                                          "or narrow the query") from None
        if isinstance(exc, duckdb.PermissionException):
            self.result.close()
            raise SqlRefusedError(f"refused: {_first_line(exc)}",
                                  hint="queries read the store's versions through their views "
                                       "(see `thinkforge catalog`), never files") from None
        if _is_arrow_error(exc) or _is_shard_error(exc):  # a damaged shard met while rows are read
            self.result.close()
            raise _unreadable(exc) from None
        if isinstance(exc, duckdb.Error):
            self.result.close()
            raise InputDataError(f"SQL error: {exc}",
                                 hint="views are named after datasets (\"name\" = latest, "
                                      "\"name@v2\" = a version); see `thinkforge catalog`") from None
        return False


def _is_arrow_error(exc: BaseException) -> bool:
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a core dependency
        return False
    return isinstance(exc, pa.ArrowException)


def _is_shard_error(exc: BaseException) -> bool:
    """DuckDB could not read a shard it reads through ``QueryFiles`` (its URL in the text)."""
    return isinstance(exc, duckdb.Error) and not isinstance(exc, duckdb.PermissionException) \
        and "thinkforge://" in str(exc)


def run_sql(store: DatasetStore, query: str, *, limit: int | None = None, verify: bool = False,
            timeout: float | None = None, memory_limit: str | None = None,
            allow: Callable[[str], bool] | None = None, owns_process: bool = False) -> SqlResult:
    """Run one read-only query over every version of the store (see the module docstring).

    ``owns_process`` (the CLI): ``memory_limit`` also caps the whole process and a query
    stuck past ``timeout`` ends it (``QueryGuard``); otherwise DuckDB's limit and interrupts only.

    ``allow(dataset name)`` narrows the store to some datasets (the web console's scoped
    tokens): the other datasets' views, versions, lineage rows and runs do not exist."""
    if not store.datasets_dir.is_dir():
        raise NotFoundError(f"store {store.root} has no datasets yet",
                            hint="import one first: thinkforge import FILE --name NAME")
    try:  # one DuckDB per query: it parses the query, then is closed off (_close_off)
        con = _open_sandbox(memory_limit)
    except duckdb.Error as exc:
        raise InputDataError(f"SQL settings: {_first_line(exc)}",
                             hint="--memory-limit takes a size such as 2GB or 512MiB") from None
    try:
        tree = check_read_only(query, parser=con)
        # read without pydantic (records.py): a query only reads manifests
        manifests = [m for m in store.manifests(light=True) if allow is None or allow(m.name)]
        wanted = referenced_names(tree)
        for m in manifests:  # only the versions the query reads: a damaged one elsewhere is no
            if wanted is None or {m.ref, m.name, m.ref + "/rejected"} & wanted:  # reason to refuse
                if verify:
                    store.verify(store.full_manifest(m))
                else:
                    store.check_sizes(m)
        files = query_files(store, manifests, wanted)
        _close_off(con, readable=selection_files(store, manifests, wanted), files=files)
        try:
            _attach_versions(con, store, manifests, wanted, allow, files)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise _unreadable(exc) from None
        con.execute("SET lock_configuration=true")
        # the process-wide guards (QueryGuard) only where the query owns the process (the
        # CLI), never in a server that runs several queries at once (the web console)
        return SqlResult(con, query, limit, timeout,
                         memory_bytes=parse_size(memory_limit) if memory_limit and owns_process else None,
                         hard_stop=owns_process)
    except BaseException:
        con.close()
        raise
