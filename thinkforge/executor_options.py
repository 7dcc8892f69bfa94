"""``--executor local|dask`` and its options, shared by every step command (derived filters,
mix, split, generate).  They are derived from the executor fields of
``thinkforge.manifests.settings.RunSettings`` exactly as a step config's fields become
options (name, type, choices, default, help), so the keys exist once: in the model."""

from __future__ import annotations

from typing import Any

import click

DEST = "run__"  # option destinations, apart from the step config's ("cfg__")


def _derived() -> list[tuple[click.Option, tuple[str, ...], Any]]:
    from thinkforge.manifests.executor import ExecutorSpec

    from .options import config_options

    return config_options(ExecutorSpec, dest_prefix=DEST)


def executor_params() -> list[click.Parameter]:
    return [option for option, _, _ in _derived()]


def executor_options(fn):
    """Decorator form for hand-written commands."""
    for option, _, _ in reversed(_derived()):
        fn = _attach(option)(fn)
    return fn


def _attach(option: click.Option):
    def decorate(fn):
        if not hasattr(fn, "__click_params__"):
            fn.__click_params__ = []
        fn.__click_params__.append(option)
        return fn
    return decorate


def pop_executor(kw: dict[str, Any]) -> dict[str, Any]:
    """The executor settings given on the command line (removed from ``kw``)."""
    picked = {}
    for option, path, parse in _derived():
        value = kw.pop(option.name, None)
        if value is not None and value != ():
            picked[path[-1]] = parse(value)
    return picked


def slurm_dry_run(settings: dict[str, Any]) -> str | None:
    """The SLURM job script for ``--slurm --dry-run`` (None without --slurm)."""
    if not settings.get("slurm"):
        return None
    from thinkforge.manifests.executor import slurm_job_script
    from thinkforge.manifests.settings import run_settings

    return slurm_job_script(run_settings(settings, "executor options").executor_spec())
