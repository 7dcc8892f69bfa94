"""The views a query of the sandbox sees (``manifests/sql.py``): tables ``versions``,
``lineage`` and ``runs``, and one view per version the query names.

Plain versions are ``read_parquet`` of ``thinkforge://`` URLs that ``query_files.QueryFiles``
serves read-only; selection versions are DuckDB relations over the local files that
``selection_files`` names (made readable with ``allowed_paths``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from .catalog_tables import RUNS_TABLE, TABLES, lineage_rows, version_row
from .duck import quote_ident, quote_literal
from .errors import IntegrityError
from .records import run_ids
from .selection import any_rejected_relation, row_relation
from .store import StoreReader as DatasetStore  # reads only

if TYPE_CHECKING:  # manifests are read without pydantic here (records.py)
    from .manifest import Manifest


def _empty(reason: bool = False):
    """A version without shards: no rows and no columns (but ``reason`` for its rejected view)."""
    import pyarrow as pa

    return pa.schema([pa.field("reason", pa.string())] if reason else []).empty_table()


def _names(m: Manifest, is_latest: bool) -> set[str]:
    """The views a version is seen under."""
    return {m.ref, m.ref + "/rejected"} | ({m.name, m.name + "/rejected"} if is_latest else set())


def _latest(manifests: list[Manifest]) -> dict[str, Manifest]:
    latest: dict[str, Manifest] = {}
    for m in manifests:
        if m.number > (latest[m.name].number if m.name in latest else 0):
            latest[m.name] = m
    return latest


def query_files(store: DatasetStore, manifests: list[Manifest], wanted: set[str] | None):
    """The shards (and rejected shards) of the plain versions a query names, served
    read-only (``QueryFiles``); None when it names none (fsspec is not even imported)."""
    latest = _latest(manifests)
    paths = []
    for m in manifests:
        if m.selection is None and (wanted is None or _names(m, latest[m.name] is m) & wanted):
            paths += store.shard_paths(m) + store.rejected_paths(m)
    if not paths:
        return None
    from .query_files import QueryFiles

    return QueryFiles(store.root, paths)


def _parquet(files, paths: list, union: bool = False) -> str:
    urls = ", ".join(quote_literal(files.url_of(p)) for p in paths)
    # union: rejected shards of different steps may have different columns
    return f"read_parquet([{urls}], hive_partitioning=false{', union_by_name=true' if union else ''})"


def _version_relations(files, store: DatasetStore, m: Manifest) -> tuple[Any, Any]:
    """(rows, rejected rows) of a plain version: SQL over its shards, or empty Arrow tables."""
    rows = _parquet(files, store.shard_paths(m)) if m.files else None
    if m.rejected.files:
        rejected = _parquet(files, store.rejected_paths(m), union=True)
    elif rows is not None:  # nothing rejected: no rows, the version's columns + reason
        rejected = f"(SELECT *, NULL::VARCHAR AS reason FROM {rows} WHERE false)"
    else:
        rejected = None
    return rows, rejected


def selection_files(store: DatasetStore, manifests: list[Manifest],
                    wanted: set[str] | None) -> list[str]:
    """The files the selection views a query names read: its only readable files."""
    latest = _latest(manifests)
    out: list[str] = []
    for m in manifests:
        if m.selection is None:
            continue
        if wanted is None or _names(m, latest[m.name] is m) & wanted:
            out += [str(p) for _, _, p in store.version_files(m)]
    return sorted(set(out))


def _attach_versions(con: duckdb.DuckDBPyConnection, store: DatasetStore,
                     manifests: list[Manifest], wanted: set[str] | None,
                     allow: Callable[[str], bool] | None = None, files=None) -> None:
    """Tables ``versions``, ``lineage`` and ``runs``, and a view per version the query names.

    With ``allow``, ``manifests`` holds only the allowed datasets' versions; lineage rows
    and training runs that name another dataset are left out too."""
    latest = {}
    for m in manifests:
        if m.number > latest.get(m.name, (0, None))[0]:
            latest[m.name] = (m.number, m)
    def want(view: str) -> bool:
        return wanted is None or view in wanted

    # the store's tables only when the query names them, like the views (a few ms each)
    for table in ("versions", "lineage"):
        if want(table):
            con.execute(TABLES[table])
    if want("runs"):
        con.execute(RUNS_TABLE)
    # reading run records imports pydantic: only when a query names runs and there are any
    for run in _run_rows(store) if want("runs") and run_ids(store.root) else []:
        if allow is not None and not all(allow(ref.split("@")[0]) for ref in run["data_refs"]):
            continue
        con.execute("INSERT INTO runs VALUES (" + ",".join("?" * len(run)) + ")", list(run.values()))
    rows = [version_row(m, f"datasets/{m.name}/{m.version}", latest[m.name][1] is m)
            for m in manifests] if want("versions") else []
    if rows:
        con.executemany("INSERT INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    if want("lineage") and (lineage := [r for m in manifests for r in lineage_rows(m)
                                        if allow is None or allow(r[2])]):
        con.executemany("INSERT INTO lineage VALUES (?,?,?,?,?)", lineage)

    for m in manifests:
        is_latest = latest[m.name][1] is m
        if m.selection is not None:  # read by DuckDB from the files selection_files allowed
            rows = row_relation(store, m)
            rejected = any_rejected_relation(store, m) or \
                f"(SELECT *, NULL::VARCHAR AS reason FROM {rows} WHERE false)"
            for view, relation in ((m.ref, rows), (m.name, rows if is_latest else None),
                                   (m.ref + "/rejected", rejected),
                                   (m.name + "/rejected", rejected if is_latest else None)):
                if relation is not None and want(view):
                    con.execute(f"CREATE VIEW {quote_ident(view)} AS SELECT * FROM {relation}")
            continue
        names = _names(m, is_latest)
        if wanted is not None and not names & wanted:
            continue
        rows, rejected = _version_relations(files, store, m)
        for view in sorted(names):
            relation = rejected if view.endswith("/rejected") else rows
            if not want(view):
                continue
            if relation is None:  # a version without shards
                con.register(view, _empty(reason=view.endswith("/rejected")))
                continue
            try:  # the view reads the shards' footers now
                con.execute(f"CREATE VIEW {quote_ident(view)} AS SELECT * FROM {relation}")
            except duckdb.Error as exc:
                raise _unreadable(exc) from None


def _run_rows(store: DatasetStore) -> list[dict[str, Any]]:
    from .training_runs import run_rows

    return run_rows(store)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unreadable(exc: BaseException) -> IntegrityError:
    """A shard that passed the size check but is not readable Parquet (a damaged footer)."""
    return IntegrityError(f"a shard the query reads is not readable Parquet: {_first_line(exc)}",
                          hint="the version was damaged after publishing: `thinkforge verify --all` "
                               "names it; restore the file or rebuild the version")
