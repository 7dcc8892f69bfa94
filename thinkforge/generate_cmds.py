"""`thinkforge generate sft|rollouts`: map flags onto the generators' pydantic configs.

Everything of substance lives in ``generators``; this module only builds the config (a
YAML/JSON ``--config`` file first, explicit flags on top), calls the step and prints the
published reference.  Heavy imports happen inside the commands.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from thinkforge.generators.config import RolloutConfig, SftConfig

from .context import get_store
from .executor_options import executor_options
from .options import config_options
from .output import log, print_json, print_published
from .step_cmds import StepGroup


@click.group("generate", cls=StepGroup)
def generate_group() -> None:
    """Generate data with a teacher model: paired ON/OFF SFT answers, RL rollouts.

    \b
    Example:
      thinkforge generate sft --prompts gsm8k --name gsm8k-sft --limit 16
      thinkforge generate rollouts --prompts gsm8k --name gsm8k-rollouts --k 4 --limit 16
    """


def backend_options(command):
    """Flags shared by every generate command (teacher, backend, run control)."""
    options = [
        click.option("--prompts", "prompts_ref", required=True, help="Prompts version (name, name@v1...)."),
        click.option("--name", required=True, help="Name of the version to publish."),
        click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path),
                     help="YAML/JSON file with the step's config (flags override it)."),
        click.option("--teachers", "teachers_file", type=click.Path(exists=True, path_type=Path),
                     help="YAML/JSON list of {mode, category, model} rules: a teacher per mode "
                          "and category."),
        click.option("--max-new-tokens", type=int, help="Completion token budget [default: 512]."),
        click.option("--run-id", help="Checkpoint directory under <store>/runs/ [default: from the config]."),
        click.option("--dry-run", is_flag=True, help="Print the resolved config and request count; generate nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON."),
    ]
    # the teacher's settings: one option per BackendConfig field (its name, type, choices,
    # default and help), so a new backend setting needs no line here
    options += [_as_decorator(option) for option, _, _ in teacher_options()]
    for option in reversed(options):
        command = option(command)
    return functools.wraps(command)(command)


# fields set through the teacher options (unprefixed) or through CLI conveniences
# (--teachers FILE, --model-on/--model-off, --temperature-on ..., --max-new-tokens)
CONVENIENCE_FIELDS = {"teacher", "teachers", "sampling", "sampling_on", "sampling_off"}


def step_options(config_cls):
    """(click option, field path, parse) for the step's own config fields (limit, seed,
    modes, n / k, rewards, max_error_rate, verifier.* ...), derived from the model."""
    return [o for o in config_options(config_cls) if o[1][0] not in CONVENIENCE_FIELDS]


def derived_options(config_cls):
    """Decorator: add the step's derived field options to a generate command."""
    def attach(command):
        for option, _, _ in reversed(step_options(config_cls)):
            command = _as_decorator(option)(command)
        return command
    return attach


def teacher_options():
    """(click option, field path, parse) for every field of the teacher's BackendConfig;
    ``--base-url`` is repeatable (the first names the teacher, more are its replicas:
    ``endpoints``), ``--endpoints FILE`` reads more from a file."""
    from thinkforge.generators.config import BackendConfig

    out = []
    for option, path, parse in config_options(BackendConfig):
        if path[-1] == "endpoints":  # a list: given by repeating --base-url
            continue
        if path[-1] == "base_url":
            option = click.Option(option.opts + [option.name], multiple=True, metavar="URL",
                                  help=option.help + " [repeatable]")
        out.append((option, path, parse))
    return out


def _as_decorator(option: click.Option):
    def attach(command):
        command.__click_params__ = [*getattr(command, "__click_params__", []), option]
        return command
    return attach


def _read_file(path: Path | None) -> Any:
    if path is None:
        return None
    import yaml

    from thinkforge.manifests.errors import ConfigError

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc


def build_config(config_cls, flags: dict[str, Any], step_fields: dict[str, Any],
                 mode_teachers: list[dict[str, str]] = ()):
    """File config, then explicit flags; pydantic errors become ConfigError with the field.

    ``mode_teachers`` (from --model-on/--model-off) are appended after the file's rules; a
    rule with a category still wins over them for its category.
    """
    from pydantic import ValidationError

    from thinkforge.manifests.errors import ConfigError

    data = _read_file(flags["config_file"]) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{flags['config_file']}: the config must be a mapping")
    teacher = dict(data.get("teacher") or {})
    for option, path, parse in teacher_options():
        value = flags.get(option.name)
        if value is None or value == ():
            continue
        if path[-1] == "base_url":  # repeated: the first names the teacher, the rest replicas
            teacher["base_url"], *more = value
            if more:
                teacher["endpoints"] = more
        else:
            teacher[path[-1]] = parse(value)
    data["teacher"] = teacher
    rules = _read_file(flags["teachers_file"])
    if rules is not None:
        data["teachers"] = rules
    if mode_teachers:
        data["teachers"] = [*(data.get("teachers") or []), *mode_teachers]
    for option, path, parse in step_options(config_cls):
        if flags.get(option.name) is not None:
            target = data
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = parse(flags[option.name])
    for key, value in step_fields.items():
        if value is not None:
            if isinstance(value, dict):
                data[key] = {**(data.get(key) or {}), **value}
            else:
                data[key] = value
    try:
        return config_cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid generation config: {problems}",
                          hint="see `thinkforge generate <command> --help` and docs/generation.md") from exc


def _sampling(temperature, top_p, max_new_tokens) -> dict[str, Any] | None:
    given = {k: v for k, v in [("temperature", temperature), ("top_p", top_p),
                               ("max_new_tokens", max_new_tokens)] if v is not None}
    return given or None


def _run(ctx, flags, config, step_fn, request_count: int) -> None:
    from .executor_options import pop_executor, slurm_dry_run

    store = get_store(ctx)
    prompts = store.resolve(flags["prompts_ref"])
    executor = pop_executor(flags)
    step_type = f"generate_{ctx.info_name}"  # generate_sft / _rollouts / _preferences
    if flags["dry_run"] and slurm_dry_run(executor) is not None:
        click.echo(slurm_dry_run(executor))
    if flags["dry_run"]:
        # the step descriptor's plan: what a run would send and what it would reuse
        from thinkforge.manifests.steps import load_steps, plan_step

        plan = plan_step(store, load_steps()[step_type], {"prompts": prompts}, flags["name"],
                         config)
        rows = min(prompts.rows, config.limit or prompts.rows)
        print_json({**plan, "requests": rows * request_count,
                    "max_error_rate": config.max_error_rate})
        return
    if executor.get("executor") == "dask":  # the same step, as a task on a Dask worker
        from thinkforge.manifests.steps import RunContext, execute, load_steps

        made = execute(RunContext(store, quiet=ctx.obj["quiet"], settings=executor,
                                  run_id=flags["run_id"]),
                       load_steps()[step_type], {"prompts": prompts}, flags["name"], config)
        manifest = next(iter(made.values()))
    else:
        from thinkforge.generators.batch import BatchFilesWritten

        try:
            manifest = step_fn(store, prompts, flags["name"], config, run_id=flags["run_id"],
                               progress=not ctx.obj["quiet"])
        except BatchFilesWritten as written:  # --batch-file-only: the files are the output
            _print_batch_files(written)
            return
    print_published(manifest, flags["as_json"])
    if not ctx.obj["quiet"]:
        p = manifest.provenance
        reasons = f" {dict(manifest.rejected.by_reason)}" if manifest.rejected.rows else ""
        from thinkforge.manifests.gates import verified_phrase

        verified = verified_phrase(manifest)
        log(f"{manifest.ref}: {manifest.rows} rows{', ' + verified if verified else ''}, "
            f"{manifest.rejected.rows} rejected{reasons}; "
            f"{p.get('completion_tokens')} completion tokens, {p.get('tokens_per_s')} tok/s, "
            f"errors: {p.get('errors_by_kind') or 'none'}")
        if p.get("judge"):  # docs/verifier.md#judge
            j = p["judge"]
            log(f"judge {j['model']}: {j['rows_judged']} rows judged ({j['asked']} asked, "
                f"{j['cache_hits']} cached): {j['yes']} yes, {j['no']} no, {j['undecided']} "
                f"undecided, {j['errors']} errors; {j['settled']} undecided rows settled")


def _print_batch_files(written) -> None:
    for model, (path, requests) in written.files.items():
        click.echo(str(path))
        log(f"{requests} requests for {model} in {path}; run them, e.g. with vLLM:\n"
            f"  python -m vllm.entrypoints.openai.run_batch -i {path} -o results.jsonl "
            f"--model {model}\nthen import the results: the same command with "
            "--batch-results results.jsonl instead of --batch-file-only")


@generate_group.command("sft")
@executor_options
@backend_options
@derived_options(SftConfig)
@click.option("--model-on", help="Teacher for reasoning ON (overrides --model).")
@click.option("--model-off", help="Teacher for reasoning OFF (overrides --model).")
@click.option("--temperature-on", type=float, help="ON sampling temperature [default: 0.6].")
@click.option("--top-p-on", type=float, help="ON top-p [default: 0.95].")
@click.option("--temperature-off", type=float, help="OFF temperature, 0 = greedy [default: 0].")
@click.option("--top-p-off", type=float, help="OFF top-p [default: 1.0].")
@click.pass_context
def sft_cmd(ctx, model_on, model_off, temperature_on, top_p_on, temperature_off, top_p_off,
            **flags):
    """Paired reasoning ON/OFF SFT answers for a prompts version -> an sft version.

    System prompt `detailed thinking on|off` first; ON output is <think>...</think> then
    the answer, OFF has no think tags; the pair shares pair_id; answers are verified where
    the prompt has a ground truth. Resumes an interrupted run; reuses an identical version.

    \b
    Example:
      thinkforge generate sft --prompts gsm8k --name gsm8k-sft --limit 16 --max-new-tokens 192
      thinkforge generate sft --prompts math --name math-sft --backend openai \\
          --base-url http://127.0.0.1:8000/v1 --model my-teacher --concurrency 32
    """
    from thinkforge.generators.sft import generate_sft

    mnt = flags["max_new_tokens"]
    step_fields = {"sampling_on": _sampling(temperature_on, top_p_on, mnt),
                   "sampling_off": _sampling(temperature_off, top_p_off, mnt)}
    mode_teachers = [{"mode": mode, "model": model}
                     for mode, model in (("on", model_on), ("off", model_off)) if model]
    config = build_config(SftConfig, flags, step_fields, mode_teachers)
    # a greedy mode is asked once per prompt (its answer is copied to the n samples)
    asked = sum(config.n if config.sampling_for(m).temperature > 0 else 1 for m in config.modes)
    _run(ctx, flags, config, generate_sft, asked)


@generate_group.command("rollouts")
@executor_options
@backend_options
@derived_options(RolloutConfig)
@click.option("--temperature", type=float, help="Sampling temperature [default: 0.6].")
@click.option("--top-p", type=float, help="Top-p [default: 0.95].")
@click.pass_context
def rollouts_cmd(ctx, temperature, top_p, **flags):
    """K sampled completions per prompt, with correct, format_ok and reward -> a rollouts version.

    correct comes from the prompt's verifier (math-verify, sandboxed code tests); an
    undecidable answer (e.g. unparseable gold) has correct and reward NULL.

    \b
    Example:
      thinkforge generate rollouts --prompts gsm8k --name gsm8k-rollouts --k 4 --limit 16
      thinkforge sql "SELECT prompt_id, avg(correct::INT) AS pass_rate FROM \\"gsm8k-rollouts\\" GROUP BY ALL"
    """
    from thinkforge.generators.rollouts import generate_rollouts

    step_fields = {"sampling": _sampling(temperature, top_p, flags["max_new_tokens"])}
    config = build_config(RolloutConfig, flags, step_fields)
    _run(ctx, flags, config, generate_rollouts, len(config.modes) * config.k)

COMMANDS = (generate_group,)
