"""The catalog opens in the DuckDB 1.x clients researchers use (issue 16 item 10)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from thinkforge.curation.importer import ImportOptions, import_file
from thinkforge.manifests.catalog import refresh_catalog


def storage_version_number(path: Path) -> int:
    """The storage version in a DuckDB file's main header (DuckDB 1.1-1.5 read 64-68)."""
    head = path.read_bytes()[:20]
    assert head[8:12] == b"DUCK"
    return struct.unpack("<Q", head[12:20])[0]


@pytest.fixture
def catalogued(store, data_dir):
    import_file(store, data_dir / "gsm8k_train_demo.jsonl", ImportOptions(name="gsm8k", preset="gsm8k"))
    refresh_catalog(store, force=True)
    return store


def test_catalog_is_written_in_a_storage_version_duckdb_1x_reads(catalogued, data_dir):
    assert storage_version_number(catalogued.catalog_path) <= 68
    # a publish extends the catalog in place: still readable by 1.x
    import_file(catalogued, data_dir / "math500_demo.jsonl",
                ImportOptions(name="math500", preset="math500"))
    refresh_catalog(catalogued)
    assert storage_version_number(catalogued.catalog_path) <= 68


def _duckdb_cli() -> str:
    for candidate in (shutil.which("duckdb"),
                      str(Path(__file__).resolve().parents[2] / ".venv-consumers/bin/duckdb")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no duckdb CLI: pip install duckdb-cli==1.5.6 (make consumers-env)")


@pytest.mark.slow
def test_duckdb_cli_1_5_opens_and_queries_the_catalog(catalogued):
    cli = _duckdb_cli()
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout
    query = ('SELECT count(*) AS n FROM "gsm8k@v1"; '
             "SELECT name, version, rows FROM versions ORDER BY name;")
    done = subprocess.run([cli, "-readonly", "-csv", str(catalogued.catalog_path), "-c", query],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    print(f"\nduckdb CLI {version.strip()}:\n{done.stdout}")
    assert "200" in done.stdout and "gsm8k,v1,200" in done.stdout
