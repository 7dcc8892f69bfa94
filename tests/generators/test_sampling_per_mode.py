"""Issue 9 item 1: OFF stays greedy whatever else is given for it.

Sampling settings merge field by field over their mode's defaults (ON 0.6 / 0.95, OFF
greedy), from the CLI, from a --config file and from a recipe alike.
"""

from __future__ import annotations

import json

import pytest

GREEDY = {"temperature": 0.0, "top_p": 1.0}
PAPER_ON = {"temperature": 0.6, "top_p": 0.95}


@pytest.fixture(autouse=True)
def imported_prompts(gsm8k):
    return gsm8k


def _sampling(config: dict, mode: str) -> dict:
    s = config[f"sampling_{mode}"]
    return {"temperature": s["temperature"], "top_p": s["top_p"]}


def test_cli_max_new_tokens_alone_keeps_off_greedy(cli_run):
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s",
                     "--max-new-tokens", "64", "--dry-run")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert _sampling(config, "off") == GREEDY and _sampling(config, "on") == PAPER_ON
    assert config["sampling_off"]["max_new_tokens"] == config["sampling_on"]["max_new_tokens"] == 64


def test_cli_top_p_off_alone_keeps_temperature_zero(cli_run):
    config = json.loads(cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s",
                                "--top-p-off", "0.9", "--dry-run").stdout)["config"]
    assert config["sampling_off"]["temperature"] == 0.0 and config["sampling_off"]["top_p"] == 0.9


def test_config_file_partial_sampling_merges_over_mode_defaults(cli_run, tmp_path):
    config_file = tmp_path / "sft.yaml"
    config_file.write_text("sampling_off: {max_new_tokens: 100}\n"
                           "sampling_on: {max_new_tokens: 300}\n")
    config = json.loads(cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s",
                                "--config", str(config_file), "--dry-run").stdout)["config"]
    assert _sampling(config, "off") == GREEDY and _sampling(config, "on") == PAPER_ON
    assert config["sampling_off"]["max_new_tokens"] == 100
    # a flag for one field keeps the file's other fields and the mode's defaults
    config = json.loads(cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s",
                                "--config", str(config_file), "--temperature-on", "0.8",
                                "--dry-run").stdout)["config"]
    assert config["sampling_on"] == {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 300}
    assert _sampling(config, "off") == GREEDY


def test_recipe_partial_sampling_keeps_off_greedy(tmp_path, cli_run):
    from thinkforge.curation.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ninputs: {p: {version: gsm8k}}\nsteps:\n"
                      "  - {name: s, type: generate_sft, input: p,\n"
                      "     config: {sampling_off: {max_new_tokens: 50}, sampling_on: {top_p: 0.9}}}\n")
    _, steps = load_recipe(recipe)
    config = steps[0].config
    assert config.sampling_off.temperature == 0.0 and config.sampling_off.top_p == 1.0
    assert config.sampling_off.max_new_tokens == 50
    assert config.sampling_on.temperature == 0.6 and config.sampling_on.top_p == 0.9
    plan = cli_run("build", str(recipe), "--dry-run")
    assert plan.exit_code == 0, plan.output


def test_dry_run_counts_a_greedy_mode_once_per_prompt(cli_run):
    plan = json.loads(cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s", "--n", "4",
                              "--limit", "5", "--dry-run").stdout)
    assert plan["requests"] == 5 * (4 + 1)     # ON sampled 4 times, OFF greedy once
