"""The DuckDB catalog (``<store>/catalog.duckdb``), derived from the manifests.

It holds a view per version (``"gsm8k@v2"``), a view per dataset on its latest version
(``gsm8k``), and the tables ``versions`` and ``lineage``.  Views name shards by absolute
path, so the file opens and queries the same from any working directory and in any DuckDB
client.  It is rebuilt into a temporary file and swapped in with one rename, so a reader
that holds the old file open is never disturbed and never blocks a publish.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from .duck import connect, connect_sandboxed, parquet_source, quote_ident
from .errors import NotFoundError, SqlRefusedError
from .store import DatasetStore

_READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}


def store_signature(store: DatasetStore) -> str:
    """Hash of the published version directories: changes exactly when a version appears."""
    return hashlib.sha256("\n".join(store.version_keys()).encode()).hexdigest()


@contextmanager
def _catalog_lock(store: DatasetStore) -> Iterator[None]:
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".catalog.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def catalog_signature(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            rows = con.execute("SELECT value FROM catalog_meta WHERE key = 'signature'").fetchall()
            return rows[0][0] if rows else None
        finally:
            con.close()
    except duckdb.Error:
        return None


def refresh_catalog(store: DatasetStore, force: bool = False) -> bool:
    """Rebuild the catalog if a version was published since it was built. True if rebuilt."""
    with _catalog_lock(store):
        signature = store_signature(store)
        if not force and catalog_signature(store.catalog_path) == signature:
            return False
        _build(store, signature)
        return True


def _build(store: DatasetStore, signature: str) -> None:
    tmp = store.root / f".catalog.duckdb.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        con.execute("CREATE TABLE catalog_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO catalog_meta VALUES ('signature', ?), ('store', ?)",
                    [signature, str(store.root)])
        con.execute("""CREATE TABLE versions (name VARCHAR, version VARCHAR, number INTEGER,
            ref VARCHAR, kind VARCHAR, fingerprint VARCHAR, created_at TIMESTAMPTZ, rows BIGINT,
            bytes BIGINT, shards INTEGER, rejected_rows BIGINT, step VARCHAR, is_latest BOOLEAN,
            path VARCHAR, stats JSON)""")
        con.execute("""CREATE TABLE lineage (name VARCHAR, version VARCHAR, parent_name VARCHAR,
            parent_version VARCHAR, parent_fingerprint VARCHAR)""")
        for name in store.names():
            versions = store.versions(name)
            for m in versions:
                latest = m is versions[-1]
                paths = store.shard_paths(m)
                con.execute("INSERT INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [
                    m.name, m.version, m.number, m.ref, m.kind, m.fingerprint, m.created_at,
                    m.rows, sum(f.bytes for f in m.files), len(m.files), m.rejected.rows,
                    m.step.type, latest, str(store.version_dir(m)), json.dumps(m.stats)])
                for p in m.parents:
                    con.execute("INSERT INTO lineage VALUES (?,?,?,?,?)",
                                [m.name, m.version, p.name, p.version, p.fingerprint])
                con.execute(f"CREATE VIEW {quote_ident(m.ref)} AS SELECT * FROM {parquet_source(paths)}")
                if m.rejected.files:
                    con.execute(f"CREATE VIEW {quote_ident(m.ref + '/rejected')} AS SELECT * FROM "
                                f"{parquet_source(store.rejected_paths(m))[:-1]}, union_by_name=true)")
                if latest:
                    con.execute(f"CREATE VIEW {quote_ident(m.name)} AS SELECT * FROM {quote_ident(m.ref)}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, store.catalog_path)


def list_versions(store: DatasetStore) -> list[dict]:
    rows = []
    for m in store.manifests():
        rows.append({"name": m.name, "version": m.version, "kind": m.kind, "rows": m.rows,
                     "rejected": m.rejected.rows, "fingerprint": m.fingerprint[:12],
                     "created_at": m.created_at, "step": m.step.type,
                     "parents": [p.ref for p in m.parents]})
    return rows


class SqlResult:
    """A streaming query result; rows are fetched in chunks as they are consumed."""

    def __init__(self, con: duckdb.DuckDBPyConnection, query: str, limit: int | None):
        self._con, self._query, self._limit = con, query, limit
        # run now, so permission and binder errors surface in run_sql
        self._cursor = con.cursor()
        self._cursor.execute(query)
        self.columns: list[str] = [d[0] for d in self._cursor.description]

    def rows(self, chunk: int = 2048) -> Iterator[tuple]:
        """Python tuples, the first chunk as soon as DuckDB has it (no Arrow needed)."""
        left = self._limit
        try:
            while left is None or left > 0:
                rows = self._cursor.fetchmany(chunk if left is None else min(chunk, left))
                if not rows:
                    break
                if left is not None:
                    left -= len(rows)
                yield from rows
        finally:
            self._con.close()

    def arrow(self):
        """The result as a pyarrow RecordBatchReader (for Parquet output and Arrow users)."""
        self._cursor.close()  # the Arrow path runs the query afresh as a relation
        relation = self._con.sql(self._query)
        if self._limit is not None:
            relation = relation.limit(self._limit)
        return relation.to_arrow_reader(8192)

    def table(self):
        import pyarrow as pa

        try:
            reader = self.arrow()
            return pa.Table.from_batches(list(reader), schema=reader.schema)
        finally:
            self._con.close()


def _open_current_catalog(store: DatasetStore) -> duckdb.DuckDBPyConnection:
    """The sandboxed catalog connection, rebuilding the catalog first if it is stale."""
    if store.catalog_path.exists():
        con = connect_sandboxed(store.catalog_path, store.datasets_dir)
        try:
            built = con.execute("SELECT value FROM catalog_meta WHERE key = 'signature'").fetchall()
        except duckdb.Error:
            built = []
        if built and built[0][0] == store_signature(store):
            return con
        con.close()
    refresh_catalog(store)
    return connect_sandboxed(store.catalog_path, store.datasets_dir)


def run_sql(store: DatasetStore, query: str, *, limit: int | None = None,
            verify: bool = False) -> SqlResult:
    """Run one read-only statement over every version of the store.

    DuckDB itself enforces read-only access: the catalog opens read-only, external file
    access is limited to the store's datasets directory, and the configuration is locked.
    Only SELECT (and EXPLAIN) statements are accepted, as classified by DuckDB's parser.
    """
    if not store.datasets_dir.is_dir():
        raise NotFoundError(f"store {store.root} has no datasets yet",
                            hint="import one first: thinkforge import FILE --name NAME")
    for m in store.manifests():
        (store.verify if verify else store.check_sizes)(m)
    con = _open_current_catalog(store)
    try:
        statements = con.extract_statements(query)
        if len(statements) != 1:
            raise SqlRefusedError(f"expected one SQL statement, got {len(statements)}",
                                  hint="run statements one at a time")
        kind = str(statements[0].type).rsplit(".", 1)[-1]
        if kind not in _READ_ONLY_STATEMENTS:
            raise SqlRefusedError(f"{kind} statements are refused: `thinkforge sql` is read-only",
                                  hint="use SELECT (CTEs, joins and window functions work); new "
                                       "versions are made with import, filter and build")
        result = SqlResult(con, query, limit)
    except duckdb.PermissionException as exc:
        con.close()
        raise SqlRefusedError(f"refused: {exc}",
                              hint="queries may read only the store's datasets, through their "
                                   "views (see `thinkforge catalog`)") from exc
    except duckdb.Error as exc:
        con.close()
        if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in str(exc):
            raise SqlRefusedError(f"refused: {exc}") from exc
        from .errors import InputDataError
        raise InputDataError(f"SQL error: {exc}",
                             hint="views are named after datasets (\"name\" = latest, "
                                  "\"name@v2\" = a version); see `thinkforge catalog`") from exc
    except BaseException:
        con.close()
        raise
    return result
