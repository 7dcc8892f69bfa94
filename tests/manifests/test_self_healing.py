"""The catalog heals itself, failed writes leave nothing behind, and what killed processes
leave is reclaimed (issue 13 item 5; the machine-level failures of item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import duckdb
import pyarrow as pa
import pytest
from thinkforge.manifests.catalog import refresh_catalog
from thinkforge.manifests.cleanup import OWNER, reclaim
from thinkforge.manifests.sql import run_sql

ROWS = pa.table({"id": ["a", "b", "c"], "source": ["s"] * 3, "category": ["math"] * 3,
                 "input": [[{"role": "user", "content": "hi"}]] * 3, "verifier": ["none"] * 3})


def publish(store, name):
    with store.writer(name, "prompts", step={"type": "t"}) as w:
        w.write(ROWS)
    return store.resolve(name)


def catalog_count(store):
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM versions").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("damage", ["junk", "truncated", "empty"])
def test_a_damaged_catalog_is_rebuilt(cli_run, store, damage):
    publish(store, "one")
    publish(store, "two")
    path = store.catalog_path
    data = path.read_bytes()
    path.write_bytes({"junk": b"not a database" * 100, "truncated": data[:5000], "empty": b""}[damage])
    result = cli_run("catalog")
    assert result.exit_code == 0, result.output
    assert catalog_count(store) == 2


def test_an_altered_catalog_with_the_right_signature_is_rebuilt(store):
    publish(store, "one")
    con = duckdb.connect(str(store.catalog_path))
    con.execute("UPDATE versions SET rows = 999999")
    con.close()
    assert refresh_catalog(store) is True  # not served as it is
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT rows FROM versions").fetchall() == [(3,)]
    con.close()


def test_a_directory_in_place_of_the_catalog_is_a_clear_error(cli_run, store):
    publish(store, "one")
    store.catalog_path.unlink()
    store.catalog_path.mkdir()
    result = cli_run("catalog", "rebuild")
    assert result.exit_code == 8 and "is a directory" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_shard_is_named_by_rebuild_and_the_rest_stays_queryable(cli_run, store):
    broken = publish(store, "broken")
    publish(store, "fine")
    store.shard_paths(broken)[0].unlink()
    result = cli_run("catalog", "rebuild")
    assert result.exit_code == 4, result.output
    assert "broken@v1" in result.stderr and "Binder" not in result.output
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    assert con.execute("SELECT count(*) FROM fine").fetchone()[0] == 3  # another client still reads
    con.close()
    assert run_sql(store, "SELECT count(*) AS n FROM fine").table().to_pylist() == [{"n": 3}]
    assert cli_run("sql", "SELECT count(*) FROM broken").exit_code == 4


def run_limited(store, code: str, limit: int = 64 * 1024):
    """Run ``code`` in a child process whose files may not grow past ``limit`` bytes."""
    prog = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from thinkforge.manifests import DatasetStore
        store = DatasetStore({str(store.root)!r})
    """) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120)


def leftovers(store):
    return sorted(p.name for p in store.root.rglob("*") if ".tmp" in p.name) + \
        sorted(p.name for p in (store.root / ".staging").glob("*"))


def test_a_file_size_limit_while_refreshing_keeps_the_old_catalog_and_no_tmp(store):
    publish(store, "one")
    before = store.catalog_path.read_bytes()
    out = run_limited(store, """
        from thinkforge.manifests.catalog import refresh_catalog
        try:
            refresh_catalog(store, force=True)
        except Exception as exc:
            print("failed:", type(exc).__name__)
    """)
    assert "failed" in out.stdout, out.stderr
    assert store.catalog_path.read_bytes() == before
    assert leftovers(store) == []


def test_a_file_size_limit_during_import_is_one_line_and_publishes_nothing(store, data_dir, tmp_path):
    rows = tmp_path / "big.jsonl"
    rows.write_text("".join(f'{{"q": "question {i} {os.urandom(100).hex()}"}}\n' for i in range(3000)))
    out = run_limited(store, f"""
        from thinkforge.cli import main
        sys.argv = ["thinkforge", "--store", {str(store.root)!r}, "-q", "import", {str(rows)!r},
                    "--name", "big", "--category", "chat", "--map", "input=q"]
        main()
    """, limit=128 * 1024)
    assert out.returncode == 11, out.stderr
    assert "Traceback" not in out.stderr and "File too large" in out.stderr
    assert not (store.datasets_dir / "big").exists()
    assert leftovers(store) == []


def test_a_store_that_cannot_be_created_is_one_line(cli_run, data_dir):
    from click.testing import CliRunner

    from thinkforge.cli import cli

    result = CliRunner().invoke(cli, ["--store", "/sys/forge-store", "import",
                                      str(data_dir / "math500_demo.jsonl"), "--name", "m",
                                      "--preset", "math500"])
    assert result.exit_code == 12, result.output
    assert "Traceback" not in result.output and "permissions" in result.output


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_spill_and_temp_files_are_reclaimed_on_the_next_write(cli_run, store):
    publish(store, "one")
    staging = store.root / ".staging"
    dead, live, spill = staging / "deadbeef", staging / "livewriter", staging / "spill-dead"
    for d in (dead, live, spill):
        (d / "data").mkdir(parents=True)
    host = os.uname().nodename
    (dead / OWNER).write_text(f"{dead_pid()} {host} -\n")
    (spill / OWNER).write_text(f"{dead_pid()} {host} -\n")
    (live / OWNER).write_text(f"{os.getpid()} {host} -\n")  # this process: alive
    tmp = store.root / f".catalog.duckdb.tmp-{dead_pid()}"
    tmp.write_bytes(b"half a catalog")
    listed = cli_run("gc")
    assert listed.exit_code == 0 and "deadbeef" in listed.stdout and "livewriter" not in listed.stdout
    assert dead.exists()  # a dry run removes nothing
    publish(store, "two")  # the next write reclaims
    assert not dead.exists() and not spill.exists() and not tmp.exists()
    assert live.exists()
    assert reclaim(store) == []
    (dead / "data").mkdir(parents=True)
    (dead / OWNER).write_text(f"{dead_pid()} {host} -\n")
    assert cli_run("gc", "--apply").exit_code == 0 and not dead.exists() and live.exists()


def test_a_published_version_holds_no_owner_file(store):
    m = publish(store, "one")
    assert not (store.version_dir(m) / OWNER).exists()
