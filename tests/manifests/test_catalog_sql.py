"""The derived catalog and read-only SQL."""

import json
import subprocess
import sys

import pytest
from thinkforge.manifests.catalog import refresh_catalog
from thinkforge.manifests.errors import IntegrityError, SqlRefusedError
from thinkforge.manifests.sql import run_sql

from .builders import publish_prompts


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    from thinkforge.manifests import DatasetStore

    from tests.conftest import DATA as data_dir

    store = DatasetStore(tmp_path_factory.mktemp("catalog") / "store")
    publish_prompts(store, data_dir / "gsm8k_train_demo.jsonl", "gsm8k", "gsm8k")
    publish_prompts(store, data_dir / "math500_demo.jsonl", "math500", "math500")
    with store.writer("gsm8k", "prompts", step={"type": "subset"}, parents=[store.resolve("gsm8k@v1")]) as w:
        first = store.shard_paths(store.resolve("gsm8k@v1"))[0]
        w.write(__import__("pyarrow.parquet").parquet.read_table(first).slice(0, 10))
    return store


def sql(store, query):
    return run_sql(store, query).table().to_pylist()


def test_views_per_version_and_per_dataset(filled):
    assert sql(filled, 'SELECT count(*) AS n FROM gsm8k') == [{"n": 10}]
    assert sql(filled, 'SELECT count(*) AS n FROM "gsm8k@v1"') == [{"n": 200}]
    rows = sql(filled, "SELECT name, version, is_latest FROM versions ORDER BY name, version")
    assert rows == [{"name": "gsm8k", "version": "v1", "is_latest": False},
                    {"name": "gsm8k", "version": "v2", "is_latest": True},
                    {"name": "math500", "version": "v1", "is_latest": True}]
    assert sql(filled, "SELECT name, version, parent_version FROM lineage") == [
        {"name": "gsm8k", "version": "v2", "parent_version": "v1"}]


def test_ctes_windows_and_joins_across_versions_work(filled):
    rows = sql(filled, """
        WITH old AS (SELECT id FROM "gsm8k@v1"), new AS (SELECT id FROM gsm8k)
        SELECT count(*) AS kept, (SELECT count(*) FROM old) - count(*) AS dropped
        FROM old JOIN new USING (id)""")
    assert rows == [{"kept": 10, "dropped": 190}]
    ranked = sql(filled, """SELECT metadata->>'subject' AS s,
        row_number() OVER (ORDER BY count(*) DESC, s) AS r FROM math500 GROUP BY s ORDER BY r LIMIT 1""")
    assert ranked[0]["r"] == 1


def test_catalog_opens_in_another_process_from_another_directory(filled, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import duckdb, sys, json; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.sql('SELECT count(*) FROM \"gsm8k@v1\"').fetchall()))")
    out = subprocess.run([sys.executable, "-c", code, str(filled.catalog_path)], cwd=elsewhere,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[200]]


def test_catalog_rebuild_recreates_it_from_manifests(filled):
    filled.catalog_path.unlink()  # derived data: losing it loses nothing
    assert refresh_catalog(filled) is True
    assert refresh_catalog(filled) is False  # up to date: nothing to do
    assert sql(filled, "SELECT count(*) AS n FROM versions") == [{"n": 3}]


REFUSED = [
    "CREATE TABLE t AS SELECT 1",
    "CREATE TEMP TABLE t AS SELECT 1",
    "INSERT INTO versions SELECT * FROM versions",
    "UPDATE versions SET rows = 0",
    "DELETE FROM versions",
    "DROP VIEW gsm8k",
    "ALTER TABLE versions ADD COLUMN x INT",
    "COPY (SELECT 1) TO '/tmp/thinkforge-escape.csv'",
    "COPY versions TO 'x.parquet'",
    "ATTACH ':memory:' AS m",
    "ATTACH '/tmp/other.duckdb' AS o",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "PRAGMA version",
    "EXPORT DATABASE '/tmp/thinkforge-export'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("query", REFUSED)
def test_writes_settings_and_outside_files_are_refused(filled, query):
    with pytest.raises(SqlRefusedError):
        run_sql(filled, query).table()


def test_a_truncated_shard_stops_sql(store, data_dir):
    publish_prompts(store, data_dir / "math500_demo.jsonl", "math500", "math500")
    shard = store.shard_paths(store.resolve("math500"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="math500@v1"):
        run_sql(store, "SELECT count(*) FROM math500")
    assert run_sql(store, "SELECT 1 AS one").table().to_pylist() == [{"one": 1}]  # others still run


def test_limit_stops_after_n_rows(filled):
    assert run_sql(filled, 'SELECT id FROM "gsm8k@v1"', limit=7).table().num_rows == 7


def catalog_contents(store):
    import duckdb

    con = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        return (con.execute("SELECT * EXCLUDE (stats) FROM versions ORDER BY ref").fetchall(),
                con.execute("SELECT * FROM lineage ORDER BY ALL").fetchall(),
                con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal "
                            "ORDER BY 1").fetchall())
    finally:
        con.close()


def test_publishing_extends_the_catalog_to_what_a_rebuild_gives(store, data_dir):
    import shutil

    import pyarrow as pa

    rows = pa.table({"id": ["a", "b"], "source": ["s", "s"], "category": ["math", "math"],
                     "input": [[{"role": "user", "content": "hi"}]] * 2, "verifier": ["none"] * 2})
    for i in range(3):
        for name in ("one", "two"):
            with store.writer(name, "prompts", step={"type": "t", "config": {"i": i}},
                              parents=[store.resolve(f"{name}@v{i}")] if i else []) as w:
                w.write(rows)
                w.reject(rows.slice(0, 1), reason="test")
    extended = catalog_contents(store)  # built one publish at a time
    assert [r[3] for r in extended[0] if r[12]] == ["one@v3", "two@v3"]  # is_latest
    assert ('one', 'CREATE VIEW one AS SELECT * FROM "one@v3";') in extended[2]
    assert refresh_catalog(store, force=True) is True
    assert catalog_contents(store) == extended
    # a version that vanished (removed by hand) cannot be extended away: rebuilt instead
    shutil.rmtree(store.version_dir(store.resolve("two@v3")))
    with store.writer("one", "prompts", step={"type": "t", "config": {"i": 9}}) as w:
        w.write(rows)
    assert sql(store, "SELECT ref FROM versions WHERE is_latest ORDER BY ref") == [
        {"ref": "one@v4"}, {"ref": "two@v2"}]
    assert sql(store, "SELECT count(*) AS n FROM two") == [{"n": 2}]


def test_a_moved_store_gets_a_catalog_of_its_new_paths(filled, tmp_path):
    import shutil

    from thinkforge.manifests import DatasetStore

    moved = DatasetStore(shutil.copytree(filled.root, tmp_path / "moved"))
    assert sql(moved, 'SELECT count(*) AS n FROM "gsm8k@v1"') == [{"n": 200}]
    assert refresh_catalog(moved) is True  # what `thinkforge sql` and `catalog` do after
    views = catalog_contents(moved)[2]
    assert all(str(filled.root) not in view_sql for _, view_sql in views)
    assert any(str(moved.root) in view_sql for _, view_sql in views)


def test_extending_in_a_callers_connection_gives_it_back_as_it_came(store, monkeypatch):
    """A publish extends the catalog in the connection it holds (ATTACH, USE, DETACH): the
    connection keeps its default database and its own tables, nothing stays attached, and
    a failure half way (rolled back) still leaves a full catalog (rebuilt) and the connection
    unchanged."""
    import duckdb
    import pyarrow as pa
    import thinkforge.manifests.catalog as catalog
    from thinkforge.manifests.duck import connect

    rows = pa.table({"id": ["a", "b"], "source": ["s", "s"], "category": ["math", "math"],
                     "input": [[{"role": "user", "content": "hi"}]] * 2, "verifier": ["none"] * 2})
    con = connect()
    con.execute("CREATE TEMP TABLE mine AS SELECT 42 AS x")
    con.execute("CREATE TABLE kept AS SELECT 7 AS y")

    def unchanged():
        assert con.execute("SELECT current_database(), (SELECT x FROM mine), (SELECT y FROM kept)"
                           ).fetchall() == [("memory", 42, 7)]
        assert sorted(r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()"
                                                ).fetchall()) == ["memory", "system", "temp"]

    for i in range(2):
        with store.writer("one", "prompts", step={"type": "t", "config": {"i": i}}) as w:
            w.use_connection(con)
            w.write(rows)
        unchanged()
    extended = catalog_contents(store)
    assert [r[3] for r in extended[0] if r[12]] == ["one@v2"]  # is_latest
    assert refresh_catalog(store, force=True) is True
    assert catalog_contents(store) == extended

    def broken(cat, store):
        cat.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(catalog, "_fill_runs", broken)
    with pytest.raises(duckdb.Error):  # the rebuild's own connection meets it too
        with store.writer("one", "prompts", step={"type": "t", "config": {"i": 3}}) as w:
            w.use_connection(con)
            w.write(rows)
            w.publish()
            catalog.refresh_catalog(store, force=True)
    unchanged()
    monkeypatch.undo()
    assert refresh_catalog(store) is True
    assert [r[3] for r in catalog_contents(store)[0] if r[12]] == ["one@v3"]
    con.close()
