"""``--executor local|dask`` and its options, shared by every step command (derived filters,
mix, split, and generate sft/rollouts).  They land in ``RunContext.resources`` under the keys
of ``thinkforge.manifests.executor.EXECUTOR_KEYS`` (the same keys a recipe's ``resources:`` takes)."""

from __future__ import annotations

from typing import Any

import click

_SPECS: tuple[tuple[str, list[str], dict[str, Any]], ...] = (
    ("executor", ["--executor"], dict(type=click.Choice(["local", "dask"]),
                                      help="Where the step runs: this process (default) or a "
                                           "Dask cluster (same version, byte for byte).")),
    ("scheduler", ["--scheduler"], dict(metavar="tcp://HOST:PORT",
                                        help="With --executor dask: an existing Dask scheduler.")),
    ("workers", ["--workers"], dict(type=click.IntRange(min=1),
                                    help="With --executor dask: start a local cluster of N "
                                         "worker processes.")),
    ("partitions", ["--partitions"], dict(type=click.IntRange(min=1),
                                          help="With --executor dask: partitions of a "
                                               "separable filter (default: one per worker) "
                                               "or of a generation (default: up to 4 per "
                                               "worker); 1 runs the step as one task.")),
    ("slurm", ["--slurm"], dict(is_flag=True, default=None,
                                help="With --executor dask: start workers as SLURM jobs "
                                     "(dask-jobqueue); --dry-run prints the job script.")),
    ("slurm_cores", ["--slurm-cores"], dict(type=int, help="Cores per SLURM job.")),
    ("slurm_memory", ["--slurm-memory"], dict(help="Memory per SLURM job, e.g. 16GiB.")),
    ("slurm_partition", ["--slurm-partition"], dict(help="SLURM partition.")),
    ("slurm_account", ["--slurm-account"], dict(help="SLURM account.")),
    ("slurm_walltime", ["--slurm-walltime"], dict(help="SLURM walltime, HH:MM:SS.")),
    ("slurm_jobs", ["--slurm-jobs"], dict(type=int, help="SLURM jobs (one worker each).")),
)
EXECUTOR_PARAMS = tuple(name for name, _, _ in _SPECS)


def executor_params() -> list[click.Parameter]:
    return [click.Option(decls + [name], **kwargs) for name, decls, kwargs in _SPECS]


def executor_options(fn):
    """Decorator form for hand-written commands."""
    for name, decls, kwargs in reversed(_SPECS):
        fn = click.option(*decls, name, **kwargs)(fn)
    return fn


def pop_executor(kw: dict[str, Any]) -> dict[str, Any]:
    """The executor resources given on the command line (removed from ``kw``)."""
    return {key: value for key, value in ((k, kw.pop(k, None)) for k in EXECUTOR_PARAMS)
            if value is not None}


def slurm_dry_run(resources: dict[str, Any]) -> str | None:
    """The SLURM job script for ``--slurm --dry-run`` (None without --slurm)."""
    if not resources.get("slurm"):
        return None
    from thinkforge.manifests.executor import slurm_job_script, split_resources

    spec, _ = split_resources(resources)
    return slurm_job_script(spec)
