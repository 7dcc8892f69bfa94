"""Every command through click's CliRunner: help, data on stdout, exit codes."""

import json

import click
import pytest

from thinkforge.cli import cli


def all_commands(group=cli, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # with the commands derived from step descriptors
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


def test_every_command_has_help_with_an_example(cli_run):
    from thinkforge.cli import load_commands

    load_commands()
    commands = list(all_commands())
    assert {"import", "catalog", "show", "verify", "sql", "diff"} <= {c[0][0] for c in commands}
    for path, command in commands:
        result = cli_run(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"`thinkforge {' '.join(path)} --help` has no example"
        assert command.help and len(command.help.split()) > 3, path


def test_version_and_short_help(cli_run):
    assert cli_run("--version").output.startswith("thinkforge, version")
    assert "Exit codes" in cli_run("-h").output


def test_import_show_verify_sql_diff_round_trip(cli_run, data_dir, tmp_path):
    result = cli_run("import", str(data_dir / "gsm8k_train_demo.jsonl"), "--name", "gsm8k", "--preset", "gsm8k")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "gsm8k@v1"
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(list((data_dir / "gsm8k_train_demo.jsonl").open())[:150]))
    assert cli_run("import", str(subset), "--name", "gsm8k", "--preset", "gsm8k").stdout.strip() == "gsm8k@v2"

    shown = json.loads(cli_run("show", "gsm8k@v1", "--json").stdout)
    assert shown["rows"] == 200 and shown["version"] == "v1"
    assert "unsigned gsm8k@v2" in cli_run("verify", "gsm8k@v2").stdout

    out = cli_run("sql", "SELECT count(*) AS n FROM gsm8k", "--format", "json").stdout
    assert json.loads(out) == {"n": 150}
    csv_out = cli_run("sql", 'SELECT id FROM "gsm8k@v1" ORDER BY id', "--format", "csv", "--limit", "3").stdout
    assert csv_out.splitlines()[0] == "id" and len(csv_out.splitlines()) == 4
    parquet = tmp_path / "q.parquet"
    assert cli_run("sql", "SELECT * FROM gsm8k", "--format", "parquet", "--out", str(parquet)).exit_code == 0
    assert __import__("pyarrow.parquet").parquet.read_table(parquet).num_rows == 150

    diff = json.loads(cli_run("diff", "gsm8k@v1", "gsm8k@v2", "--json").stdout)
    assert (diff["added"], diff["removed"], diff["changed"]) == (0, 50, 0)
    assert diff["stats_delta"]["rows"] == -50

    catalog = json.loads(cli_run("catalog", "--json").stdout)
    assert [(c["name"], c["version"]) for c in catalog] == [("gsm8k", "v1"), ("gsm8k", "v2")]
    assert cli_run("catalog", "rebuild").exit_code == 0


def test_diff_reports_changed_rows(cli_run, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": "1", "q": "x", "g": "1"}\n{"id": "2", "q": "y", "g": "2"}\n')
    b.write_text('{"id": "1", "q": "x", "g": "one"}\n{"id": "3", "q": "z", "g": "3"}\n')
    for path in (a, b):
        cli_run("import", str(path), "--name", "t", "--category", "math", "--source", "s",
                "--map", "input=q", "--map", "ground_truth=g")
    diff = json.loads(cli_run("diff", "t@v1", "t@v2", "--json").stdout)
    assert (diff["added"], diff["removed"], diff["changed"]) == (1, 1, 1)
    assert diff["examples"] == {"added": ["3"], "removed": ["2"], "changed": ["1"]}


@pytest.mark.parametrize("args, code, message", [
    (("show", "missing"), 3, "no dataset named 'missing'"),
    (("sql", "DROP TABLE versions"), 7, "read-only"),
    (("import", "nope.jsonl", "--name", "x"), 3, "no such file"),
    (("import", "x.jsonl", "--name", "Bad Name"), 8, "invalid dataset name"),
    (("import", "x.jsonl", "--name", "x", "--map", "input"), 8, "FIELD=COLUMN"),
])
def test_errors_go_to_stderr_with_documented_exit_codes(cli_run, tmp_path, args, code, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"q": "x"}\n')
    cli_run("import", "x.jsonl", "--name", "seed", "--category", "chat", "--map", "input=q")
    result = cli_run(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and result.stdout == ""


def test_verify_exit_code_on_tampering(cli_run, store, data_dir):
    cli_run("import", str(data_dir / "math500_demo.jsonl"), "--name", "m", "--preset", "math500")
    shard = store.shard_paths(store.resolve("m"))[0]
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    result = cli_run("verify", "m")
    assert result.exit_code == 4 and "sha256" in result.stderr


def test_import_dry_run_validates_and_writes_nothing(cli_run, store, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a", "answer": "#### 1"}\n{"question": "b"}\n')
    result = cli_run("import", str(path), "--name", "q", "--preset", "gsm8k", "--dry-run",
                     "--on-error", "skip", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "q", "kind": "prompts", "rows": 1,
                                         "rejected": {"missing value": 1}, "published": False}
    assert store.names() == []
    assert cli_run("import", str(path), "--name", "q", "--preset", "gsm8k", "--dry-run").exit_code == 6


def test_table_output_is_capped_unless_limit_says_otherwise(cli_run, data_dir, monkeypatch):
    import thinkforge.commands as commands

    monkeypatch.setattr(commands, "TABLE_ROWS", 5)
    cli_run("import", str(data_dir / "math500_demo.jsonl"), "--name", "m", "--preset", "math500")
    capped = cli_run("sql", "SELECT id FROM m")
    assert capped.stdout.count("│") // 2 == 5 and "showing the first 5 rows" in capped.stderr
    more = cli_run("sql", "SELECT id FROM m", "--limit", "7")
    assert more.stdout.count("│") // 2 == 7 and "showing" not in more.stderr
