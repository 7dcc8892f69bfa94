"""`thinkforge sql` cannot write, and cannot read anything but the versions' rows.

Every attempt below was made against a store holding a forged-shard target, a manifest to
rewrite, a catalog to read and a symlink pointing out of the store.  After each attempt
and after the whole suite the store, a directory outside it and the working directory
are byte-for-byte what they were (``test_zz_nothing_was_written_by_the_whole_suite``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import ForgeError, SqlRefusedError
from thinkforge.manifests.sql import check_read_only, run_sql, sandbox_connection

from tests.manifests.selection_store import fill


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    store = DatasetStore(base / "store")
    fill(store)  # with a selection version: the one place the sandbox allows file reads
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read\n")
    # a symlink inside the store pointing out of it (next to a version, not in a manifest)
    os.symlink(outside / "secret.txt", store.datasets_dir / "gsm8k" / "link-out")
    cwd = base / "cwd"
    cwd.mkdir()
    before = snapshot(base)
    return {"store": store, "base": base, "outside": outside, "cwd": cwd, "before": before}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root -> sha256 of its bytes, 'dir', or 'link -> target'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath, d)
            out[str(p.relative_to(root))] = f"link -> {os.readlink(p)}" if p.is_symlink() else "dir"
        for f in filenames:
            p = Path(dirpath, f)
            rel = str(p.relative_to(root))
            out[rel] = f"link -> {os.readlink(p)}" if p.is_symlink() else \
                hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def paths(world) -> dict[str, str]:
    store = world["store"]
    m = store.resolve("gsm8k@v1")
    return {"shard": str(store.shard_paths(m)[0]), "manifest": str(store.version_dir(m) / "manifest.json"),
            "catalog": str(store.catalog_path), "store": str(store.root), "vdir": str(store.version_dir(m)),
            "out": str(world["outside"]), "link": str(store.datasets_dir / "gsm8k" / "link-out"),
            "datasets": str(store.datasets_dir),
            "selfile": str(store.version_dir(store.resolve("gsm8k-dedup")) / "selection.parquet"),
            "digests": str(store.version_dir(m) / "digests.parquet")}


# statements that write, change settings, load code or run several statements
WRITES = [
    "EXPLAIN ANALYZE COPY (SELECT * FROM gsm8k) TO '{shard}' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{vdir}/p' (FORMAT parquet, PARTITION_BY (x))",
    "EXPLAIN ANALYSE COPY (SELECT 1) TO '{out}/a.csv'",
    "EXPLAIN (ANALYZE) COPY (SELECT 1) TO '{out}/b.csv'",
    "EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO '{out}/c.csv'",
    "EXPLAIN (FORMAT json) SELECT 1",
    "EXPLAIN COPY (SELECT 1) TO '{out}/d.csv'",
    "EXPLAIN EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/e.csv'",
    "/* a comment first */ EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/f.csv'",
    "-- a line comment\nEXPLAIN\tANALYZE COPY (SELECT 1) TO '{out}/g.csv'",
    "explain analyze copy (select 1) to '{out}/h.csv'",
    "COPY (SELECT 1) TO '{out}/i.csv'",
    "COPY (SELECT * FROM gsm8k) TO '{shard}' (FORMAT parquet)",
    ("COPY (SELECT replace(content, 'x', 'y') FROM (SELECT 'x' AS content)) TO '{manifest}' "
     "(FORMAT csv, HEADER false, QUOTE '')"),
    "COPY versions TO '{out}/versions.parquet'",
    "COPY FROM DATABASE memory TO memory",
    "EXPORT DATABASE '{out}/export'",
    "ATTACH '{catalog}' AS c",
    "ATTACH '{out}/new.duckdb' AS n",
    "ATTACH ':memory:' AS m",
    "DETACH memory",
    "CREATE TABLE t AS SELECT 1",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CREATE OR REPLACE TEMP VIEW gsm8k AS SELECT 1 AS id",
    "CREATE MACRO m(x) AS x + 1",
    "CREATE MACRO tm() AS TABLE SELECT 1",
    "INSERT INTO versions SELECT * FROM versions",
    "UPDATE versions SET rows = 0",
    "DELETE FROM versions",
    "DROP VIEW gsm8k",
    "ALTER TABLE versions ADD COLUMN x INT",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{out}/evil.duckdb_extension'",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET temp_directory = '{out}'",
    "SET profiling_output = '{out}/profile.json'",
    "PRAGMA enable_profiling",
    "CALL checkpoint()",
    "CHECKPOINT",
    "VACUUM",
    "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "PIVOT gsm8k ON category USING count(*)",
    "SELECT 1; COPY (SELECT 1) TO '{out}/j.csv'",
    "COPY (SELECT 1) TO '{out}/k.csv'; SELECT 1",
    "SELECT 1;; SELECT 2",
    "WITH x AS (SELECT 1) COPY (SELECT * FROM x) TO '{out}/l.csv'",
    "SELECT * FROM (EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/m.csv')",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{out}/n.csv''')",
    "SELECT * FROM query('EXPLAIN ANALYZE COPY (SELECT 1) TO ''{out}/o.csv''')",
    "USE memory",
    # naming a selection makes its selection file and base shards readable (allowed_paths):
    # writing them must still be refused
    'EXPLAIN ANALYZE COPY (SELECT * FROM "gsm8k-dedup") TO \'{shard}\' (FORMAT parquet)',
    'COPY (SELECT * FROM "gsm8k-dedup") TO \'{shard}\' (FORMAT parquet)',
    'SELECT * FROM "gsm8k-dedup"; COPY (SELECT 1) TO \'{shard}\'',
    'WITH s AS (SELECT * FROM "gsm8k-dedup") SELECT * FROM query(\'COPY (SELECT 1) TO \'\'{shard}\'\'\')',
    # ... nor can any other writer reach the selection's own file, the base's digests or shards
    'EXPLAIN ANALYZE COPY (SELECT * FROM "gsm8k-dedup") TO \'{selfile}\' (FORMAT parquet)',
    'EXPLAIN ANALYZE COPY (SELECT 1 AS d) TO \'{digests}\' (FORMAT parquet)',
    'WITH s AS (SELECT * FROM "gsm8k-dedup") SELECT * FROM (EXPLAIN ANALYZE COPY s TO \'{selfile}\')',
    'SELECT * FROM "gsm8k-dedup"; EXPORT DATABASE \'{vdir}\'',
    'SELECT * FROM "gsm8k-dedup"; ATTACH \'{shard}\' AS w; CREATE TABLE w.t AS SELECT 1',
    'EXPLAIN ANALYZE SELECT * FROM "gsm8k-dedup", (SELECT * FROM query(\'COPY (SELECT 1) TO \'\'{selfile}\'\'\'))',
]

# functions that open files or URLs: each must be refused, whatever path it names
READS = [
    "SELECT * FROM read_blob('{catalog}')",
    "SELECT * FROM read_blob('{shard}')",
    "SELECT * FROM read_text('{manifest}')",
    "SELECT replace(content, 'a', 'b') FROM read_text('{manifest}')",
    "SELECT * FROM read_csv('{manifest}')",
    "SELECT * FROM read_csv_auto('{manifest}')",
    "SELECT * FROM read_json('{manifest}')",
    "SELECT * FROM read_json_objects('{manifest}')",
    "SELECT * FROM read_ndjson_objects('{manifest}')",
    "SELECT * FROM sniff_csv('{manifest}')",
    "SELECT * FROM read_parquet('{shard}')",
    "SELECT * FROM parquet_metadata('{shard}')",
    "SELECT * FROM parquet_schema('{shard}')",
    "SELECT * FROM '{shard}'",
    "SELECT * FROM glob('{store}/**')",
    "SELECT * FROM glob('{datasets}/*')",
    "SELECT * FROM read_blob('{datasets}/../catalog.duckdb')",
    "SELECT * FROM read_text('{vdir}/../../../catalog.duckdb')",
    "SELECT * FROM read_text('{link}')",
    "SELECT * FROM read_text('file://{manifest}')",
    "SELECT * FROM read_text(['{manifest}', '{catalog}'])",
    "SELECT * FROM read_text('{store}/datasets/*/*/manifest.json')",
    "SELECT * FROM read_csv('https://example.com/x.csv')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM query('SELECT * FROM read_blob(''{catalog}'')')",
    "WITH m AS (SELECT * FROM read_text('{manifest}')) SELECT * FROM m",
    "SELECT (SELECT content FROM read_text('{manifest}')) AS c",
    "SELECT * FROM gsm8k WHERE id IN (SELECT filename FROM read_blob('{shard}'))",
    "EXPLAIN SELECT * FROM read_blob('{catalog}')",
    # a selection in the same query does not open anything beyond its own files
    'SELECT * FROM "gsm8k-dedup", read_text(\'{manifest}\')',
    'SELECT * FROM "gsm8k-dedup", read_blob(\'{catalog}\')',
    'SELECT * FROM "gsm8k-dedup", read_text(\'{out}/secret.txt\')',
]

ATTEMPTS = [("write", q) for q in WRITES] + [("read", q) for q in READS]


@pytest.mark.parametrize(("what", "template"), ATTEMPTS, ids=[f"{w}-{i}" for i, (w, _) in enumerate(ATTEMPTS)])
def test_escape_attempt_is_refused_and_writes_nothing(world, what, template, monkeypatch):
    monkeypatch.chdir(world["cwd"])
    query = template.format(**paths(world))
    with pytest.raises(ForgeError) as caught:
        run_sql(world["store"], query).table()
    if what == "read":  # refused, not merely failing to parse
        assert isinstance(caught.value, SqlRefusedError), str(caught.value)
    assert snapshot(world["base"]) == world["before"], query


def test_there_are_at_least_forty_attempts():
    assert len(ATTEMPTS) >= 40


# plain queries keep working: the sandbox is not a deny-everything
ALLOWED = [
    ("SELECT count(*) AS n FROM gsm8k", [{"n": 3}]),
    ('SELECT count(*) AS n FROM "gsm8k@v1/rejected"', [{"n": 1}]),
    ("WITH x AS (SELECT id FROM gsm8k) SELECT count(*) AS n FROM x", [{"n": 3}]),
    ("FROM other SELECT count(*) AS n", [{"n": 3}]),
    ("SELECT column_name FROM (SUMMARIZE gsm8k) WHERE column_name = 'id'", [{"column_name": "id"}]),
    ("SELECT count(*) AS n FROM (DESCRIBE gsm8k)", [{"n": 8}]),
    ("PIVOT (SELECT category FROM gsm8k) ON category IN ('math', 'code') USING count(*)",
     [{"math": 2, "code": 1}]),
    ("SELECT * FROM query('SELECT count(*) AS n FROM other')", [{"n": 3}]),
    ("SELECT count(*) AS n FROM versions", [{"n": 3}]),
    ('SELECT count(*) AS n FROM "gsm8k-dedup"', [{"n": 1}]),  # three rows of one prompt
]


@pytest.mark.parametrize(("query", "expected"), ALLOWED)
def test_plain_queries_still_run(world, query, expected, monkeypatch):
    monkeypatch.chdir(world["cwd"])
    assert run_sql(world["store"], query).table().to_pylist() == expected


def test_plain_explain_runs(world):
    rows = run_sql(world["store"], "EXPLAIN SELECT count(*) FROM gsm8k").table().to_pylist()
    assert rows and "explain_key" in rows[0]


def test_settings_views_and_tables_do_not_reveal_the_store_path(world):
    store = world["store"]
    for query in ["SELECT value::VARCHAR AS v FROM duckdb_settings()",
                  "SELECT sql AS v FROM duckdb_views()",
                  "SELECT path AS v FROM duckdb_databases() WHERE path IS NOT NULL",
                  "SELECT current_setting('temp_directory') AS v",
                  "SELECT path AS v FROM versions"]:
        try:  # settings and view definitions are refused (issue 24); the rest shows no path
            values = [r["v"] for r in run_sql(store, query).table().to_pylist()]
        except SqlRefusedError:
            continue
        assert not any(v and str(store.root) in v for v in values), query
    assert run_sql(store, "SELECT path FROM versions WHERE ref = 'gsm8k@v1'").table().to_pylist()[0] == \
        {"path": "datasets/gsm8k/v1"}


def test_the_sandbox_alone_cannot_open_files(world, monkeypatch):
    """Lock 2 without lock 1: even statements the allow-list refuses cannot touch a file."""
    monkeypatch.chdir(world["cwd"])
    p = paths(world)
    con = sandbox_connection()
    con.execute("SET lock_configuration = true")
    for statement in [f"COPY (SELECT 1) TO '{p['out']}/x.csv'", f"COPY (SELECT 1) TO '{p['shard']}'",
                      "COPY (SELECT 1) TO ':memory:'", f"COPY (SELECT 1) TO '{world['cwd']}/:memory:'",
                      f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{p['out']}/y.csv'",
                      f"EXPORT DATABASE '{p['out']}/e'", f"ATTACH '{p['out']}/n.duckdb' AS n",
                      f"SELECT * FROM read_blob('{p['catalog']}')"]:
        with pytest.raises(duckdb.PermissionException):
            con.execute(statement).fetchall()
    for statement in ["SET enable_external_access = true", "SET allowed_directories = ['/']",
                      "SET temp_directory = '/tmp'"]:
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    con.close()
    assert snapshot(world["base"]) == world["before"]


def test_the_read_only_filesystem_refuses_writes_to_the_shards_it_serves(world, monkeypatch):
    """Lock 2 without lock 1, on exactly the files a query may read (every plain version's
    shards, as ``query('...')`` makes them readable): they read, and no write reaches them."""
    from thinkforge.manifests.sql import query_files

    monkeypatch.chdir(world["cwd"])
    store = world["store"]
    files = query_files(store, list(store.manifests()), None)
    urls = files.urls()
    assert urls and all(u.startswith("thinkforge://datasets/") for u in urls)
    assert not any(str(store.root) in u for u in urls)  # no store path in a view or an error
    con = sandbox_connection(files=files)
    con.execute("SET lock_configuration = true")
    assert con.execute(f"SELECT count(*) FROM read_parquet('{urls[0]}')").fetchone()[0] >= 1
    for url in urls:
        for statement in [f"COPY (SELECT 1 AS a) TO '{url}' (FORMAT parquet)",
                          f"COPY (SELECT 1 AS a) TO '{url}' (FORMAT parquet, USE_TMP_FILE false)",
                          f"COPY (SELECT 1 AS a) TO '{url}' (FORMAT csv, USE_TMP_FILE false)",
                          f"COPY (SELECT 1 AS a) TO '{url}.csv'",
                          "EXPORT DATABASE 'thinkforge://datasets/e'",
                          "SELECT * FROM glob('thinkforge://datasets/*')",
                          "SELECT * FROM read_parquet('thinkforge://datasets/*/*/*/*.parquet')",
                          f"SELECT * FROM read_parquet('{url.replace('datasets/', 'datasets/x/../', 1)}')",
                          f"SELECT * FROM read_parquet('{store.shard_paths(next(store.manifests()))[0]}')"]:
            with pytest.raises(duckdb.Error):
                con.execute(statement).fetchall()
        try:  # DuckDB attaches an unknown protocol's path as a new in-memory database
            con.execute(f"ATTACH '{url}' AS x (READ_WRITE)")
            con.execute("CREATE TABLE x.t AS SELECT 1 AS a")
            con.execute("CHECKPOINT x")
            con.execute("DETACH x")
        except duckdb.Error:
            pass
    con.close()
    assert snapshot(world["base"]) == world["before"]


@pytest.mark.parametrize("query", ["EXPLAIN ANALYZE SELECT 1", "EXPLAIN (ANALYZE) SELECT 1",
                                   "SELECT 1; SELECT 2", "CALL pragma_version()"])
def test_allow_list_refuses_before_anything_runs(query):
    with pytest.raises(SqlRefusedError):
        check_read_only(query)


def test_cli_sql_refuses_with_exit_7_and_one_line(world, monkeypatch):
    from click.testing import CliRunner

    from thinkforge.cli import cli, load_commands

    load_commands()
    monkeypatch.chdir(world["cwd"])
    q = "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/cli.csv'".format(**paths(world))
    result = CliRunner().invoke(cli, ["--store", str(world["store"].root), "sql", q])
    assert result.exit_code == 7, result.output
    assert "Traceback" not in result.output
    assert snapshot(world["base"]) == world["before"]


def test_zz_nothing_was_written_by_the_whole_suite(world):
    """Runs last in this module: the store, the outside directory and the cwd are unchanged."""
    assert snapshot(world["base"]) == world["before"]
