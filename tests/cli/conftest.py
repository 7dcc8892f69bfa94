"""Fixtures for the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def gsm8k_cli(cli_run, data_dir) -> str:
    """The demo GSM8K file imported as `gsm8k` through the CLI; returns the file's path."""
    path = str(data_dir / "gsm8k_train_demo.jsonl")
    result = cli_run("import", path, "--name", "gsm8k", "--preset", "gsm8k")
    assert result.exit_code == 0, result.output
    return path
