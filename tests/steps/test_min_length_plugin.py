"""Adding a filter is one module: this one is declared here and nowhere else, and is then a
CLI command (derived options and help), a recipe step type, a dry run and `tf.steps.X`."""

from __future__ import annotations

import json

import pytest
from pydantic import Field
from thinkforge.filters.base import StepConfig, declare_filter, row_order, run_step, source
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.steps import unregister


class MinLengthConfig(StepConfig):
    min_chars: int = Field(20, ge=0, description="shortest output kept, in characters")


def run_min_length(store, data, name, config, resources=None):
    columns = schema_for(data.kind).names

    def body(ctx):
        ctx.bind(min_chars=config.min_chars)
        ctx.con.execute(f"CREATE TEMP VIEW judged AS SELECT *, CASE WHEN length(output) < "
                        f"(SELECT min_chars FROM knobs) THEN 'too_short' END AS reason "
                        f"FROM {source(store, data)}")
        ctx.keep_reject("judged", columns, order=row_order(data))

    return run_step(store, name=name, kind=data.kind, step_type="filter.min_length",
                    config=config, inputs=[data], body=body, resources=resources)


@pytest.fixture
def min_length():
    yield declare_filter(
        "min_length", run_min_length, config=MinLengthConfig, kinds=("sft",),
        help="Drop answers shorter than --min-chars characters.",
        examples=("thinkforge filter min_length gsm8k-sft --name sft-long --min-chars 40",))
    unregister("min_length")


def test_a_new_filter_is_a_cli_command_with_derived_options(cli_run, store, kinds, min_length):
    help_text = cli_run("filter", "--help").output
    assert "min_length" in help_text
    result = cli_run("filter", "min_length", "--help")
    assert result.exit_code == 0 and "Example:" in result.output
    assert "--min-chars" in result.output and "shortest output kept" in result.output
    assert "[default: 20]" in result.output

    dry = cli_run("filter", "min_length", "sft", "--name", "long", "--min-chars", "30",
                  "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["outputs"] == {"long": None}
    ran = cli_run("filter", "min_length", "sft", "--name", "long", "--min-chars", "30")
    assert ran.exit_code == 0 and ran.stdout.strip() == "long@v1", ran.output
    m = store.resolve("long")
    assert m.step.type == "filter.min_length" and m.step.config == {"min_chars": 30}
    assert m.rows + m.rejected.rows == kinds["sft"].rows
    assert m.rows > 0 and set(m.rejected.by_reason) == {"too_short"}
    dry = cli_run("filter", "min_length", "sft", "--name", "long", "--min-chars", "30",
                  "--dry-run")
    assert "reuses long@v1" in dry.output
    bad = cli_run("filter", "min_length", "sft", "--name", "x", "--min-chars", "-1")
    assert bad.exit_code == 8 and "min_chars" in bad.output


def test_a_new_filter_is_a_recipe_step_with_a_dry_run(store, kinds, min_length, tmp_path):
    from thinkforge.curation.recipe import load_recipe
    from thinkforge.curation.recipe_build import build_recipe, plan_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ninputs:\n  sft: {version: sft}\nsteps:\n"
                      "  - {name: sft-long, type: min_length, input: sft, "
                      "config: {min_chars: 30}}\n")
    parsed, steps = load_recipe(recipe)
    assert [o.status for o in plan_recipe(store, parsed, steps)][-1] == "would run"
    built = build_recipe(store, parsed, steps)
    assert built[-1].status == "built"
    parsed, steps = load_recipe(recipe)
    assert [o.status for o in plan_recipe(store, parsed, steps)][-1] == "would reuse"
    recipe.write_text(recipe.read_text().replace("min_chars: 30", "min_chars: 3O"))
    with pytest.raises(Exception, match="min_chars"):
        load_recipe(recipe)


def test_a_new_filter_is_a_python_api_step(store, kinds, min_length):
    import thinkforge as tf

    s = tf.Store(store.root)
    plan = tf.steps.min_length(s, "sft", name="long", min_chars=30, dry_run=True)
    assert plan["outputs"] == {"long": None}
    v = tf.steps.min_length(s, "sft", name="long", min_chars=30)
    assert v.ref == "long@v1" and len(v.to_pandas()) == v.rows


def test_config_file_with_flags_on_top(cli_run, store, kinds, min_length, tmp_path):
    config = tmp_path / "min.yaml"
    config.write_text("min_chars: 30\n")
    dry = cli_run("filter", "min_length", "sft", "--name", "x", "--config", str(config),
                  "--dry-run", "--json")
    assert json.loads(dry.output)["step"]["config"] == {"min_chars": 30}
    dry = cli_run("filter", "min_length", "sft", "--name", "x", "--config", str(config),
                  "--min-chars", "5", "--dry-run", "--json")
    assert json.loads(dry.output)["step"]["config"] == {"min_chars": 5}  # the flag wins
    config.write_text("min_char: 30\n")
    bad = cli_run("filter", "min_length", "sft", "--name", "x", "--config", str(config))
    assert bad.exit_code == 8 and "min_char: unknown key; did you mean 'min_chars'?" in bad.output
