"""The step registry: every step declared once, and the dry run predicts what a run does."""

from __future__ import annotations

import pytest
from thinkforge.manifests.steps import RunContext, execute, load_steps, plan_step

BUILTIN = ("import", "generate_sft", "generate_rollouts", "passrate", "curriculum", "quality",
           "dedup", "decontam", "mix", "split")
CONFIG = {"curriculum": {"batch_size": 2}}  # the one required field of a builtin step


def test_every_builtin_step_is_declared_once_with_roles_kinds_and_a_config():
    steps = load_steps()
    assert set(BUILTIN) <= set(steps)
    for step_type in BUILTIN:
        d = steps[step_type]
        assert d.type == step_type and d.help
        assert all(r.kinds for r in d.roles)
        assert d.config_model().model_fields is not None


def inputs_for(descriptor, kinds: dict) -> dict:
    out = {}
    for role in descriptor.roles:
        if role.optional:
            continue
        kind = next(k for k in role.kinds if k in kinds)
        version = kinds["bench"] if role.name == "against" else kinds[kind]
        out[role.name] = [version] if role.many else version
    return out


def config_for(descriptor, data_dir):
    model = descriptor.config_model()
    if descriptor.type == "import":
        return model(path=str(data_dir / "math500_demo.jsonl"), preset="math500")
    return model(**CONFIG.get(descriptor.type, {}))


@pytest.mark.parametrize("step_type", BUILTIN)
def test_dry_run_predicts_exactly_what_the_run_does(store, kinds, data_dir, step_type):
    descriptor = load_steps()[step_type]
    inputs, config = inputs_for(descriptor, kinds), config_for(descriptor, data_dir)
    ctx = RunContext(store, quiet=True)

    before = plan_step(store, descriptor, inputs, "out", config)["outputs"]
    assert set(before) == set(descriptor.output_names("out"))
    assert all(ref is None for ref in before.values()), "nothing to reuse yet"
    existing = set(store.version_keys())
    made = execute(ctx, descriptor, inputs, "out", config)
    assert set(made) == set(before)
    assert all(f"{m.name}/{m.version}" not in existing for m in made.values())

    after = plan_step(store, descriptor, inputs, "out", config)["outputs"]
    assert after == {n: m.ref for n, m in made.items()}, "the dry run predicts reuse"
    existing = set(store.version_keys())
    # the step's own run function (not execute's shortcut) reuses exactly those versions
    again = descriptor.run_fn()(ctx, inputs, "out", config)
    assert {n: m.ref for n, m in again.items()} == after
    assert set(store.version_keys()) == existing


def test_recipe_step_types_and_cli_commands_come_from_the_registry(cli_run):
    from thinkforge.curation.recipe_steps import step_types

    steps = load_steps()
    assert set(step_types()) == set(steps) - {"import"}
    for d in steps.values():
        if d.derive_cli:
            path = [d.group, d.cli_name] if d.group else [d.cli_name]
            result = cli_run(*path, "--help")
            assert result.exit_code == 0 and "Example:" in result.output, path
            for field, info in d.config_model().model_fields.items():
                if info.annotation in (int, float, str, bool):
                    assert f"--{field.replace('_', '-')}" in result.output, (path, field)
