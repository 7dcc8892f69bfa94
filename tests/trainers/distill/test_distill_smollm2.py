"""SmolLM2-135M (the embedded teacher) distilled to 60 % of its parameters.

Slow: about 30 minutes on 2 busy cores (block scoring dominates); the settings are those of
the bench/distill.py run recorded in bench/README.md.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_child_meets_budget_and_beats_uniform_pruning(cli_run, store, data_dir, tmp_path):
    pytest.importorskip("modelopt")
    from curation.importer import ImportOptions, import_file
    from trainers.base import resolve_model_path

    resolve_model_path("smollm2-135m")
    import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                ImportOptions(name="gsm8k", preset="gsm8k"))
    out = tmp_path / "child"
    result = cli_run("train", "distill", "--data", "gsm8k", "--model", "smollm2-135m",
                     "--budget", "params=0.6", "--calibration-tokens", "128", "--seq-len", "64",
                     "--batch-size", "2", "--kd-steps", "10", "--kd-lr", "2e-4",
                     "--output", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill_report.json").read_text())
    parent, before, after = (report["models"][k] for k in
                             ("parent", "child_before_kd", "child_after_kd"))
    assert before["params"] <= 0.6 * parent["params"]
    assert report["format"]["reload"]["identical"]
    assert report["format"]["vllm_loadable"]  # widths are multiples of 256 for SmolLM2
    assert report["uniform_baseline"]["params"] <= before["params"]
    assert before["kl_to_parent"] < report["uniform_baseline"]["kl_to_parent_before_kd"]
    assert after["kl_to_parent"] < before["kl_to_parent"]
