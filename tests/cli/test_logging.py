"""Messages go through logging: plain lines on a pipe, JSON lines with --log-json, the level
from --log-level (or --quiet), and the library's own loggers under `thinkforge.*`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys


def test_errors_are_plain_lines_or_json_lines(tmp_path):
    base = [sys.executable, "-m", "thinkforge", "--store", str(tmp_path / "none")]
    plain = subprocess.run([*base, "show", "x"], capture_output=True, text=True)
    assert plain.returncode == 3 and plain.stderr.startswith("error: no store at ")
    as_json = subprocess.run([*base, "--log-json", "show", "x"], capture_output=True, text=True)
    assert as_json.returncode == 3
    record = json.loads(as_json.stderr.strip().splitlines()[0])
    assert record["level"] == "error" and record["logger"] == "thinkforge.cli"
    assert record["message"].startswith("no store at ") and record["time"].endswith("Z")
    assert as_json.stdout == ""


def test_log_level_filters_info_lines(cli_run, data_dir, monkeypatch):
    import thinkforge.commands as commands

    monkeypatch.setattr(commands, "TABLE_ROWS", 5)
    cli_run("import", str(data_dir / "gsm8k_train_demo.jsonl"), "--name", "a", "--preset", "gsm8k")
    shown = cli_run("sql", "SELECT id FROM a")  # 200 rows > 5: a note says the table is capped
    assert shown.exit_code == 0 and "showing the first" in shown.stderr
    hidden = cli_run("--log-level", "warning", "sql", "SELECT id FROM a")
    assert hidden.exit_code == 0 and hidden.stdout == shown.stdout and hidden.stderr == ""


def test_library_modules_log_under_thinkforge(capsys):
    import thinkforge  # noqa: F401  (installs the default handler)

    logging.getLogger("thinkforge.manifests.writer").warning("catalog not refreshed (x)")
    logging.getLogger("thinkforge.trainers.steps").info("training 3 steps")
    assert capsys.readouterr().err.splitlines() == ["warning: catalog not refreshed (x)",
                                                    "training 3 steps"]
