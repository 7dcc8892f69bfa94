"""CLI commands derived from step descriptors (``thinkforge.manifests.steps``), as TRL derives flags
from its config dataclasses.

For a registered step, ``step_command`` builds a click command: its input roles become
a positional argument (the first role) or ``--<role>`` options, every field of its pydantic
config becomes an option (name, type, choices, default and help text from the field; nested
models flatten to ``--<field>-<subfield>``, lists are comma-separated, mappings
``key=value,key=value``), plus ``--name``, ``--config FILE`` (flags override it),
``--dry-run``, ``--json`` and, for DuckDB steps, ``--memory-limit`` / ``--temp-dir``.
A mapping of free-form values (``trl: dict[str, Any]``) is a repeatable ``--trl KEY=VALUE``
option with YAML-typed values.

Steps whose output is a training run (``output_kind == "run"``: ``thinkforge train sft``
...) get the same options minus ``--name`` and the executor, plus ``--reuse`` (return a
finished run with the same data fingerprint and config instead of training; recipes always
reuse); their dry run prints the plan as JSON (data verified, resolved config, the run it
would reuse) and a run prints the run id (``--json``: the run record).
``StepGroup`` lists a group's steps from the registry when asked, so a step registered
after import time (a plugin, a test) is a command too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .context import get_store, is_quiet, validate_names_and_run_ids
from .options import config_options, read_config_file, set_path, strip_optional
from .output import log, print_json, print_published

if TYPE_CHECKING:
    from pydantic import BaseModel


class StepGroup(click.Group):
    """A command group whose step subcommands come from the step registry."""

    def __init__(self, *args, step_group: Any = ..., **kwargs):
        super().__init__(*args, **kwargs)
        # the descriptors' `group` this group lists: its own name, or None for the root
        self.step_group = self.name if step_group is ... else step_group

    def _steps(self) -> dict[str, Any]:
        from thinkforge.manifests.steps import load_steps

        return {d.cli_name: d for d in load_steps().values()
                if d.group == self.step_group and d.derive_cli}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._steps()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in self._steps():
            command = step_command(self._steps()[name])
        return command


def makes_runs(desc) -> bool:
    """A step whose output is a training run (a model folder + run record), not a version."""
    return desc.output_kind == "run"


def step_command(desc) -> click.Command:
    """The click command of a step descriptor."""
    model = desc.config_model()
    fields = config_options(model)
    # required config fields first (a train step's --model / --output), then the rest in order
    fields.sort(key=lambda f: not _field(model, f[1]).is_required())
    runs = makes_runs(desc)
    params: list[click.Parameter] = []
    positional = next((r for r in desc.roles if not r.flag), None)
    for role in desc.roles:
        kinds = "/".join(role.kinds)
        if role is positional:
            params.append(click.Argument([role.name], nargs=-1 if role.many else 1,
                                         required=not role.optional))
        else:
            params.append(click.Option([f"--{role.name}", role.name], multiple=role.many,
                                       required=not role.optional,
                                       help=f"{role.help or 'input version'} ({kinds})."))
    if not runs:
        params.append(click.Option(["--name"], required=True, help="Name of the output dataset."))
    params.append(click.Option(["--config", "config_file"], type=click.Path(
        exists=True, dir_okay=False, path_type=Path),
        help="YAML/JSON file with the step's config (flags override it)."))
    params += [option for option, _, _ in fields]
    for i, flag in enumerate(desc.flags):
        params.append(click.Option([flag.name, f"flag__{i}"], is_flag=True, help=flag.help))
    if desc.resources:
        params.append(click.Option(["--memory-limit"], help="DuckDB memory limit, e.g. 2GiB "
                                                            "(spills beyond it)."))
        params.append(click.Option(["--temp-dir"], type=click.Path(path_type=Path),
                                   help="Where DuckDB spills (default: a temporary directory "
                                        "in the store)."))
    if runs:
        params.append(click.Option(["--reuse"], is_flag=True,
                                   help="Return a finished run with the same data fingerprint and "
                                        "config (weights still on disk) instead of training."))
    else:
        from .executor_options import executor_params

        params += executor_params()
    params.append(click.Option(["--dry-run"], is_flag=True,
                               help="Verify the inputs and print the resolved config and what "
                                    "would be reused (JSON); train nothing." if runs else
                                    "Print what would run (and what it would reuse); write "
                                    "nothing."))
    params.append(click.Option(["--json", "as_json"], is_flag=True,
                               help="Print the run record as JSON." if runs else
                                    "Print the manifest (or the plan) as JSON."))

    @click.pass_context
    def callback(ctx: click.Context, **kw: Any) -> None:
        run_step_command(ctx, desc, model, fields, kw)

    roles = "; ".join(f"{r.name}: {'/'.join(r.kinds)}{' (list)' if r.many else ''}"
                      f"{' (optional)' if r.optional else ''}" for r in desc.roles)
    out = " --name OUT" if not runs else ""
    doc = (f"{desc.help}\n\nInputs: {roles}. Recipe step type: `{desc.type}`; every option "
           "is a field of its config (also in a recipe's `config:` or --config FILE).\n\n"
           "\b\nExample:\n" + "\n".join(f"  {e}" for e in desc.examples or
                                      (f"thinkforge {desc.group + ' ' if desc.group else ''}"
                                       f"{desc.cli_name} ...{out}",)))
    command = click.Command(desc.cli_name, params=params, callback=callback, help=doc,
                            short_help=desc.help.split(". ")[0].rstrip("."))
    validate_names_and_run_ids(command)  # --name checked while parsing, before any work
    return command


def _field(model: type[BaseModel], path: tuple[str, ...]):
    for key in path[:-1]:
        model = strip_optional(model.model_fields[key].annotation)[0]
    return model.model_fields[path[-1]]


def _inputs(store, desc, kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in desc.roles:
        value = kw.get(role.name)
        if value is None or value == ():
            continue
        out[role.name] = [_resolve(store, role, v) for v in value] if role.many \
            else _resolve(store, role, value)
    return out


def _resolve(store, role, ref: str):
    if role.files and Path(ref).suffix and Path(ref).exists():
        return Path(ref)
    return store.resolve(ref)


def run_step_command(ctx: click.Context, desc, model, fields, kw: dict[str, Any]) -> None:
    from thinkforge.manifests.steps import RunContext, build_config, execute, plan_step

    store = get_store(ctx)
    flags: dict[str, Any] = {}
    for i, flag in enumerate(desc.flags):
        if kw.get(f"flag__{i}"):
            flags.update(flag.sets)
    for option, path, parse in fields:
        value = kw.get(option.name)
        if value is not None and value != ():
            set_path(flags, path, parse(value))
    config = build_config(model, read_config_file(kw.get("config_file")), flags,
                          where=f"see `thinkforge {ctx.command_path.split(' ', 1)[-1]} --help`")
    inputs = _inputs(store, desc, kw)
    if makes_runs(desc):
        _run_training_step(ctx, desc, store, inputs, config, kw)
        return
    name, as_json = kw["name"], kw["as_json"]
    from .executor_options import pop_executor, slurm_dry_run

    executor = pop_executor(kw)
    if kw["dry_run"]:
        plan = plan_step(store, desc, inputs, name, config)
        script = slurm_dry_run(executor)
        if script is not None:
            plan["slurm_job_script"] = script
            if not as_json:
                click.echo(script)
        if as_json:
            print_json(plan)
        else:
            reuses = [ref for ref in plan["outputs"].values() if ref]
            click.echo(f"would write {', '.join(plan['outputs'])} ({plan['kind']}) from "
                       f"{', '.join(plan['inputs']) or 'nothing'} with {plan['step']}"
                       + (f"; reuses {', '.join(reuses)}" if reuses else ""))
        return
    settings = {k: v for k, v in (("memory_limit", kw.get("memory_limit")),
                                  ("temp_directory", kw.get("temp_dir"))) if v is not None}
    settings.update(executor)
    made = execute(RunContext(store, quiet=is_quiet(ctx), settings=settings),
                   desc, inputs, name, config)
    for manifest in made.values():
        print_published(manifest, as_json)
        if not is_quiet(ctx):
            from thinkforge.manifests.gates import verified_phrase

            verified = verified_phrase(manifest)
            log(f"{manifest.ref}: kept {manifest.rows} rows{', ' + verified if verified else ''}, "
                f"rejected {manifest.rejected.rows} {manifest.rejected.by_reason or ''}".rstrip())


def _run_training_step(ctx: click.Context, desc, store, inputs, config, kw) -> None:
    """A step that trains: the dry run is the plan (JSON); a run prints the run id or record.
    Without --reuse it trains even when a matching run exists (the step's ``run`` reads
    ``settings.reuse``); with it, ``execute`` returns what ``predict_reuse`` finds."""
    from thinkforge.manifests.steps import RunContext, execute, plan_step

    name = desc.cli_name
    if kw["dry_run"]:
        print_json(plan_step(store, desc, inputs, name, config))
        return
    run_ctx = RunContext(store, quiet=is_quiet(ctx), settings={"reuse": kw["reuse"]})
    if kw["reuse"]:
        made = execute(run_ctx, desc, inputs, name, config)
    else:
        desc.check_inputs(inputs)
        made = desc.run_fn()(run_ctx, inputs, name, config)
    for outcome in made.values():  # none on the ranks > 0 of a distributed run
        if kw["as_json"]:
            print_json(outcome.to_json())
        else:
            click.echo(outcome.ref)
