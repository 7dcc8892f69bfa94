"""Issue 24 item 3: SQL limits that hold, no result that shows the store's path, `--out`
never inside the store, and `sql` on a read-only store."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess

import pytest

from .conftest import publish


@pytest.fixture
def toy(cli_run, store):
    publish(store)
    assert cli_run("filter", "dedup", "toy", "--name", "toy-d").exit_code == 0  # a selection
    assert store.resolve("toy-d").selection is not None
    return store


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error:") or result.stderr.startswith("Usage:"), result.stderr


def test_memory_limit_holds_for_one_huge_allocation(cli_run, toy):
    result = cli_run("sql", "SELECT length(repeat('x', 2000000000)) AS n FROM toy",
                     "--memory-limit", "100MB")
    one_line_error(result, 11)
    assert "memory" in result.stderr


def test_the_process_limit_is_restored_after_the_query(toy):
    from thinkforge.manifests.sql import run_sql

    before = resource.getrlimit(resource.RLIMIT_DATA)
    result = run_sql(toy, "SELECT count(*) AS n FROM toy", memory_limit="200MB", owns_process=True)
    assert result.table().to_pylist() == [{"n": 12}]
    assert resource.getrlimit(resource.RLIMIT_DATA) == before


def test_a_server_query_never_changes_the_process_limit(toy):
    """The web console runs queries side by side: only DuckDB's limit applies there."""
    from thinkforge.manifests.sql import run_sql

    before = resource.getrlimit(resource.RLIMIT_DATA)
    result = run_sql(toy, "SELECT count(*) AS n FROM toy", memory_limit="200MB")
    assert resource.getrlimit(resource.RLIMIT_DATA) == before  # while the query is open too
    assert result.table().to_pylist() == [{"n": 12}]


def test_timeout_stops_a_long_query(cli_run, toy):
    result = cli_run("sql", "SELECT sum(length(repeat(id, 100000))) AS n FROM toy, range(100000000)",
                     "--timeout", "0.5")
    one_line_error(result, 11)
    assert "--timeout" in result.stderr


@pytest.mark.parametrize("args", [("--timeout", "inf"), ("--timeout", "nan"), ("--timeout", "-1"),
                                  ("--limit", "-5"), ("--memory-limit", "1KB")])
def test_bad_limits_are_usage_errors(cli_run, toy, args):
    one_line_error(cli_run("sql", "SELECT 1 AS x", *args), 2)


def test_update_extensions_is_refused(cli_run, toy):
    result = cli_run("sql", "UPDATE EXTENSIONS")
    one_line_error(result, 7)


@pytest.mark.parametrize("query", [
    "SELECT current_setting('allowed_paths')::VARCHAR AS v FROM \"toy-d\"",
    "SELECT value::VARCHAR AS v, (SELECT count(*) FROM \"toy-d\") AS n FROM duckdb_settings()",
    "SELECT sql AS v, (SELECT count(*) FROM \"toy-d\") AS n FROM duckdb_views()",
    "SELECT view_definition AS v FROM information_schema.views, \"toy-d\"",
    "SELECT sql AS v FROM sqlite_master, \"toy-d\"",
    "SELECT definition AS v FROM pg_views, \"toy-d\"",
    "SELECT * FROM query('SELECT current_setting(''allowed_paths'')::VARCHAR AS v FROM \"toy-d\"')",
    "SELECT * FROM query('SELECT current_' || 'setting(''allowed_paths'')')",
    "EXPLAIN SELECT * FROM \"toy-d\"",
])
def test_no_query_result_shows_the_store_path(cli_run, toy, query):
    result = cli_run("sql", query, "--format", "csv")
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 7), result.output
    assert str(toy.root) not in result.stdout


def test_a_query_naming_a_selection_still_runs(cli_run, toy):
    result = cli_run("sql", "SELECT count(*) AS n FROM query('SELECT * FROM \"toy-d\"')", "--format", "csv")
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "12", result.output


def _tree_digest(root) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "catalog" not in p.name
                       and ".cache" not in p.parts):
        h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def test_out_inside_the_store_is_refused(cli_run, toy, tmp_path):
    before = _tree_digest(toy.root)
    manifest = toy.manifest_path(toy.resolve("toy"))
    link = tmp_path / "looks-outside"
    link.symlink_to(toy.root / "datasets")
    for out in (manifest, toy.root / "new.csv", link / "toy" / "v1" / "manifest.json"):
        result = cli_run("sql", "SELECT 1 AS x", "--format", "csv", "--out", str(out))
        one_line_error(result, 7)
        assert "inside the store" in result.stderr
    assert _tree_digest(toy.root) == before


def test_sql_on_a_read_only_store_does_not_touch_the_catalog(toy, tmp_path):
    """A read-only bind mount of the store (root can write anywhere else), or, for other
    users, a store without write permission."""
    thinkforge = [str(os.path.join(os.path.dirname(os.sys.executable), "thinkforge"))]
    view = tmp_path / "ro"
    view.mkdir()
    (toy.root / "catalog.duckdb").unlink(missing_ok=True)  # a refresh would write it
    mounted = False
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", str(toy.root), str(view)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount here")
        mounted = True
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(view)])
            pytest.skip("cannot remount read-only here")
        root = view
    else:
        root = toy.root
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    try:
        result = subprocess.run([*thinkforge, "--store", str(root), "sql", "SELECT count(*) AS n FROM toy",
                                 "--format", "csv"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "12"
        assert "warning" not in result.stderr and "Traceback" not in result.stderr
        assert not (toy.root / "catalog.duckdb").exists()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(view)])
        else:
            for path in [toy.root, *toy.root.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
