"""`thinkforge train METHOD` is derived from the train.* step descriptors: options from the
config fields, --dry-run predicts reuse, --reuse returns the run, no --reuse trains anew."""

from __future__ import annotations

import json

import click
from thinkforge.manifests.training_runs import TrainingRuns


def _command(method: str) -> click.Command:
    from thinkforge.cli import cli, load_commands

    load_commands()
    train = cli.get_command(click.Context(cli), "train")
    return train.get_command(click.Context(train), method)


def test_every_config_field_is_an_option_and_the_help_lists_the_methods(cli_run):
    from thinkforge.trainers.registry import methods
    from thinkforge.trainers.steps import step_config_model

    for method in methods():
        flags = {o for p in _command(method).params for o in getattr(p, "opts", [])}
        for field in step_config_model(method).model_fields:
            assert "--" + field.replace("_", "-") in flags, (method, field)
        assert {"--data", "--config", "--reuse", "--dry-run", "--json"} <= flags
        assert "--name" not in flags and "--executor" not in flags
    listing = cli_run("train", "--help")
    assert listing.exit_code == 0
    for method in (*methods(), "distill"):
        assert f"  {method} " in listing.output


def test_dry_run_predicts_reuse_and_reuse_is_opt_in(store, sft_version, tiny_model, tmp_path,
                                                    cli_run):
    args = ["train", "sft", "--data", sft_version.ref, "--model", str(tiny_model), "--output",
            str(tmp_path / "out"), "--max-steps", "1", "--max-length", "64",
            "--trl", "warmup-steps=0"]
    plan = json.loads(cli_run(*args, "--dry-run").stdout)
    assert plan["type"] == "train.sft" and plan["reuses"] is None
    assert plan["inputs"] == [sft_version.ref] and plan["config"]["trl"] == {"warmup_steps": 0}

    first = cli_run(*args)
    assert first.exit_code == 0, first.output
    run_id = first.stdout.strip()
    plan = json.loads(cli_run(*args, "--dry-run").stdout)
    assert plan["reuses"] == run_id                      # what --reuse (and a recipe) returns
    elsewhere = [a if a != str(tmp_path / "out") else str(tmp_path / "other") for a in args]
    assert json.loads(cli_run(*elsewhere, "--dry-run").stdout)["reuses"] is None  # not there
    reused = cli_run(*args, "--reuse", "--json")
    assert reused.exit_code == 0, reused.output
    assert json.loads(reused.stdout)["run_id"] == run_id
    assert len(list(TrainingRuns(store))) == 1
    again = cli_run(*args)                               # without --reuse: a new run
    assert again.exit_code == 0 and again.stdout.strip() != run_id
    assert len(list(TrainingRuns(store))) == 2


def test_force_store_reuses_no_run(store, sft_version, pool_version):
    """`build --force` gives the steps a store view that reuses nothing: train steps too."""
    from thinkforge.curation.recipe_build import _NoReuseStore
    from thinkforge.trainers.steps import _reuses

    assert _reuses(store) and not _reuses(_NoReuseStore(store.root))
