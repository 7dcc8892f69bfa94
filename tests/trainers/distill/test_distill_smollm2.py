"""SmolLM2-135M (the embedded teacher) distilled to 60 % of its parameters.

Slow: about 4 minutes alone on 2 cores (block scoring of 15 variants x 30 layers on 128
calibration tokens is 2.5 of them; minutes more on a busy machine). The settings are those
of the bench/distill.py run recorded in bench/README.md. It checks the issue's claims: the
child meets the budget, reloads with identical logits and is vLLM-loadable, KD lowers its
KL, and it beats uniform FFN pruning at no more parameters before and after the same KD
steps.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_child_meets_budget_and_beats_uniform_pruning(cli_run, store, data_dir, tmp_path):
    pytest.importorskip("modelopt")
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.trainers.base import resolve_model_path

    resolve_model_path("smollm2-135m")
    import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                ImportOptions(name="gsm8k", preset="gsm8k"))
    out = tmp_path / "child"
    result = cli_run("train", "distill", "--data", "gsm8k", "--model", "smollm2-135m",
                     "--budget", "params=0.6", "--calibration-tokens", "128", "--seq-len", "64",
                     "--batch-size", "2", "--kd-steps", "10", "--kd-lr", "2e-4", "--uniform-kd",
                     "--output", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill_report.json").read_text())
    parent, before, after = (report["models"][k] for k in
                             ("parent", "child_before_kd", "child_after_kd"))
    uniform = report["uniform_baseline"]
    assert before["params"] <= 0.6 * parent["params"]
    assert report["format"]["reload"]["identical"]
    assert report["format"]["vllm_loadable"]  # widths are multiples of 256 for SmolLM2
    assert report["layers"][0]["kv_heads"] > 0
    assert uniform["params"] <= before["params"]
    assert before["kl_to_parent"] < uniform["kl_to_parent_before_kd"]
    assert after["kl_to_parent"] < before["kl_to_parent"]
    assert after["kl_to_parent"] < uniform["kl_to_parent_after_kd"]
