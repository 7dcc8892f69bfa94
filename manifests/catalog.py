"""The DuckDB catalog (``<store>/catalog.duckdb``), derived from the manifests.

It holds a view per version (``"gsm8k@v2"``), a view per dataset on its latest version
(``gsm8k``), and the tables ``versions`` and ``lineage``.  Views name shards by absolute
path, so the file opens and queries the same from any working directory and in any DuckDB
client.  A publish extends a copy of it with the new version (a rebuild from every manifest
cost 1.5 s per publish in a store of 300 versions; extending costs ~40 ms, done in the
publish's own DuckDB connection with the copy ATTACHed) and swaps it in with one rename, so
a reader that holds the old file open is never disturbed and never blocks a publish.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .catalog_tables import RUNS_TABLE, TABLES, lineage_rows, version_row
from .duck import connect, parquet_source, quote_ident, quote_literal
from .errors import ConfigError, ForgeError
from .records import run_ids, sha256_file
from .selection import any_rejected_relation, row_relation
from .sql import SqlResult, run_sql  # noqa: F401  (the read-only SQL sandbox lives in sql.py)
from .store import StoreReader as DatasetStore  # reads only

LOG = logging.getLogger(__name__)

# bumped when the views a version gets change (2: every version has a /rejected view), so
# an older catalog is rebuilt rather than extended
CATALOG_LAYOUT = "4"  # 3: written in STORAGE_VERSION (older catalogs are rebuilt); 4: selection
# versions (their views join the selection to its base; read_parquet's file_index needs DuckDB >= 1.3)
# The catalog is for researchers' own DuckDB clients (the 1.x CLI from PyPI `duckdb-cli`,
# DBeaver, R, Node): DuckDB 2.0's own format (version 69) is refused by 1.x ("can only
# read 64-68"); files written with v1.1.0 compatibility open in DuckDB >= 1.1.
CATALOG_STORAGE_VERSION = "v1.1.0"


def store_signature(store: DatasetStore, version_keys: list[str] | None = None) -> str:
    """Hash of where the store is, of its published version directories and of its training
    run records: changes exactly when a version or a run appears or the store is moved
    (views name shards by absolute path).  ``version_keys``: ``store.version_keys()`` when
    the caller has listed them already."""
    if version_keys is None:
        version_keys = store.version_keys()
    keys = [str(store.root), CATALOG_LAYOUT, *version_keys, *run_ids(store.root)]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


@contextmanager
def _catalog_lock(store: DatasetStore) -> Iterator[None]:
    store.root.mkdir(parents=True, exist_ok=True)
    lock = store.root / ".catalog.lock"
    if lock.is_dir() or (lock.exists() and not lock.is_file()):
        raise ConfigError(f"{lock} is not a file (the catalog's lock file was replaced)",
                          hint=f"remove it (rm -r {lock}); thinkforge recreates it")
    with open(lock, "w") as handle:
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


def refresh_catalog(store: DatasetStore, force: bool = False,
                    con: duckdb.DuckDBPyConnection | None = None) -> bool:
    """Bring the catalog up to date if a version was published since. True if it changed.

    Versions are immutable and only ever added, so the usual case extends a copy of the
    current catalog with the new versions (the cost of a publish does not grow with the
    store); ``force``, a missing or unreadable catalog, or a version that vanished rebuild it.
    ``con``: a connection the caller holds open anyway (a publish's): the copy is ATTACHed to
    it for the extension instead of opened as a database of its own (``_opened``).
    """
    if store.catalog_path.is_dir() or store.catalog_path.is_symlink():
        raise ConfigError(f"{store.catalog_path} is a directory or a link, not a catalog file",
                          hint="it is derived data: remove it (rm -r) and run "
                               "`thinkforge catalog rebuild`")
    with _catalog_lock(store):
        # listed once for the signature and the extension (a directory listing per dataset)
        keys = store.version_keys()
        signature = store_signature(store, keys)
        unaltered = _unaltered(store)
        # the signature the stamp recorded for these very bytes, else read from the file
        current = (unaltered if isinstance(unaltered, str) else None) \
            or catalog_signature(store.catalog_path)
        if not force and current == signature and unaltered:
            return False
        if force or current is None or not unaltered or not _extend(store, signature, keys, con):
            _build(store, signature)
        return True


def _stamp_path(store: DatasetStore) -> Path:
    return store.root / ".catalog.sha256"


def _record_stamp(store: DatasetStore, signature: str) -> None:
    """What the catalog file was when thinkforge wrote it: (size, mtime_ns, sha256) and the
    signature written in it (so a publish need not open the catalog to read it)."""
    st = store.catalog_path.stat()
    tmp = _stamp_path(store).with_name(f".catalog.sha256.tmp-{os.getpid()}")
    tmp.write_text(json.dumps([st.st_size, st.st_mtime_ns, sha256_file(store.catalog_path),
                               signature]))
    os.replace(tmp, _stamp_path(store))


def _unaltered(store: DatasetStore) -> bool | str:
    """The catalog file is the one thinkforge wrote (edited contents with the right
    signature are rebuilt, not served). Unchanged size and mtime skip the hash.  True, or
    the signature the stamp recorded with those bytes; False when altered or unknown."""
    try:
        size, mtime_ns, digest, *signature = json.loads(_stamp_path(store).read_text())
        st = store.catalog_path.stat()
    except (OSError, ValueError, TypeError):
        return False
    if [st.st_size, st.st_mtime_ns] != [size, mtime_ns] \
            and sha256_file(store.catalog_path) != digest:
        return False
    return signature[0] if signature and isinstance(signature[0], str) else True


def catalog_problems(store: DatasetStore) -> list[str]:
    """Versions the last build left out of the catalog (a missing or damaged shard)."""
    try:
        con = duckdb.connect(str(store.catalog_path), read_only=True)
        try:
            rows = con.execute("SELECT value FROM catalog_meta WHERE key = 'skipped'").fetchall()
        finally:
            con.close()
    except duckdb.Error:
        return []
    return json.loads(rows[0][0]) if rows else []


def _fill_runs(con, store: DatasetStore) -> None:
    """Training run records (thinkforge.manifests.training_runs): rebuilt whole on every refresh (few rows)."""
    from .training_runs import run_rows

    con.execute(RUNS_TABLE)
    for row in run_rows(store):
        con.execute("INSERT INTO runs VALUES (" + ",".join("?" * len(row)) + ")", list(row.values()))


def _build(store: DatasetStore, signature: str) -> None:
    """Write a new catalog beside the old one and swap it in; any failure (disk full, a
    file-size limit) leaves the old catalog in place and no temp file behind.

    A version whose shards are missing or the wrong size is left out and named in
    ``catalog_meta.skipped`` (``catalog rebuild`` reports it); the others stay queryable.
    """
    tmp = _tmp_path(store)
    try:
        con = connect(tmp, storage_version=CATALOG_STORAGE_VERSION)
        try:
            for ddl in TABLES.values():
                con.execute(ddl)
            con.execute("INSERT INTO catalog_meta VALUES ('signature', ?), ('store', ?), ('layout', ?)",
                        [signature, str(store.root), CATALOG_LAYOUT])
            skipped = []
            for name in store.names():
                added = 0
                for m in store.versions(name):
                    try:
                        store.check_sizes(m)
                    except ForgeError as exc:
                        skipped.append(f"{m.ref}: {str(exc).splitlines()[0]}")
                        continue
                    _add_version(con, store, m)
                    added += 1
                if added:
                    _point_latest(con, name)
            skipped += [f"{line} (not listed)" for line in store.misplaced()]
            con.execute("INSERT INTO catalog_meta VALUES ('skipped', ?)", [json.dumps(skipped)])
            _fill_runs(con, store)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, store.catalog_path)
        _record_stamp(store, signature)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)  # gone already when swapped in


@contextmanager
def _opened(path: Path, con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """``path`` as the default database of a connection: ATTACHed to ``con`` when given (a new
    DuckDB database instance costs ~20 ms to open and ~7 ms to close, an ATTACH + DETACH ~3 ms;
    a publish has a connection open anyway), else a connection of its own.  The caller's
    connection gets its default database back and the file detached, whatever happens.

    Only a connection this process made is ever passed (never one inherited across a fork:
    a fresh instance per process, as before, for the other callers)."""
    if con is None:
        own = connect(path, storage_version=CATALOG_STORAGE_VERSION)
        try:
            yield own
        finally:
            own.close()
        return
    before = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH {quote_literal(str(path))} AS {_ALIAS} "
                f"(STORAGE_VERSION {quote_literal(CATALOG_STORAGE_VERSION)})")
    try:
        con.execute(f"USE {_ALIAS}")  # the views' text names other views unqualified
        yield con
    finally:
        try:
            con.execute(f"USE {quote_ident(before)}")
        finally:
            con.execute(f"DETACH {_ALIAS}")


_ALIAS = "__thinkforge_catalog"


def _extend(store: DatasetStore, signature: str, keys: list[str],
            con: duckdb.DuckDBPyConnection | None = None) -> bool:
    """Add the versions published since the catalog was built to a copy of it, swap it in
    (``keys``: ``store.version_keys()``, as the caller listed them for the signature).

    False (nothing changed) when the catalog lists a version the store no longer has, was
    built where the store was before a move, or cannot be extended (an older thinkforge's).
    """
    tmp = _tmp_path(store)
    try:
        shutil.copyfile(store.catalog_path, tmp)  # only ever replaced by rename: a stable copy
        with _opened(tmp, con) as cat:
            have, built_for, layout = cat.execute(
                "SELECT (SELECT list(name || '/' || version) FROM versions), "
                "(SELECT list(value) FROM catalog_meta WHERE key = 'store'), "
                "(SELECT list(value) FROM catalog_meta WHERE key = 'layout')").fetchone()
            have = set(have or ())
            if not have <= set(keys) or built_for != [str(store.root)] \
                    or layout != [CATALOG_LAYOUT]:
                return False  # a version vanished, the store moved (views name old paths),
                # or an older thinkforge's catalog lacks views this one makes
            added = []
            for key in (k for k in keys if k not in have):
                name, version = key.split("/")
                m = store.resolve(f"{name}@{version}")
                try:
                    store.check_sizes(m)
                except ForgeError:
                    return False  # a damaged version: a full build names it
                added.append(m)
            cat.execute("BEGIN")  # one commit (one WAL write), not one per statement
            try:
                for m in added:
                    _add_version(cat, store, m)
                for name in sorted({m.name for m in added}):
                    _point_latest(cat, name)
                _fill_runs(cat, store)
                cat.execute("UPDATE catalog_meta SET value = ? WHERE key = 'signature'", [signature])
            except BaseException:
                cat.execute("ROLLBACK")  # the caller's connection goes back as it came
                raise
            cat.execute("COMMIT")
            cat.execute("CHECKPOINT")  # the whole catalog in the file: its .wal is removed below
        os.replace(tmp, store.catalog_path)
        _record_stamp(store, signature)
        return True
    except (duckdb.Error, ForgeError):  # a version copied in by hand: a full build names it
        return False
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)  # gone already when swapped in


def _tmp_path(store: DatasetStore) -> Path:
    tmp = store.root / f".catalog.duckdb.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    return tmp


def _add_version(con, store: DatasetStore, m) -> None:
    """Its row in ``versions`` and ``lineage`` and its views (``name@vN``, ``.../rejected``)."""
    con.execute("INSERT INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                version_row(m, str(store.version_dir(m))))
    for row in lineage_rows(m):
        con.execute("INSERT INTO lineage VALUES (?,?,?,?,?)", row)
    con.execute(f"CREATE VIEW {quote_ident(m.ref)} AS SELECT * FROM {row_relation(store, m)}")
    if m.selection is not None and (rejected := any_rejected_relation(store, m)) is not None:
        con.execute(f"CREATE VIEW {quote_ident(m.ref + '/rejected')} AS SELECT * FROM {rejected}")
    elif m.rejected.files:
        con.execute(f"CREATE VIEW {quote_ident(m.ref + '/rejected')} AS SELECT * FROM "
                    f"{parquet_source(store.rejected_paths(m))[:-1]}, union_by_name=true)")
    else:  # nothing rejected: an empty view of the version's columns + reason, never a missing one
        rows = f"SELECT * FROM {quote_ident(m.ref)}" if m.files or m.selection else "SELECT"
        con.execute(f"CREATE VIEW {quote_ident(m.ref + '/rejected')} AS SELECT *, "
                    f"NULL::VARCHAR AS reason FROM ({rows}) WHERE false")


def _point_latest(con, name: str) -> None:
    """Mark the newest version of ``name`` as latest and point the view ``name`` at it."""
    ref = con.execute("UPDATE versions SET is_latest = (number = (SELECT max(number) FROM "
                      "versions WHERE name = ?)) WHERE name = ? RETURNING ref, is_latest",
                      [name, name]).fetchall()
    latest = next(r for r, is_latest in ref if is_latest)
    con.execute(f"CREATE OR REPLACE VIEW {quote_ident(name)} AS SELECT * FROM {quote_ident(latest)}")
    con.execute(f"CREATE OR REPLACE VIEW {quote_ident(name + '/rejected')} AS SELECT * FROM "
                f"{quote_ident(latest + '/rejected')}")


def refresh_or_warn(store: DatasetStore) -> None:
    """Keep the catalog current for other DuckDB clients; a failure is only a warning (the
    catalog is derived data, and ``thinkforge sql`` does not read it)."""
    try:
        refresh_catalog(store)
    except Exception as exc:  # noqa: BLE001
        LOG.warning(f"catalog not refreshed ({str(exc).splitlines()[0]}); "
                    "run `thinkforge catalog rebuild`")


def list_versions(store: DatasetStore) -> list[dict]:
    rows = []
    for m in store.manifests():
        rows.append({"name": m.name, "version": m.version, "kind": m.kind, "rows": m.rows,
                     "rejected": m.rejected.rows, "fingerprint": m.fingerprint[:12],
                     "created_at": m.created_at, "step": m.step.type,
                     "parents": [p.ref for p in m.parents]})
    return rows

