"""`thinkforge generate sft|rollouts` through click's CliRunner."""

from __future__ import annotations

import json

import pytest

from thinkforge.cli import cli, load_commands


@pytest.fixture(autouse=True)
def imported_prompts(gsm8k):
    return gsm8k


@pytest.mark.parametrize("args", [["generate"], ["generate", "sft"], ["generate", "rollouts"]])
def test_every_generate_command_has_help_with_an_example(args):
    from click.testing import CliRunner

    load_commands()
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_sft_from_the_cli_with_the_tiny_model(cli_run, store, tiny_model):
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "gsm8k-sft", "--model",
                     str(tiny_model), "--limit", "2", "--max-new-tokens", "6", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "gsm8k-sft@v1"
    manifest = store.resolve("gsm8k-sft")
    # the tiny model's prompted ON replies have no Final answer line: rejected with that reason
    assert manifest.rows + manifest.rejected.rows == 4 and manifest.stats["by_reasoning"]["off"] == 2
    assert manifest.rows - 2 + manifest.rejected.by_reason.get("format:no_final_answer", 0) == 2
    assert manifest.step.config["sampling_on"]["max_new_tokens"] == 6
    # the batch size is run control: recorded, not in the step (the run id and reuse ignore it)
    assert "batch_size" not in manifest.step.config["teacher"]
    assert manifest.provenance["run_control"]["batch_size"] == 4
    again = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "gsm8k-sft", "--model",
                    str(tiny_model), "--limit", "2", "--max-new-tokens", "6", "--batch-size", "2")
    assert again.stdout.strip() == "gsm8k-sft@v1"  # same outputs decided, same prompts: reused


def test_rollouts_dry_run_resolves_the_config_and_writes_nothing(cli_run, store, tmp_path):
    config_file = tmp_path / "rollouts.yaml"
    config_file.write_text("k: 3\nsampling: {temperature: 0.9}\nteacher: {batch_size: 8}\n")
    result = cli_run("generate", "rollouts", "--prompts", "gsm8k", "--name", "r", "--config",
                     str(config_file), "--k", "5", "--limit", "4", "--dry-run")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["requests"] == 20 and plan["config"]["k"] == 5           # the flag wins
    assert plan["config"]["sampling"]["temperature"] == 0.9              # the file fills in
    assert plan["run_control"]["batch_size"] == 8                        # recorded, not keyed
    assert not (store.datasets_dir / "r").exists() and not store.runs_dir.exists()


def test_sft_teacher_flags_and_teachers_file(cli_run, tmp_path):
    rules = tmp_path / "teachers.yaml"
    rules.write_text("- {category: math, mode: off, model: qwen-math}\n")
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s", "--model-on", "r1",
                     "--teachers", str(rules), "--temperature-off", "0.2", "--dry-run")
    config = json.loads(result.stdout)["config"]
    assert {"mode": "on", "category": None, "model": "r1"} in config["teachers"]
    assert {"mode": "off", "category": "math", "model": "qwen-math"} in config["teachers"]
    assert config["sampling_off"]["temperature"] == 0.2


@pytest.mark.parametrize("args,needle", [
    (["--modes", "on,sideways"], "modes"),
    (["--n", "0"], "n:"),
    (["--temperature-on", "-1"], "temperature"),
])
def test_invalid_settings_exit_with_the_config_error_code(cli_run, args, needle):
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s", *args, "--dry-run")
    assert result.exit_code == 8 and needle in result.output


def test_unknown_prompts_version_exits_not_found(cli_run):
    result = cli_run("generate", "rollouts", "--prompts", "nope", "--name", "r")
    assert result.exit_code == 3 and "no dataset named 'nope'" in result.output


def test_a_model_that_is_not_local_is_refused_without_download(cli_run):
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s", "--model",
                     "HuggingFaceTB/SmolLM2-360M", "--limit", "1")
    assert result.exit_code == 8 and "nothing is downloaded" in result.output


def test_progress_goes_to_stderr_and_quiet_silences_it(store, scripted):
    from click.testing import CliRunner

    load_commands()
    scripted(lambda r: "x\n\nFinal answer: 1")
    args = ["generate", "rollouts", "--prompts", "gsm8k", "--k", "2", "--limit", "2"]
    loud = CliRunner().invoke(cli, ["--store", str(store.root), *args, "--name", "a"])
    quiet = CliRunner().invoke(cli, ["--store", str(store.root), "--quiet", *args, "--name", "b"])
    assert loud.exit_code == 0 and quiet.exit_code == 0
    assert loud.stdout.strip() == "a@v1" and quiet.stdout.strip() == "b@v1"
    assert "tok/s" in loud.stderr and "4/4" in loud.stderr
    assert quiet.stderr == ""
