"""Issue 24 item 4: bad input gives one line and its exit code, never a traceback, and
nothing half-written."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import publish


def one_line(result, code):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error:"), result.output


def test_latin1_byte_inside_a_json_string(cli_run, tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"input": "caf\xe9 1+1?", "category": "math"}\n')
    result = cli_run("import", str(path), "--name", "l")
    one_line(result, 6)
    assert "UTF-8" in result.stderr and "line 1" in result.stderr


@pytest.mark.parametrize("extra", [(), ("--on-error", "skip"), ("--preset", "gsm8k"),
                                   ("--map", "input=question")])
def test_a_file_of_only_malformed_rows_names_the_first_bad_line(cli_run, tmp_path, extra):
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n{bad\n")
    result = cli_run("import", str(path), "--name", "b", *extra)
    one_line(result, 6)
    assert "line 1" in result.stderr and "does not exist" not in result.stderr


def test_deep_nesting_fails_fast(cli_run, tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"input": ' + "[" * 10_000 + "]" * 10_000 + ', "category": "math"}\n')
    start = time.monotonic()
    result = cli_run("import", str(path), "--name", "d")
    elapsed = time.monotonic() - start
    one_line(result, 6)
    assert "nested too deep" in result.stderr
    print(f"10k-deep line refused in {elapsed:.2f} s")  # was ~35 s (Arrow's JSON reader)


def test_the_depth_precheck_only_ever_sends_batches_down_the_exact_path():
    from thinkforge.curation.columnar import ARROW_MAX_DEPTH, _too_deep

    deep = b"[" * (ARROW_MAX_DEPTH + 1) + b"]" * (ARROW_MAX_DEPTH + 1) + b"\n"
    assert _too_deep(b'{"a": [1, [2]]}\n' + deep)
    assert not _too_deep(b'{"a": "' + b"]" * 500 + b'"}\n' + b"[" * 60 + b"]" * 60 + b"\n")
    assert not _too_deep(b"[[1]]\n" * 1000)


def test_an_unknown_chat_role_is_refused(cli_run, tmp_path):
    path = tmp_path / "wizard.jsonl"
    path.write_text(json.dumps({"input": [{"role": "wizard", "content": "hi"}], "category": "math"}) + "\n")
    result = cli_run("import", str(path), "--name", "w")
    one_line(result, 6)
    assert "wizard" in result.stderr


@pytest.mark.parametrize("weights", ["math=nan", "math=inf", "math=-1"])
def test_mix_weights_must_be_finite_shares(cli_run, store, weights):
    publish(store)
    one_line(cli_run("mix", "toy", "--name", "m", "--weights-category", weights), 8)


def test_a_tiny_memory_limit_is_refused(cli_run, store):
    publish(store)
    one_line(cli_run("filter", "dedup", "toy", "--name", "d", "--memory-limit", "1KB"), 8)


@pytest.mark.parametrize("ref", ["toy@", "@v1", "toy@@v1"])
def test_a_ref_with_nothing_after_the_at_is_refused(cli_run, store, ref):
    publish(store)
    one_line(cli_run("show", ref), 3)


def test_a_catalog_lock_replaced_by_a_directory(cli_run, store):
    publish(store)
    lock = store.root / ".catalog.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    result = cli_run("catalog", "rebuild")
    one_line(result, 8)
    assert "catalog.lock" in result.stderr


def test_disk_full_with_a_few_kb_left(cli_run, tmp_path):
    """A real full file system (a small tmpfs), filled to a few KB at several points."""
    import os

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"input": f"question {i} " * 8, "category": "math"}) + "\n"
                            for i in range(300)))
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        outcomes = set()
        for left_kb in range(4, 44, 4):
            for path in disk.iterdir():
                subprocess.run(["rm", "-rf", str(path)])
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            (disk / "fill").write_bytes(b"\0" * max(0, free - left_kb * 1024))
            store = disk / "store"
            from click.testing import CliRunner

            from thinkforge.cli import cli

            result = CliRunner().invoke(cli, ["--store", str(store), "-q", "import", str(rows),
                                              "--name", "m"])
            assert result.exit_code in (0, 11), (left_kb, result.output, result.exception)
            assert "Traceback" not in result.output
            outcomes.add(result.exit_code)
            if result.exit_code == 11:
                assert "No space left" in result.output
                assert not (store / "datasets" / "m").exists(), left_kb  # no empty dataset dir
        assert 11 in outcomes
    finally:
        subprocess.run(["umount", "-l", str(disk)])  # lazy: a handle may still be open
