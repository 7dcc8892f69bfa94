import json

import pytest

from .conftest import prompt_ids, write_rollouts

SUBCOMMANDS = ("passrate", "curriculum", "quality", "dedup", "decontam")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help_with_an_example(cli_run, sub):
    result = cli_run("filter", sub, "--help")
    assert result.exit_code == 0 and "Example:" in result.output
    for option in ("--name", "--dry-run", "--memory-limit", "--temp-dir", "--json"):
        assert option in result.output


def test_cli_pipeline_passrate_curriculum_dedup_decontam(cli_run, store, gsm8k, data_dir):
    ids = prompt_ids(store, gsm8k)
    write_rollouts(store, gsm8k, {pid: i % 9 for i, pid in enumerate(ids)}, name="gsm8k-rollouts")
    dry = cli_run("filter", "passrate", "--rollouts", "gsm8k-rollouts", "--name", "pool", "--dry-run")
    assert dry.exit_code == 0 and "would write pool" in dry.output and not store.names().count("pool")
    r = cli_run("filter", "passrate", "--rollouts", "gsm8k-rollouts", "--name", "pool", "--json",
                "--memory-limit", "200MiB")
    assert r.exit_code == 0, r.output
    pool = json.loads(r.output)
    assert pool["kind"] == "rl_pool" and pool["rejected"]["by_reason"]["too_easy"] > 0
    r = cli_run("filter", "curriculum", "pool", "--name", "cur", "--batch-size", "16")
    assert r.exit_code == 0 and r.output.strip() == "cur@v1"
    r = cli_run("sql", "SELECT curriculum_batch, count(*) AS n FROM cur GROUP BY 1 ORDER BY 1",
                "--format", "json")
    assert [json.loads(line)["n"] for line in r.output.splitlines()][0] == 16
    # filters after the curriculum keep the rows in curriculum order
    assert cli_run("filter", "dedup", "cur", "--name", "cur-dd").exit_code == 0
    assert cli_run("filter", "decontam", "cur-dd", "--against", str(data_dir / "gsm8k_test.jsonl"),
                   "--name", "cur-clean").exit_code == 0
    for name in ("cur-dd", "cur-clean"):

        m = store.resolve(name)
        from thinkforge.manifests.selection import read_table

        rows = list(zip(*read_table(store, m, ["curriculum_batch", "curriculum_position"])
                        .to_pydict().values(), strict=True))
        assert len(rows) == m.rows > 16 and rows == sorted(rows), name
    assert cli_run("filter", "dedup", "gsm8k", "--name", "dd").exit_code == 0
    cli_run("import", str(data_dir / "gsm8k_test.jsonl"), "--name", "gsm8k-test", "--preset", "gsm8k")
    args = ("filter", "decontam", "gsm8k", "--against", "gsm8k-test", "--against",
            str(data_dir / "math500_demo.jsonl"), "--name", "clean")
    r = cli_run(*args)
    assert r.exit_code == 0 and r.output.strip() == "clean@v1", r.output
    again = cli_run(*args, "--dry-run", "--json")
    assert json.loads(again.output)["reuses"] == "clean@v1"  # same step, same inputs
    assert cli_run(*args).output.strip() == "clean@v1"


def test_cli_errors_have_exit_codes(cli_run, store, gsm8k):
    r = cli_run("filter", "curriculum", "gsm8k", "--name", "x", "--batch-size", "4")
    assert r.exit_code == 6 and "rl_pool" in r.output  # wrong kind: bad input data
    r = cli_run("filter", "passrate", "--rollouts", "nope", "--name", "x")
    assert r.exit_code == 3
    r = cli_run("filter", "passrate", "--rollouts", "gsm8k", "--name", "x")
    assert r.exit_code == 6 and "'prompts' version" in r.output and "rollouts" in r.output
    r = cli_run("filter", "dedup", "gsm8k", "--name", "x", "--threshold", "1.5")
    assert r.exit_code == 8 and "threshold" in r.output


def test_cli_quality_on_sft(cli_run, store):
    from .test_quality import make_sft

    make_sft(store)
    r = cli_run("filter", "quality", "sft", "--name", "sft-fmt", "--rules", "think_format",
                "--json")
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.output)
    assert manifest["step"]["config"]["rules"] == ["think_format"]
    assert set(manifest["rejected"]["by_reason"]) == {
        "think_missing", "think_malformed", "think_empty", "answer_missing", "think_in_off"}
    r = cli_run("filter", "quality", "sft", "--name", "x", "--rules", "spelling")
    assert r.exit_code == 8 and "rules" in r.output
