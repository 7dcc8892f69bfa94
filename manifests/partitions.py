"""One partition of a filter step, as a Dask worker runs it (docs/scale.md, issue 12).

A per-prompt-separable filter (passrate, quality, decontam, exact dedup) runs on every
worker over the rows whose partition key hashes to that worker's partition, or, where any
split of the rows gives the local result, over its own runs of row groups
(``position_ranges``: read by position, no row is read twice): the *same*
step code, the same DuckDB SQL, only its inputs are narrowed (``restrict``) and, instead
of publishing, what it would write goes to narrow partition files (``PartitionWriter``):
the selection positions (+ the columns the step computes, + the sort columns of the local
order) and any plainly copied rows.  ``thinkforge.filters.partitioned`` merges the partitions into
ONE version by sorting their union in the local order, written with the local COPY
settings: the same bytes and fingerprint as the local executor.

Set by ``thinkforge.filters.partitioned.run_partition`` through a context variable; the filter
machinery (``thinkforge.filters.base``) asks ``current()`` and behaves as before when it is None.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CURRENT: contextvars.ContextVar[Partition | None] = contextvars.ContextVar(
    "thinkforge_partition", default=None)


def current() -> Partition | None:
    """The partition this step runs as, or None (a whole, local run)."""
    return _CURRENT.get()


@contextlib.contextmanager
def running(partition: Partition):
    token = _CURRENT.set(partition)
    try:
        yield partition
    finally:
        _CURRENT.reset(token)


@dataclass
class Partition:
    """Partition ``index`` of ``count``: rows of version ``ref`` whose ``keys[ref]`` (a SQL
    expression over its columns) hashes to ``index``; other versions are read whole."""

    count: int
    index: int
    keys: dict[str, str]
    out: Path
    # version ref -> this partition's rows by position, [(shard, first row, end row)]: a
    # worker reads only its own row groups (``position_ranges``); wins over ``keys``
    ranges: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    ops: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)   # name, kind, step, parents
    # what a step hands the merge to make a provenance fact exact (a histogram, not its mode)
    partials: dict[str, Any] = field(default_factory=dict)

    def restrict(self, ref: str, relation: str) -> str:
        """``relation`` (all rows of ``ref``) narrowed to this partition by key hash; a
        version split by position is read through ``row_relation(rows=...)`` instead."""
        if ref in self.ranges:
            raise AssertionError(f"{ref} is split by position: read it with its ranges")
        key = self.keys.get(ref)
        if key is None:
            return relation
        return (f"(SELECT * FROM {relation} WHERE hash({key}) % {int(self.count)} "
                f"= {int(self.index)})")

    def path(self, label: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / f"{label}-{len(self.ops):03d}-{uuid.uuid4().hex[:8]}.parquet"

    def writer(self, name: str, kind: str, step, parents, provenance) -> PartitionWriter:
        self.record = {"name": name, "kind": kind, "step": step.model_dump(mode="json"),
                       "parents": [p.ref for p in parents]}
        self.provenance = dict(provenance or {})
        return PartitionWriter(self, name)


@dataclass
class PartitionWriter:
    """Stands in for ``VersionWriter`` inside a partition: hands out partition files and
    records, in order, what each was for; ``manifest`` is the partition's result."""

    partition: Partition
    name: str

    @property
    def provenance(self) -> dict[str, Any]:
        return self.partition.provenance

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def select(self, info: dict[str, Any], columns: list[str], rejected_columns: list[str],
               rejected_extra: list[str]) -> tuple[Path, Path]:
        part = self.partition
        kept, rejected = part.path("kept-sel"), part.path("rejected-sel")
        part.ops.append({"op": "selection", "info": info, "columns": list(columns),
                         "rejected_columns": list(rejected_columns),
                         "rejected_extra": list(rejected_extra),
                         "kept": str(kept), "rejected": str(rejected)})
        return kept, rejected

    def note_order(self, kept: list[str], rejected: list[str]) -> None:
        """The ORDER BY of the last selection's files, as terms over ``__o<i>`` columns."""
        self.partition.ops[-1].update(kept_order=kept, rejected_order=rejected)

    def note_nullable(self, columns: list[str]) -> None:
        """Columns of the last selection's files that the whole step writes ``optional``
        even where this partition's files have no row to show it (``partitioned._union``)."""
        self.partition.ops[-1]["nullable"] = list(columns)

    def note_kept_runs(self, runs: dict[str, Any]) -> None:
        """The last selection's kept rows are runs of base rows less its rejected rows
        (``thinkforge.filters.partition_runs``): no kept file is written, the merge reads them."""
        self.partition.ops[-1]["kept_runs"] = runs

    def copy_path(self, label: str, order_by: str, split_on: str | None,
                  size_of: list[str]) -> Path:
        path = self.partition.path(label)
        self.partition.ops.append({"op": label, "path": str(path), "order_by": order_by,
                                   "split_on": split_on, "size_of": size_of})
        return path

    def new_shard_path(self) -> Path:  # named by copy_kept; a partition writes copy_path's
        raise AssertionError("a partition writes its rows through copy_path")

    new_rejected_path = new_shard_path

    @property
    def manifest(self) -> dict[str, Any]:
        part = self.partition
        return {"partition": part.index, "ops": part.ops, "provenance": part.provenance,
                "partials": part.partials, **part.record}


def order_columns(order_by: str) -> tuple[list[str], list[str]]:
    """``a, b DESC`` -> (["a", "b"], ["__o0", "__o1 DESC"]): the columns a partition writes
    next to its rows and the merge's ORDER BY over them."""
    names, terms = [], []
    for i, term in enumerate(t.strip() for t in order_by.split(",") if t.strip()):
        name, _, rest = term.partition(" ")
        names.append(name.strip('"'))
        terms.append(f"__o{i} {rest}".strip())
    return names, terms


# -- registry: filled by thinkforge.filters.partitioned (manifests never imports filters) -------------

# step type -> split(store, inputs, config) -> {version ref: key SQL} or None (runs whole)
SPLITS: dict[str, Any] = {}
# step type -> phased(Phases) -> the published Manifest, or None (runs whole): a step that
# needs a global phase between its partitions (curriculum, near dedup)
PHASED: dict[str, Any] = {}


@dataclass
class Phases:
    """What a phased step's driver gets (``thinkforge.manifests.executor.run_phased``): the client,
    the step's plain inputs, a staging folder for partition files, workers per host."""

    client: Any
    retries: int
    store: Any
    store_at: tuple[type, str]
    inputs: dict[str, Any]
    name: str
    config: Any
    resources: dict[str, Any]
    count: int
    out: Path
    hosts: dict[str, int]
    label: str

    def map(self, phase: str, fn, calls: list[tuple]) -> list[Any]:
        """Run ``fn(*call)`` for every call as Dask tasks (a lost worker's task is rerun
        elsewhere, ``retries`` for one that raised); their results in order."""
        return self.client.gather(self.submit(phase, fn, calls))

    def submit(self, phase: str, fn, calls: list[tuple]) -> list[Any]:
        """``map`` without the wait: the futures (``client.gather`` them), so that the
        driver can prepare the next phase while these tasks run."""
        return [self.client.submit(fn, *call, pure=False, retries=self.retries,
                                   key=f"{self.label}-{phase}{i}-{uuid.uuid4().hex[:6]}")
                for i, call in enumerate(calls)]
_MERGE: list[Any] = []


def register_merge(merge) -> None:
    _MERGE[:] = [merge]


def split_keys(store, step_type: str, inputs: dict[str, Any], config) -> dict[str, str] | None:
    """How the step's inputs partition (None: the step runs whole, as one task)."""
    split = SPLITS.get(step_type)
    return split(store, inputs, config) if split is not None else None


def position_ranges(store, keys: dict[str, str] | None,
                    count: int) -> list[dict[str, list[tuple[int, int, int]]]] | None:
    """Split by row position instead of key hash, where any split of the rows gives the
    local result: ONE version split on its unique row key (``id`` of prompts / rl_pool:
    the hash of a unique key is an arbitrary split already), stored as plain shards.  Each
    partition gets a contiguous run of rows, the same number each, so a worker's DuckDB
    reads only the row groups of its run (``file_row_number`` ranges prune the rest)
    instead of reading and hashing every row.  None: split by key hash (several versions
    that must split alike, a grouping key, a selection, no rows)."""
    from .schemas import ROW_KEYS

    if not keys or len(keys) != 1 or count < 2:
        return None
    (ref, key), = keys.items()
    m = store.resolve(ref)
    if ROW_KEYS.get(m.kind) != ("id",) or key != "id":
        return None
    return row_group_ranges(store, m, count)


def row_group_ranges(store, m, count: int) -> list[dict[str, list[tuple[int, int, int]]]] | None:
    """``count`` contiguous runs of the rows of the plain version ``m``, the same number of
    rows each (to one), in position order, as ``(shard, first row, end row)`` per shard
    they touch (None: a selection, or no rows).  A run reads only the row groups it
    overlaps: of ``count`` runs over R row groups, at most ``count - 1`` row groups are
    read by two tasks (even rows matter more than whole row groups: 2 row groups of
    123k and 77k rows would make one task 60% of the work)."""
    if m.selection is not None or not m.files or not m.rows or count < 2:
        return None
    sizes = [f.rows for f in m.files]
    total = sum(sizes)
    parts: list[dict[str, list[tuple[int, int, int]]]] = []
    for i in range(count):
        lo, hi, runs, start = total * i // count, total * (i + 1) // count, [], 0
        for shard, n in enumerate(sizes):  # the part of [lo, hi) in each shard
            a, b = max(lo, start), min(hi, start + n)
            if a < b:
                runs.append((shard, a - start, b - start))
            start += n
        parts.append({m.ref: runs})
    return parts


def merge(store, parts: list[dict[str, Any]], resources: dict[str, Any]):
    return _MERGE[0](store, parts, resources)


def threads_here(workers_by_host: dict[str, int] | None = None) -> int:
    """DuckDB threads for a task here: on a Dask worker, the worker's own thread count
    (``--nthreads``; a LocalCluster of N workers gets cores / N each), so N single-thread
    workers never oversubscribe a host and one worker with all cores uses them all; off a
    worker (the driver), every core.  ``workers_by_host`` is kept for callers that still
    pass it: a worker's thread count already says its share."""
    import os

    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return max(1, os.cpu_count() or 1)
