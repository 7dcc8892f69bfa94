"""Generation fanned out over Dask workers (docs/scale.md, issue 12 item 2).

With ``--executor dask`` a generation step runs on the driver (the CLI process): it plans
the requests, finds what its run directory already holds, and sends the rest as
**partitions** to the cluster, one Dask task each.  A partition task, on its worker:

* gets plain values only (the plans, the teacher config, the run directory's path) and
  builds its backend itself; the backend is kept for the life of the worker process
  (``_backend``: one transformers model / vLLM engine per worker, loaded once, not per
  task; for OpenAI-compatible teachers the worker's share of the endpoints, ``spread``),
  and closes it when the worker closes (``worker_teardown.CloseBackends``: a vLLM
  engine's processes stop with their worker);
* appends its answers to the run's checkpoint directory (the same ``<store>/runs/<id>/``
  a local run writes), batch by batch, in chunks tagged with the partition;
* when its worker dies, Dask reruns it on another worker, where it first reads its own
  tagged chunks and asks only for the keys that are not there yet: a lost worker costs
  the rows it had not written, nothing more.

The driver then reads the new chunks back (texts never travel through the scheduler),
builds the rows exactly as a local run does and publishes one version: for a
deterministic teacher, the local executor's bytes and fingerprint.  Request keys, the
step record and the run id never depend on the workers or endpoints used.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

from .backends import ChatRequest, make_backend
from .forcing import force_answers
from .runs import RunCheckpoint, checkpoint_row, size_of, stable_hash

# per worker process: (config, model) hash -> backend; one slot (a GPU holds one model)
_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()
BUILT = 0  # backends this process built (tests: one per worker, not one per task)


def partition_count(pending: int, workers: int, batch: int, asked: int | None) -> int:
    """``asked`` (``--partitions``), else enough partitions that every worker gets a few
    batches to do and faster workers take more (up to 4 per worker); never empty ones."""
    if pending <= 0:
        return 0
    count = asked or min(4 * workers, max(workers, math.ceil(pending / (4 * batch))))
    return max(1, min(count, pending))


def batch_hint(teacher) -> int:
    """Requests per checkpoint chunk of one worker, without building a backend."""
    if teacher.backend == "openai":
        return max(teacher.batch_size, teacher.concurrency * 4)
    return teacher.batch_size


def run_fanned_out(spec, pending: list, config, checkpoint: RunCheckpoint, result,
                   progress) -> None:
    """Generate ``pending`` plans on the cluster of ``spec`` into ``checkpoint``; fill
    ``result`` (completions, failures, identities, counters) as ``run_plans`` does."""
    from thinkforge.manifests.executor import dask_client

    # contiguous slices of the local order (model, mode, prompt length): a worker mostly
    # serves one model, and batches keep little padding
    pending = sorted(pending, key=lambda p: (p.model, p.mode, size_of(p)))
    connecting = time.monotonic()
    with dask_client(spec) as client:
        from distributed import as_completed

        from .worker_teardown import CloseBackends

        # a closing worker stops its cached engines first (vLLM's processes would outlive it)
        client.register_plugin(CloseBackends(close_backends))
        began = time.monotonic()
        workers = sorted(client.scheduler_info()["workers"])
        count = partition_count(len(pending), len(workers), batch_hint(config.teacher),
                                spec.partitions)
        size = math.ceil(len(pending) / count)
        dispatch = uuid.uuid4().hex[:8]
        futures, in_tasks = {}, 0.0
        for index in range(count):
            # a worker needs the request and the checkpoint row's fields, not the prompt row
            part = [replace(p, prompt={"id": p.prompt["id"]})
                    for p in pending[index * size:(index + 1) * size]]
            if not part:
                continue
            tag = f"{dispatch}p{index:04d}"
            teachers = {m: config.teacher_for(m) for m in dict.fromkeys(p.model for p in part)}
            future = client.submit(generate_partition, str(checkpoint.dir), tag, part,
                                   teachers, workers, pure=False, retries=spec.retries,
                                   key=f"generate-{tag}")
            futures[future] = len(part)
        for future in as_completed(futures):
            done = future.result()
            for model, identity in done["identities"].items():
                result.identities.setdefault(model, identity)
            result.failures.update(done["failures"])
            result.forcing.update(done["forcing"])
            result.generated_now += done["generated"]
            result.tokens_now += done["tokens"]
            in_tasks += done["seconds"]
            progress.advance(futures[future], done["tokens"])
        tasks_s = time.monotonic() - began
        if spec.scheduler is None:
            # the cluster closes with this run: stop its engines while the workers are up
            # (in a closing worker the nanny allows 4 s, less than a vLLM shutdown can take)
            client.run(close_backends)
    result.generation_seconds += tasks_s  # the cluster's wall time, submit to last result
    result.fan_out = {"workers": len(workers), "partitions": len(futures),
                      "connect_close_s": round(time.monotonic() - connecting - tasks_s, 3),
                      "tasks_s": round(tasks_s, 3), "in_tasks_s": round(in_tasks, 3)}
    reading = time.monotonic()
    wanted = {p.key for p in pending}
    for key, row in checkpoint.load_successes(dispatch_tag(dispatch)).items():
        if key in wanted:
            result.completions.setdefault(key, row)
            result.failures.pop(key, None)
    result.fan_out["read_back_s"] = round(time.monotonic() - reading, 3)


def dispatch_tag(dispatch: str) -> str:
    return f"{dispatch}p*"


def generate_partition(run_dir: str, tag: str, plans: list, teachers, workers: list[str]
                       ) -> dict[str, Any]:
    """What a Dask worker runs for one partition: the keys not yet in this partition's
    chunks (a rerun after a lost worker resumes), batch by batch, each batch appended to
    the run directory before the next.  Returns counters and failures, never texts."""
    started = time.monotonic()
    checkpoint = RunCheckpoint.attach(run_dir)
    done = checkpoint.load_successes(tag, columns=["key", "error_kind"])
    todo = [p for p in plans if p.key not in done]
    out: dict[str, Any] = {"identities": {}, "failures": {}, "generated": 0, "tokens": 0,
                           "resumed": len(plans) - len(todo), "forcing": Counter()}
    rank = _rank(workers)
    for model in dict.fromkeys(p.model for p in todo):
        # each model's own settings (teachers: model -> BackendConfig; one config: for all)
        teacher = teachers[model] if isinstance(teachers, dict) else teachers
        backend, lock = _backend(teacher, model)
        if hasattr(backend, "spread"):
            backend.spread(rank, len(workers))
        out["identities"][model] = backend.identity
        group = sorted((p for p in todo if p.model == model), key=lambda p: (p.mode, size_of(p)))
        size = max(1, backend.preferred_batch_size)
        for start in range(0, len(group), size):
            batch = group[start:start + size]
            requests = [ChatRequest(p.key, p.messages, p.sampling, p.mode) for p in batch]
            began = time.monotonic()
            with lock:
                completions = force_answers(backend, batch, backend.generate(requests),
                                            out["forcing"])
            seconds = time.monotonic() - began
            rows = [checkpoint_row(p, c, seconds / len(batch))
                    for p, c in zip(batch, completions, strict=True)]
            checkpoint.append(rows, tag=tag)
            for row in rows:
                if row["error_kind"] is not None:
                    out["failures"][row["key"]] = row
            out["generated"] += sum(1 for c in completions if c.ok)
            out["tokens"] += sum(c.completion_tokens for c in completions if c.ok)
    out["seconds"] = time.monotonic() - started
    return out


def _rank(workers: list[str]) -> int:
    """This worker's place among the workers the driver saw (a worker that joined since:
    a stable place from its address)."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # not on a worker (called directly)
        return 0
    if address in workers:
        return workers.index(address)
    return int(stable_hash(address, 8), 16) % max(1, len(workers))


def _backend(teacher, model: str):
    """This process's backend for (teacher config, model), built once and kept: one model
    loaded per worker, whatever the number of tasks.  Another config replaces it (one
    slot: a GPU worker holds one model).  Calls are serialised by the returned lock
    unless the backend is an HTTP client (openai)."""
    global BUILT
    # the whole config, run control included (model_dump leaves out exclude=True fields)
    key = stable_hash([repr(teacher), teacher.endpoint_urls(), model])
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            for old, _lock in _CACHE.values():
                old.close()
            _CACHE.clear()
            backend = make_backend(teacher, model)
            BUILT += 1
            lock = _NoLock() if teacher.backend == "openai" else threading.Lock()
            entry = _CACHE[key] = (backend, lock)
    return entry


def close_backends() -> None:
    """Close this process's cached backends (a worker that closes: ``CloseBackends``)."""
    with _CACHE_LOCK:
        entries = list(_CACHE.values())
        _CACHE.clear()
    for backend, _lock in entries:
        backend.close()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None
