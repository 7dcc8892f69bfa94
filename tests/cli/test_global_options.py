"""Root options after the subcommand, a missing store, hyphenated names in SQL (issue 9 #10),
and the mix / split commands derived from their step descriptors (issue 9 #11)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from thinkforge.cli import cli, hoist_global_options, load_commands


def invoke(*args: str):
    load_commands()
    return CliRunner().invoke(cli, list(args))


def test_global_options_may_follow_the_subcommand(store, gsm8k_cli):
    result = invoke("sql", "SELECT count(*) AS n FROM gsm8k", "--format", "json",
                    "--store", str(store.root), "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"n": 200}
    result = invoke("catalog", f"--store={store.root}", "--json")
    assert result.exit_code == 0 and "gsm8k" in result.stdout
    assert hoist_global_options(["launch", "--nodes", "1", "--", "train", "--store", "x"]) == \
        ["launch", "--nodes", "1", "--", "train", "--store", "x"]


def test_a_store_that_does_not_exist_is_an_error_for_read_commands(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (["sql", "SELECT 1"], ["catalog"], ["show", "gsm8k"]):
        result = invoke("--store", str(missing), *args)
        assert result.exit_code == 3, (args, result.output)
        assert f"no store at {missing}" in result.output and "import" in result.output
    assert not missing.exists()


def test_unquoted_hyphenated_names_get_a_hint(cli_run, gsm8k_cli):
    assert cli_run("import", gsm8k_cli, "--name", "gsm8k-sft", "--preset", "gsm8k").exit_code == 0
    result = cli_run("sql", "SELECT count(*) FROM gsm8k-sft")
    assert result.exit_code == 6
    assert 'quote hyphenated names: "gsm8k-sft"' in result.output
    ok = cli_run("sql", 'SELECT count(*) AS n FROM "gsm8k-sft"', "--format", "json")
    assert json.loads(ok.stdout) == {"n": 200}


def test_mix_and_split_are_commands(cli_run, store, gsm8k_cli):
    result = cli_run("mix", "gsm8k", "--name", "gsm8k-mix", "--rows", "50",
                     "--weights-category", "math=1")
    assert result.exit_code == 0 and result.stdout.strip() == "gsm8k-mix@v1", result.output
    assert store.resolve("gsm8k-mix").rows == 50
    result = cli_run("split", "gsm8k-mix", "--name", "gsm8k-mix", "--validation", "0.2")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["gsm8k-mix-train@v1", "gsm8k-mix-validation@v1"]
    dry = cli_run("split", "gsm8k-mix", "--name", "gsm8k-mix", "--validation", "0.2", "--dry-run")
    assert "reuses gsm8k-mix-train@v1, gsm8k-mix-validation@v1" in dry.output
    assert "Example:" in cli_run("mix", "--help").output


def test_show_verify_diff_columns_and_pull_say_what_they_did(cli_run, store, gsm8k_cli, tmp_path):
    shown = cli_run("show", "gsm8k", "--verify")
    assert shown.exit_code == 0
    assert "verified gsm8k@v1: sha256 and size of 1 data and 0 rejected shard(s)" in shown.output
    changed = tmp_path / "changed.jsonl"
    lines = open(gsm8k_cli, encoding="utf-8").read().splitlines()
    first = json.loads(lines[0])
    first["answer"] = first["answer"].rsplit("####", 1)[0] + "#### 73"
    changed.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    assert cli_run("import", str(changed), "--name", "gsm8k", "--preset", "gsm8k").exit_code == 0
    diff = cli_run("diff", "gsm8k@v1", "gsm8k@v2")
    assert "changed columns: ground_truth (1 rows), metadata (1 rows)" in diff.output, diff.output
    as_json = json.loads(cli_run("diff", "gsm8k@v1", "gsm8k@v2", "--json").stdout)
    assert as_json["changed_columns"] == {"ground_truth": 1, "metadata": 1}  # the solution
    load_commands()
    runner = CliRunner()
    first_pull = runner.invoke(cli, ["--store", str(store.root), "pull", "gsm8k@v1", "--to",
                                     str(tmp_path / "p")])
    assert "pulled and verified gsm8k@v1" in first_pull.output
    again = runner.invoke(cli, ["--store", str(store.root), "pull", "gsm8k@v1", "--to",
                                str(tmp_path / "p")])
    assert again.exit_code == 0 and "was already in" in again.output
    assert "nothing copied" in again.output
