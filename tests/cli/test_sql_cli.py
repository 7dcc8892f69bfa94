"""`thinkforge sql` options and failures: --file / stdin, --timeout, --memory-limit, --out,
Ctrl-C, and table output that shows values as they are (no rich markup)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest

ROWS = pa.table({"id": ["a", "b"], "source": ["s", "s"], "category": ["math", "math"],
                 "input": [[{"role": "user", "content": "[red]hi[/red]"}]] * 2, "verifier": ["none"] * 2})
SLOW = "SELECT sum(hash(a.range * b.range)) FROM range(1000000) a, range(1000000) b"


@pytest.fixture
def filled(store):
    with store.writer("p", "prompts", step={"type": "t"}) as w:
        w.write(ROWS)
    return store


def test_table_output_escapes_markup(filled, cli_run):
    result = cli_run("sql", "SELECT '[/INST]' AS x, '[red]42[/red]' AS \"[b]y[/b]\"")
    assert result.exit_code == 0, result.output
    assert "[/INST]" in result.stdout and "[red]42[/red]" in result.stdout and "[b]y[/b]" in result.stdout
    shown = cli_run("sql", "SELECT input[1].content AS c FROM p LIMIT 1")
    assert "[red]hi[/red]" in shown.stdout


def test_an_empty_result_shows_its_columns_and_says_no_rows(filled, cli_run):
    result = cli_run("sql", "SELECT id, source FROM p WHERE false")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "id" in lines[1] and "source" in lines[1] and lines[-1].strip() == "(no rows)"
    assert not any(line.startswith("│") for line in lines[3:])  # no blank row posing as data


def test_query_from_file_and_stdin(filled, cli_run, tmp_path):
    q = tmp_path / "q.sql"
    q.write_text("-- a long query\nSELECT count(*) AS n\nFROM p\n")
    assert cli_run("sql", "--file", str(q), "--format", "json").stdout == '{"n": 2}\n'
    assert cli_run("sql", "-", "--format", "json", input="SELECT 7 AS n").stdout == '{"n": 7}\n'
    assert cli_run("sql", "--file", "-", "--format", "json", input="SELECT 8 AS n").stdout == '{"n": 8}\n'
    assert cli_run("sql", "SELECT 1", "--file", str(q)).exit_code == 2
    assert cli_run("sql").exit_code == 2
    assert cli_run("sql", "-", input="  \n").exit_code == 2
    missing = cli_run("sql", "--file", str(tmp_path / "nope.sql"))
    assert missing.exit_code == 3 and "nope.sql" in missing.output
    directory = cli_run("sql", "--file", str(tmp_path))
    assert directory.exit_code == 6 and "Traceback" not in directory.output


def test_timeout_stops_the_query(filled, cli_run):
    start = time.monotonic()
    result = cli_run("sql", SLOW, "--timeout", "0.5")
    assert result.exit_code == 11 and "--timeout" in result.output, result.output
    assert time.monotonic() - start < 20
    assert cli_run("sql", "SELECT 1", "--timeout", "0").exit_code == 2


def test_memory_limit(filled, cli_run):
    result = cli_run("sql", "SELECT list(range) FROM range(30000000)", "--memory-limit", "20MB",
                     "--format", "json")
    assert result.exit_code == 11 and "--memory-limit" in result.output, result.output
    assert cli_run("sql", "SELECT 1", "--memory-limit", "lots").exit_code == 2
    assert cli_run("sql", "SELECT 1 AS n", "--memory-limit", "512MiB", "--format", "json").stdout == '{"n": 1}\n'


def test_out_into_a_missing_directory_or_a_directory(filled, cli_run, tmp_path):
    result = cli_run("sql", "SELECT 1", "--format", "csv", "--out", str(tmp_path / "no" / "x.csv"))
    assert result.exit_code == 3 and "mkdir -p" in result.output and "Traceback" not in result.output
    result = cli_run("sql", "SELECT 1", "--format", "csv", "--out", str(tmp_path))
    assert result.exit_code == 3 and "Traceback" not in result.output
    ok = cli_run("sql", "SELECT 1 AS n", "--format", "parquet", "--out", str(tmp_path / "r.parquet"))
    assert ok.exit_code == 0 and not list(tmp_path.glob("*.tmp"))


def test_ctrl_c_is_one_line_and_exit_130(filled):
    # SIGINT back to its default: a shell's background job (CI) starts children ignoring it
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "sys.argv = ['thinkforge', *sys.argv[1:]]; runpy.run_module('thinkforge', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", start, "--store", str(filled.root), "sql", SLOW],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # past start-up, inside the query
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_log_lines_show_brackets_as_they_are(capsys):
    from thinkforge.output import log

    log("file [red]x[/red].jsonl: 3 rows [/INST]")
    assert "[red]x[/red].jsonl: 3 rows [/INST]" in capsys.readouterr().err
