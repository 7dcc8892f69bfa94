"""Issue 24 item 2: recipe, step and output names pass the `--name` check before anything
runs; nothing is written outside the store."""

from __future__ import annotations

import json

import pytest


def recipe(tmp_path, name="ok", step_name="toy-d", input_key="toy", step_type="dedup"):
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "input": f"question number {i}", "category": "math"}) + "\n"
        for i in range(4)))
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "name": name, "inputs": {input_key: {"path": "rows.jsonl"}},
        "steps": [{"name": step_name, "type": step_type, "input": input_key}]}))
    return path


def outside_is_untouched(tmp_path, store):
    """Nothing but the recipe's own files and the store under tmp_path; nothing in /tmp/x."""
    allowed = {"rows.jsonl", "r.yaml", store.root.name}
    return {p.name for p in tmp_path.iterdir()} <= allowed


@pytest.mark.parametrize("field,value", [
    ("name", "./../../../tmp/x/pwn"), ("name", "../../evil"), ("name", "Evil Name"),
    ("step_name", "../x"), ("step_name", "a/b"), ("step_name", "versions"),
    ("input_key", "../in"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_name_in_a_recipe_is_refused_before_anything_runs(cli_run, store, tmp_path, field,
                                                                value, dry_run):
    path = recipe(tmp_path, **{field: value})
    result = cli_run("build", str(path), *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 8, result.output
    assert "dataset name" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint
    assert not store.datasets_dir.exists() or not any(store.datasets_dir.iterdir())
    assert not (store.root / "runs").exists()
    assert outside_is_untouched(tmp_path, store)


def test_a_split_output_name_is_checked_too(cli_run, store, tmp_path):
    long_name = "s" * 125  # ok itself; "<name>-validation" is longer than 128 characters
    path = recipe(tmp_path, step_name=long_name, step_type="split")
    result = cli_run("build", str(path), "--dry-run")
    assert result.exit_code == 8 and "output" in result.stderr, result.output


def test_build_of_a_directory_is_one_line(cli_run, tmp_path):
    result = cli_run("build", str(tmp_path))
    assert result.exit_code == 8 and "is a directory" in result.stderr
    assert "Traceback" not in result.output


def test_a_good_recipe_still_builds(cli_run, store, tmp_path):
    result = cli_run("build", str(recipe(tmp_path)))
    assert result.exit_code == 0, result.output
    assert (store.root / "runs" / "builds" / "ok.json").is_file()
