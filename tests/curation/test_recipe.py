"""Recipes: validation with 'did you mean', a whole filter/mix/split pipeline built from
files (no teacher), reuse on rerun, continuation after a failure, --force, --dry-run, and
the repository's recipes validated by a dry run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from thinkforge.curation import recipe_steps
from thinkforge.curation.recipe import load_recipe
from thinkforge.curation.recipe_build import build_recipe, plan_recipe
from thinkforge.manifests.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()


def question(i: int) -> str:
    """A distinct question of 16+ words (decontamination matches 13-word n-grams)."""
    return f"Question {i}: " + " ".join(f"{w}{i}" for w in WORDS) + f" so what is {i} plus {i}?"


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.name


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    """Input files for a teacher-free recipe: 8 prompts, 4 rollouts each, paired SFT rows,
    and a benchmark that contains prompt 7 verbatim."""
    n = 8
    write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": f"p{i}", "input": question(i), "ground_truth": str(2 * i), "category": "math",
         "license": "MIT"} for i in range(n)])
    write_jsonl(tmp_path / "rollouts.jsonl", [
        {"prompt_id": f"p{i}", "sample": k, "generator": "toy", "reasoning": "on",
         "output": f"<think>t</think> {k}", "correct": k < i % 5, "format_ok": True}
        for i in range(n) for k in range(4)])
    write_jsonl(tmp_path / "sft.jsonl", [
        {"id": f"s{i}{m}", "prompt_id": f"p{i}", "pair_id": f"p{i}", "category": "math",
         "reasoning": m, "system_prompt": f"detailed thinking {m}",
         "input": [{"role": "user", "content": question(i)}],
         "output": (f"<think>I add {i} and {i} carefully.</think>\n\nThe answer is {2 * i}."
                    if m == "on" else f"The answer is {2 * i}, since {i} plus {i} is {2 * i}."),
         "generator": "toy", "license": "MIT", "output_tokens": 20, "finish_reason": "stop"}
        for i in range(n) for m in ("on", "off")])
    write_jsonl(tmp_path / "bench.jsonl", [{"question": question(7), "answer": "#### 14"}])
    return tmp_path


RECIPE = {
    "name": "toy",
    "inputs": {
        "toy-prompts": {"path": "prompts.jsonl", "source": "toy"},
        "toy-rollouts": {"path": "rollouts.jsonl", "kind": "rollouts"},
        "toy-sft-raw": {"path": "sft.jsonl", "kind": "sft"},
        "toy-bench": {"path": "bench.jsonl", "preset": "gsm8k"},
    },
    "steps": [
        {"name": "toy-pool-raw", "type": "passrate",
         "inputs": {"rollouts": "toy-rollouts", "prompts": "toy-prompts"}},
        {"name": "toy-pool-clean", "type": "decontam",
         "inputs": {"data": "toy-pool-raw", "against": ["toy-bench"]}},
        {"name": "toy-pool", "type": "curriculum", "input": "toy-pool-clean",
         "config": {"batch_size": 2}},
        {"name": "toy-sft-quality", "type": "quality", "input": "toy-sft-raw"},
        {"name": "toy-sft-dedup", "type": "dedup", "input": "toy-sft-quality",
         "config": {"on": "output"}},
        {"name": "toy-sft-clean", "type": "decontam",
         "inputs": {"data": "toy-sft-dedup", "against": "toy-bench"}},
        {"name": "toy-sft-mix", "type": "mix", "input": "toy-sft-clean",
         "config": {"weights": {"reasoning": {"on": 0.5, "off": 0.5}}, "rows": 10, "seed": 1}},
        {"name": "toy-sft", "type": "split", "input": "toy-sft-mix", "config": {"validation": 0.3}},
    ],
    "report": {"versions": ["toy-pool", "toy-sft-train"]},
    "queries": ["SELECT bucket, count(*) FROM \"toy-pool\" GROUP BY ALL"],
}


def write_recipe(folder: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def statuses(outcomes):
    return {o.label: o.status for o in outcomes}


def test_build_runs_the_pipeline_with_lineage_and_a_rerun_reuses_everything(store, recipe_dir):
    recipe, steps = load_recipe(write_recipe(recipe_dir, RECIPE))
    first = build_recipe(store, recipe, steps)
    assert set(statuses(first).values()) == {"built"}
    pool = store.resolve("toy-pool")
    # pass rates i%5/4 drop p3 and p4 (>= 0.75); p7 is in the benchmark
    assert pool.kind == "rl_pool" and pool.rows == 5
    assert store.resolve("toy-pool-raw").rejected.by_reason == {"too_easy": 2}
    assert [p.name for p in pool.parents] == ["toy-pool-clean"]
    assert store.resolve("toy-pool-clean").rejected.by_reason == {"contaminated": 1}
    train, valid = store.resolve("toy-sft-train"), store.resolve("toy-sft-validation")
    assert train.rows + valid.rows == 10 and valid.rows > 0
    assert train.step.config["part"] == "train"
    mixed = store.resolve("toy-sft-mix")
    assert mixed.stats["by_reasoning"] == {"off": 5, "on": 5}
    keys = store.version_keys()
    record = json.loads((store.runs_dir / "builds" / "toy.json").read_text())
    assert record["failed"] is False and len(record["steps"]) == 4 + 8

    again = build_recipe(store, recipe, steps)
    assert set(statuses(again).values()) == {"reused"}
    assert store.version_keys() == keys  # nothing new was published
    assert set(statuses(plan_recipe(store, recipe, steps)).values()) == {"would reuse"}


def test_a_changed_config_reruns_that_step_and_everything_after_it(store, recipe_dir):
    recipe, steps = load_recipe(write_recipe(recipe_dir, RECIPE))
    build_recipe(store, recipe, steps)
    changed = json.loads(json.dumps(RECIPE))
    changed["steps"][6]["config"]["seed"] = 2
    recipe, steps = load_recipe(write_recipe(recipe_dir, changed, "changed.yaml"))
    plan = statuses(plan_recipe(store, recipe, steps))
    assert plan["steps[5] (decontam -> toy-sft-clean)"] == "would reuse"
    assert plan["steps[6] (mix -> toy-sft-mix)"] == "would run"
    assert plan["steps[7] (split -> toy-sft)"] == "would run"


def test_a_failure_midway_keeps_finished_versions_and_the_rerun_continues(
        store, recipe_dir, monkeypatch):
    recipe, steps = load_recipe(write_recipe(recipe_dir, RECIPE))
    original = recipe_steps.step_types()["mix"]

    def boom(*args):
        raise RuntimeError("simulated crash in mix")

    for step in steps:  # the resolved steps hold their StepType
        if step.spec.type == "mix":
            step.type = dataclasses.replace(original, run=boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_recipe(store, recipe, steps)
    assert store.resolve("toy-sft-clean").rows > 0
    assert "toy-sft-mix" not in store.names()
    assert json.loads((store.runs_dir / "builds" / "toy.json").read_text())["failed"] is True

    recipe, steps = load_recipe(write_recipe(recipe_dir, RECIPE))
    result = statuses(build_recipe(store, recipe, steps))
    assert result["steps[5] (decontam -> toy-sft-clean)"] == "reused"
    assert result["steps[6] (mix -> toy-sft-mix)"] == "built"


def test_force_rebuilds_every_step(store, recipe_dir):
    small = {**RECIPE, "steps": RECIPE["steps"][:1], "report": None, "inputs": {
        k: v for k, v in RECIPE["inputs"].items() if k in ("toy-prompts", "toy-rollouts")}}
    recipe, steps = load_recipe(write_recipe(recipe_dir, small))
    build_recipe(store, recipe, steps)
    forced = build_recipe(store, recipe, steps, force=True)
    assert set(statuses(forced).values()) == {"built"}
    assert store.resolve("toy-pool-raw").version == "v2"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(stepz=r.pop("steps")), "unknown key 'stepz'; did you mean 'steps'?"),
    (lambda r: r["steps"][2]["config"].update(batchsize=2),
     "steps[2] (toy-pool).config.batchsize: unknown key 'batchsize'; did you mean 'batch_size'?"),
    (lambda r: r["steps"][2].update(type="curriculm"), "did you mean 'curriculum'?"),
    (lambda r: r["steps"][2].update(input="toy-pool-clen"), "did you mean 'toy-pool-clean'?"),
    (lambda r: r["steps"][0]["inputs"].update(rollout="x"), "did you mean 'rollouts'?"),
    (lambda r: r["inputs"]["toy-prompts"].update(preset_="gsm8k"), "did you mean 'preset'?"),
    (lambda r: r["steps"][6]["config"]["weights"].update(categories={}),
     "did you mean 'category'?"),
    (lambda r: r["steps"][2]["config"].pop("batch_size"), "batch_size: Field required"),
    (lambda r: r.update(resources={"memory_limt": "1GiB"}),
     "resources.memory_limt: unknown key 'memory_limt'; did you mean 'memory_limit'?"),
    (lambda r: r.update(resources={"workers": 2}), "need executor: dask"),
])
def test_invalid_recipes_say_where_and_suggest(recipe_dir, edit, message):
    broken = json.loads(json.dumps(RECIPE))
    edit(broken)
    with pytest.raises(ConfigError) as info:
        load_recipe(write_recipe(recipe_dir, broken))
    assert message in str(info.value)


def test_a_typo_in_resources_fails_the_dry_run_with_exit_8(recipe_dir, cli_run, store):
    broken = json.loads(json.dumps(RECIPE))
    broken["resources"] = {"memory_limt": "1GiB"}
    result = cli_run("build", str(write_recipe(recipe_dir, broken)), "--dry-run")
    assert result.exit_code == 8
    assert "did you mean 'memory_limit'?" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["demo.yaml", "llama-nemotron.yaml"])
def test_repository_recipes_validate_and_plan(store, name, cli_run):
    result = cli_run("build", str(REPO / "recipes" / name), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["dry_run"] and {s["status"] for s in plan["steps"]} == {"would run"}
    types = [s["label"].split(" (")[1].split(" ->")[0] for s in plan["steps"] if "steps[" in s["label"]]
    for needed in ("generate_sft", "correct", "generate_rollouts", "passrate", "curriculum",
                   "quality", "dedup", "decontam", "mix", "split"):
        assert needed in types
    assert not store.names()  # a dry run writes nothing


def test_cli_build_prints_steps_report_and_queries(cli_run, store, recipe_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = {**RECIPE, "report": {**RECIPE["report"], "dir": "reports"}}  # relative to cwd
    result = cli_run("build", str(write_recipe(recipe_dir, recipe)))
    assert result.exit_code == 0, result.output
    assert "report: reports/toy-pool/report.html" in result.output
    assert (tmp_path / "reports" / "toy-sft-train" / "README.md").is_file()
    assert "sql 'SELECT bucket, count(*) FROM \"toy-pool\" GROUP BY ALL'" in result.output
    dry = cli_run("build", str(recipe_dir / "recipe.yaml"), "--dry-run")
    assert dry.exit_code == 0 and "would reuse" in dry.output and "would run" not in dry.output


def sections(markdown: str) -> dict[str, set[str]]:
    """'### heading' -> the keys of its table rows."""
    import re

    out: dict[str, set[str]] = {}
    for part in re.split(r"^(?=### )", markdown, flags=re.M):
        if part.startswith("### "):
            heading = part.splitlines()[0]
            out[heading] = set(re.findall(r"^\| (`[^`]+`) \|", part, re.M))
    return out


def test_docs_document_every_recipe_key():
    """Every key of every recipe model and step config is in docs/recipes.md's reference, under its
    own heading (descriptions may lag a little; a missing key may not)."""
    from thinkforge.curation.recipe_reference import reference_markdown
    from thinkforge.manifests.steps import load_steps

    readme = (REPO / "docs" / "recipes.md").read_text(encoding="utf-8")
    block = readme.partition("<!-- recipe-reference:start -->")[2].partition(
        "<!-- recipe-reference:end -->")[0]
    documented = sections(block)
    # steps a test declared in this process (tests/steps/slow_step.py) are not thinkforge's
    foreign = {f"### step `{t}`" for t, d in load_steps().items()
               if not (d.run if isinstance(d.run, str) else d.run.__module__).startswith("thinkforge.")}
    missing = {heading: sorted(keys - documented.get(heading, set()))
               for heading, keys in sections(reference_markdown()).items()
               if (keys - documented.get(heading, set()) or heading not in documented)
               and not any(heading.startswith(f) for f in foreign)}
    assert not missing, (f"docs/recipes.md's recipe reference lacks {missing}: run "
                         "python -m thinkforge.curation.recipe_reference --write-docs")
