"""`thinkforge train distill` end to end on the tiny parent, from an imported data version."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def gsm8k(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                       ImportOptions(name="gsm8k", preset="gsm8k"))


def test_train_distill_meets_budget_reloads_and_records(cli_run, store, gsm8k, tiny_parent,
                                                         tmp_path):
    out = tmp_path / "child"
    args = ("train", "distill", "--data", "gsm8k", "--model", str(tiny_parent),
            "--budget", "params=0.97", "--budget", "kv=0.75", "--ffn-fusion", "--uniform-kd",
            "--calibration-tokens", "128", "--seq-len", "32", "--kd-steps", "6",
            "--kd-lr", "3e-3", "--output", str(out))
    result = cli_run(*args, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    report = json.loads((out / "distill_report.json").read_text())
    assert record["extra"]["distill_report"] == report
    parent, before, after = (report["models"][k] for k in
                             ("parent", "child_before_kd", "child_after_kd"))
    assert before["params"] <= 0.97 * parent["params"]
    assert before["kv_bytes_per_token"] <= 0.75 * parent["kv_bytes_per_token"]
    assert report["format"]["reload"]["identical"] is True
    assert after["kl_to_parent"] < before["kl_to_parent"]
    assert len(report["layers"]) == 4 and all(x["variant"] for x in report["layers"])
    assert report["layers"][0]["kv_heads"] > 0  # never offered: vLLM needs it (blocks.allowed)
    assert record["final_metrics"]["child_after_kd_kl"] == after["kl_to_parent"]
    assert record["data"][0]["fingerprint"] == gsm8k.fingerprint
    assert report["fusion"] is not None and "kl_cost" in report["fusion"]
    assert report["uniform_baseline"]["kl_to_parent_after_kd"] > 0

    shown = cli_run("show", record["run_id"])
    assert shown.exit_code == 0, shown.output
    assert "distillation" in shown.output and "child_after_kd" in shown.output
    assert "after the same KD steps" in shown.output

    # block scores are cached per (parent, data fingerprint, calibration) in the store
    assert len(list((store.root / "cache" / "distill").glob("scores-*.json"))) == 1


def test_dry_run_verifies_and_lists_the_library(cli_run, gsm8k, tiny_parent, tmp_path):
    result = cli_run("train", "distill", "--data", "gsm8k", "--model", str(tiny_parent),
                     "--output", str(tmp_path / "x"), "--dry-run")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["verified"] is True and plan["parent"]["layers"] == 4
    assert "kv1/ffn32" in plan["variants_per_layer"]
    assert not (tmp_path / "x").exists()


def test_bad_budget_is_a_config_error(cli_run, gsm8k, tiny_parent, tmp_path):
    result = cli_run("train", "distill", "--data", "gsm8k", "--model", str(tiny_parent),
                     "--output", str(tmp_path / "x"), "--budget", "flops=0.5")
    assert result.exit_code == 8
    assert "params=0.6" in result.output
