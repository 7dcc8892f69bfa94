"""Where a step runs (docs/scale.md): the local process (default) or a Dask cluster.

The executor is a property of *running* a step, never of its config: it is read from the
same ``resources`` mapping as DuckDB's limits (CLI ``--executor dask --scheduler
tcp://HOST:PORT`` / ``--workers N`` / ``--slurm ...``; a recipe's ``resources:``), and
``thinkforge.manifests.steps.execute`` hands the step to it.  Nothing here changes results: a step
run on a Dask worker runs the very same code over the same (shared) store, so its version
is byte for byte the local one (tests/steps/test_dask_executor.py).

What runs where:

* the driver (the CLI process) opens the cluster client, submits ONE task per step and
  waits (separable filters: one task per partition, then a merge; ``fan_out`` steps,
  generation: the step runs on the driver inside ``fanning_out`` and submits its own
  partitions, generators/fanout.py); ``dask`` / ``distributed`` are imported only here
  and there, only when asked for;
* the task gets plain values (the store's path, the step type, input refs, the config
  model, DuckDB resources) and builds everything else itself on the worker: the store,
  DuckDB connections, HTTP clients, teacher backends.  No client is ever pickled;
* a worker lost mid-task: the scheduler reruns the task on another worker
  (``distributed.scheduler.allowed-failures``, plus ``retries``).  Publishing is atomic
  (staging + rename) and staging left by a dead owner is reclaimed, so the rerun publishes
  the exact version; generation resumes from its run directory (only unwritten rows are
  redone).

Needs a filesystem every worker sees at the store's path (NFS/Lustre on a cluster).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ForgeError, MissingDependencyError


class ExecutorSpec(BaseModel):
    """Where a step runs.  Not part of the step config: none of this changes results."""

    model_config = ConfigDict(extra="forbid")
    executor: Literal["local", "dask"] = Field("local", description="local (this process) or "
                                               "dask (a Dask distributed cluster)")
    scheduler: str | None = Field(None, description="an existing Dask scheduler, "
                                  "tcp://HOST:PORT")
    workers: int | None = Field(None, ge=1, description="start a LocalCluster of N worker "
                                "processes (when no --scheduler is given; default 1)")
    partitions: int | None = Field(None, ge=1, description="partitions of a separable filter "
                                   "(default: one per worker) or of a generation (default: up "
                                   "to 4 per worker); 1: the step runs as one task")
    retries: int = Field(2, ge=0, description="reruns of a task that raised (a lost worker "
                         "is rescheduled by Dask on top of these)")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to reach the scheduler")
    slurm: bool = Field(False, description="start workers as SLURM jobs (dask-jobqueue)")
    slurm_cores: int = Field(4, ge=1, description="cores per SLURM job")
    slurm_memory: str = Field("16GiB", description="memory per SLURM job")
    slurm_partition: str | None = Field(None, description="SLURM partition (queue)")
    slurm_account: str | None = Field(None, description="SLURM account")
    slurm_walltime: str = Field("01:00:00", description="SLURM walltime per job")
    slurm_jobs: int = Field(1, ge=1, description="SLURM jobs (one worker each)")

    @property
    def is_dask(self) -> bool:
        return self.executor == "dask"


def _dask():
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "--executor dask needs dask distributed",
            hint="pip install 'thinkforge[dask]'") from None
    return distributed


def slurm_cluster(spec: ExecutorSpec):
    """A dask-jobqueue SLURMCluster (not yet scaled)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise MissingDependencyError("--slurm needs dask-jobqueue",
                                     hint="pip install 'thinkforge[dask]'") from None
    return SLURMCluster(cores=spec.slurm_cores, processes=1, memory=spec.slurm_memory,
                        queue=spec.slurm_partition, account=spec.slurm_account,
                        walltime=spec.slurm_walltime, scheduler_options={"dashboard_address": None},
                        # workers may start processes (vLLM's engine): not daemonic
                        job_script_prologue=["export DASK_DISTRIBUTED__WORKER__DAEMON=False"])


def slurm_job_script(spec: ExecutorSpec) -> str:
    """The sbatch script one worker job would run (``--slurm --dry-run``)."""
    cluster = slurm_cluster(spec)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@contextlib.contextmanager
def dask_client(spec: ExecutorSpec):
    """A connected ``distributed.Client`` (closing any cluster it started)."""
    distributed = _dask()
    cluster = None
    if spec.scheduler:
        try:
            client = distributed.Client(spec.scheduler, timeout=spec.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ForgeError(f"cannot reach the Dask scheduler at {spec.scheduler}: {exc}",
                             hint="start one with `dask scheduler` (and `dask worker "
                                  f"{spec.scheduler}`), or use --workers N for a local "
                                  "cluster") from None
    else:
        import dask

        # non-daemonic workers: a task may start processes of its own (vLLM's engine does;
        # a daemonic process may not have children)
        with dask.config.set({"distributed.worker.daemon": False}):
            if spec.slurm:
                cluster = slurm_cluster(spec)
                cluster.scale(jobs=spec.slurm_jobs)
            else:
                import os

                # the host's cores shared out: each worker's DuckDB uses its threads
                n = spec.workers or 1
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=max(1, (os.cpu_count() or 1) // n),
                    processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_FAN_OUT: contextvars.ContextVar[ExecutorSpec | None] = contextvars.ContextVar(
    "thinkforge_fan_out", default=None)


@contextlib.contextmanager
def fanning_out(spec: ExecutorSpec):
    """Run a ``fan_out`` step (generation) here, on the driver, telling it to send its own
    work to the cluster of ``spec`` (``fan_out_spec``): generators/fanout.py."""
    token = _FAN_OUT.set(spec)
    try:
        yield spec
    finally:
        _FAN_OUT.reset(token)


def fan_out_spec() -> ExecutorSpec | None:
    """The cluster a fan-out step sends its partitions to, or None (run in this process)."""
    return _FAN_OUT.get()


def plain(value):
    """A step input as a picklable plain value: a version by its ref, paths as they are."""
    from .manifest import Manifest

    if isinstance(value, list):
        return [plain(v) for v in value]
    return ("ref", value.ref) if isinstance(value, Manifest) else ("value", value)


def unplain(store, value):
    if isinstance(value, list):
        return [unplain(store, v) for v in value]
    how, what = value
    return store.resolve(what) if how == "ref" else what


def run_on_dask(spec: ExecutorSpec, task, store, step_type: str, inputs: dict[str, Any],
                name: str, config: BaseModel, resources: dict[str, Any], run_id: str | None,
                step_modules: tuple[str, ...], partition_task=None) -> dict[str, Any]:
    """Run one step as a Dask task (``thinkforge.manifests.steps.run_step_task``) and wait for its
    versions; the task gets only plain values."""
    from .partitions import PHASED, split_keys

    with dask_client(spec) as client:
        workers = client.scheduler_info()["workers"]
        keys = split_keys(store, step_type, inputs, config)
        count = spec.partitions or len(workers)
        # a step with a global phase (curriculum, near dedup): its own phases of tasks
        phased = PHASED.get(step_type) if count > 1 and partition_task is not None else None
        if phased is not None:
            made = run_phased(spec, client, phased, store, step_type, inputs, name, config,
                              resources, count, workers)
            if made is not None:
                return {name: made}
        # a separable filter: one task per partition, then the merge
        if keys and count > 1 and partition_task is not None:
            return {name: run_partitioned(spec, client, partition_task, store, step_type, inputs,
                                          name, config, resources, keys, count, workers,
                                          step_modules)}
        # the store's class travels by reference (a recipe's --force store that never
        # reuses stays one on the worker); the store itself is rebuilt there from its path
        future = client.submit(task, (type(store), str(store.root)), step_type,
                               {role: plain(v) for role, v in inputs.items()}, name, config,
                               resources, run_id, step_modules, pure=False, retries=spec.retries)
        made = future.result()
    # the manifests as this process's store reads them (same files, same bytes)
    return {out: store.resolve(m.ref) for out, m in made.items()}


def run_partitioned(spec: ExecutorSpec, client, task, store, step_type: str, inputs: dict[str, Any],
                    name: str, config: BaseModel, resources: dict[str, Any],
                    keys: dict[str, str], count: int, workers: dict[str, dict],
                    step_modules: tuple[str, ...]):
    """``count`` partition tasks of a filter (``thinkforge.manifests.partitions``), merged here into
    one version: the local executor's bytes.  A partition whose worker dies is rerun by
    Dask from scratch (its half-written files are never read)."""
    import shutil
    import uuid
    from collections import Counter

    from .cleanup import claim
    from .partitions import merge, position_ranges

    out = store.root / ".staging" / f"partitions-{uuid.uuid4().hex}"
    out.mkdir(parents=True)
    claim(out)  # left by a killed driver: reclaimed by the next write / gc
    hosts = dict(Counter(addr.rsplit(":", 1)[0] for addr in workers))  # workers per host
    # row-separable over one version: each task reads its own row groups (else key hash)
    ranges = position_ranges(store, keys, count) or [{}] * count
    try:
        futures = [client.submit(task, (type(store), str(store.root)), step_type,
                                 {role: plain(v) for role, v in inputs.items()}, name, config,
                                 resources, keys, index, count, str(out), hosts, step_modules,
                                 ranges[index], pure=False, retries=spec.retries,
                                 key=f"{step_type}-{name}-part{index}-{uuid.uuid4().hex[:6]}")
                   for index in range(count)]
        parts = client.gather(futures)
        made = merge(store, parts, resources)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return store.resolve(made.ref)


def run_phased(spec: ExecutorSpec, client, phased, store, step_type: str, inputs: dict[str, Any],
               name: str, config: BaseModel, resources: dict[str, Any], count: int,
               workers: dict[str, dict]):
    """A step whose partitions need a global phase between them (``partitions.PHASED``):
    ``phased`` submits its own phases of tasks; the version it publishes (or None: run the
    step whole)."""
    import shutil
    import uuid
    from collections import Counter

    from .cleanup import claim
    from .partitions import Phases

    out = store.root / ".staging" / f"partitions-{uuid.uuid4().hex}"
    out.mkdir(parents=True)
    claim(out)
    try:
        made = phased(Phases(client=client, retries=spec.retries, store=store,
                             store_at=(type(store), str(store.root)), inputs=inputs, name=name,
                             config=config, resources=resources, count=count, out=out,
                             hosts=dict(Counter(a.rsplit(":", 1)[0] for a in workers)),
                             label=f"{step_type}-{name}"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return None if made is None else store.resolve(made.ref)
