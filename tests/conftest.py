"""Shared fixtures: a fresh store per test and the bundled data files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from manifests import DatasetStore

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "curation" / "data"


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "store")


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def cli_run(store: DatasetStore):
    """Run the CLI against the test's store: cli_run("sql", "SELECT 1") -> click Result."""
    from thinkforge.cli import cli, load_commands

    load_commands()

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, ["--store", str(store.root), "--quiet", *args], input=input)

    return run
