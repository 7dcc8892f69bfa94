"""Recipe steps train.sft / train.grpo: train once, reuse on an unchanged rerun, skip switch."""

from __future__ import annotations

import json

from thinkforge.manifests.training_runs import TrainingRuns


def _recipe(tmp_path, model) -> str:
    path = tmp_path / "train.yaml"
    path.write_text(f"""
name: train-demo
inputs:
  sft: {{version: toy-sft}}
  pool: {{version: toy-pool}}
steps:
  - name: sft-run
    type: train.sft
    input: sft
    config: {{model: {model}, output: {tmp_path}/m/sft, max_steps: 1, max_length: 64}}
  - name: grpo-run
    type: train.grpo
    input: pool
    config: {{model: {tmp_path}/m/sft, output: {tmp_path}/m/grpo, max_steps: 1,
              num_generations: 2, per_device_train_batch_size: 2, max_completion_length: 6}}
report:
  versions: [sft]
""")
    return str(path)


def test_recipe_trains_then_reuses(store, sft_version, pool_version, tiny_model, tmp_path, cli_run):
    recipe = _recipe(tmp_path, tiny_model)
    plan = cli_run("build", recipe, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    assert [s["status"] for s in json.loads(plan.stdout)["steps"]][-2:] == ["would run"] * 2

    first = cli_run("build", recipe, "--json")
    assert first.exit_code == 0, first.output
    steps = json.loads(first.stdout)["steps"]
    assert [s["status"] for s in steps][-2:] == ["built", "built"]
    runs = list(TrainingRuns(store))
    assert sorted(r.method for r in runs) == ["grpo", "sft"]
    grpo = next(r for r in runs if r.method == "grpo")
    assert grpo.base_model == f"{tmp_path}/m/sft"
    card = (store.root / "reports" / "sft" / "README.md").read_text()
    assert "## Training runs on this version" in card
    assert next(r.run_id for r in runs if r.method == "sft") in card

    again = cli_run("build", recipe, "--json")
    assert again.exit_code == 0, again.output
    assert [s["status"] for s in json.loads(again.stdout)["steps"]][-2:] == ["reused", "reused"]
    assert len(list(TrainingRuns(store))) == 2          # nothing trained again
    plan = cli_run("build", recipe, "--dry-run", "--json")
    assert [s["status"] for s in json.loads(plan.stdout)["steps"]][-2:] == ["would reuse"] * 2

    skipped = cli_run("build", recipe, "--skip-train", "--json")
    assert skipped.exit_code == 0, skipped.output
    assert not any(s["label"].startswith("steps[") for s in json.loads(skipped.stdout)["steps"])
