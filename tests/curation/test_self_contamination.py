"""Issue 9 item 6: a recipe that decontaminates data against its own source says so."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "curation" / "data"


def test_the_paper_recipe_does_not_decontaminate_against_its_own_prompts(cli_run):
    result = cli_run("build", str(REPO / "recipes" / "llama-nemotron.yaml"), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert all(not s.get("warnings") for s in json.loads(result.stdout)["steps"])


def test_build_warns_when_a_benchmark_is_the_data_s_own_source_file(cli_run, tmp_path):
    recipe = tmp_path / "self.yaml"
    recipe.write_text(f"""
name: self
inputs:
  prompts: {{path: {DATA / 'math500_demo.jsonl'}, preset: math500}}
  bench: {{path: {DATA / 'math500_demo.jsonl'}, preset: math500}}
  other: {{path: {DATA / 'gsm8k_test.jsonl'}, preset: gsm8k}}
steps:
  - {{name: deduped, type: dedup, input: prompts}}
  - {{name: clean, type: decontam, inputs: {{data: deduped, against: [other, bench]}}}}
""")
    plan = cli_run("build", str(recipe), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "warning: steps[1] (decontam -> clean): benchmark 'bench' comes from the same " \
           "source as the data's input 'prompts'" in plan.stderr
    assert "'other'" not in plan.stderr
    built = cli_run("build", str(recipe))
    assert built.exit_code == 0, built.output
    assert built.stderr.count("benchmark 'bench' comes from the same source") == 1


def test_build_warns_when_a_benchmark_version_is_in_the_data_s_lineage(cli_run, store, tmp_path):
    assert cli_run("import", str(DATA / "gsm8k_train_demo.jsonl"), "--name", "g",
                   "--preset", "gsm8k").exit_code == 0
    recipe = tmp_path / "lineage.yaml"
    recipe.write_text("""
name: lineage
inputs:
  g: {version: g}
  bench: {version: g@v1}      # the same version under another name
steps:
  - {name: g-dedup, type: dedup, input: g}
  - {name: g-clean, type: decontam, inputs: {data: g-dedup, against: [bench]}}
""")
    built = cli_run("build", str(recipe))
    assert built.exit_code == 0, built.output
    assert "warning: steps[1] (decontam -> g-clean): benchmark g@v1 shares a version with the " \
           "data's lineage (g@v1" in built.stderr
