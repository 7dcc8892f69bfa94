"""The shared machinery of every filter step (docs/filters.md, docs/architecture.md).

A step is: input version(s) in, one new version out.  This module does the common work so a
filter only writes SQL that decides keep / drop-with-reason:

* a DuckDB connection bounded by ``memory_limit`` and spilling to ``temp_directory`` (out of
  core: a pool larger than RAM still works);
* the step record (type + the full ``config.model_dump()``) and the input fingerprints as
  lineage, and reuse of an existing version when the same step ran on the same inputs;
* the keep/reject contract (datatrove's ``BaseFilter``): a filter builds one relation of
  its input rows with a ``reason`` column, NULL for a row it keeps, else why it drops it
  (plus any columns that explain the drop); ``StepContext.keep_reject`` COPYs the kept
  rows straight into data shards and the dropped ones into ``rejected/`` with their reason
  (the manifest counts them by reason at publish), with progress on stderr;
* a dry-run plan that says what would run without writing anything.

A filter module declares its step once with ``declare_filter`` (a ``thinkforge.manifests.steps``
descriptor): the CLI command ``thinkforge filter <type>``, the recipe step type, the dry
run and ``tf.steps.<type>`` all come from that declaration.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.cleanup import claim
from thinkforge.manifests.duck import connect, quote_literal, valid_memory_limit
from thinkforge.manifests.errors import ConfigError, InputDataError
from thinkforge.manifests.manifest import Step
from thinkforge.manifests.partitions import current as current_partition
from thinkforge.manifests.schemas import ROW_KEYS
from thinkforge.manifests.settings import DuckdbSettings
from thinkforge.manifests.steps import Flag, Role, RunContext, StepDescriptor, register_step
from thinkforge.manifests.store import ROW_GROUP_ROWS

from .keep_selection import keep_reject_selection
from .progress import StepProgress
from .verifying import InputHashes


class StepConfig(BaseModel):
    """Base of every filter config: unknown keys are errors, every field has help text."""

    model_config = ConfigDict(extra="forbid")


# how a filter runs (DuckDB's memory, spill directory, threads, progress, materialize): the
# DuckDB part of the run settings, thinkforge.manifests.settings (kept under this name for callers)
Resources = DuckdbSettings


@dataclass
class StepPlan:
    """What a step would do: printed by --dry-run, used by run_step."""

    name: str
    kind: str
    step: Step
    inputs: list[Manifest]
    reusable: Manifest | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "step": self.step.model_dump(),
                "inputs": [m.ref for m in self.inputs],
                "reuses": self.reusable.ref if self.reusable else None}


@dataclass
class StepContext:
    """Handed to a filter's body: the connection and where kept and rejected rows go."""

    store: DatasetStore
    con: Any  # duckdb.DuckDBPyConnection
    writer: Any  # thinkforge.manifests.writer.VersionWriter
    provenance: dict[str, Any] = field(default_factory=dict)
    row_group_bytes: int = 128 << 20
    sort_budget: int | None = None  # bytes one sort may hold; None: no memory limit given
    inputs: list[Manifest] = field(default_factory=list)
    progress: StepProgress = field(default_factory=lambda: StepProgress("", None, False))
    materialize: bool = False  # write full copies instead of selections (same rows, same fingerprint)

    def bind(self, **values: Any) -> None:
        """Bind values once as the one-row table ``knobs`` so views can use them.

        DuckDB cannot prepare CREATE VIEW with ``?``; a view reads ``(SELECT x FROM knobs)``
        instead, and the values still travel as bound parameters, never as SQL text.
        """
        names = list(values)
        self.con.execute("CREATE OR REPLACE TEMP TABLE knobs AS SELECT "
                         + ", ".join(f"?::{_duck_type(values[n])} AS {n}" for n in names),
                         [values[n] for n in names])

    def keep_reject(self, judged: str, columns: Sequence[str], *,
                    order: tuple[str, str | None], extra: Sequence[str] = (),
                    rejected_columns: Sequence[str] | None = None,
                    rejected_order: tuple[str, str | None] | None = None,
                    size_of: list[Manifest] | None = None,
                    kept: str | None = None, rows_from: Manifest | None = None,
                    changed: Sequence[str] = (), narrow: str | None = None,
                    positioned: bool = False, in_place: bool = False,
                    keyed: bool = True, presorted: bool = False,
                    every_row: bool = False, verdicts: str | None = None) -> tuple[int, int]:
        """The keep/reject contract: write the rows of ``judged`` (a relation with every
        column of ``columns`` and a ``reason``: NULL keeps the row) as kept rows, and the
        others with ``reason`` and the ``extra`` columns as rejected rows.

        ``order`` / ``rejected_order`` are (ORDER BY, split column) as ``row_order`` gives
        them; ``rejected_columns`` replaces ``columns`` for rejected rows when a filter's
        dropped rows have a narrower shape; ``kept`` replaces ``judged`` for the kept rows when
        the judged relation comes from an outer join (DuckDB then writes every column as
        nullable, which changes the Parquet bytes of the same rows).  Returns (kept, rejected)
        row counts.

        By default the version is a *selection* (``manifests/selection.py``): the kept and
        rejected rows are written as their positions in the base shards plus the columns
        that are not the input's (``changed``: input columns the step gives new values),
        matched to the input rows (``rows_from``, default: the only input) by row key
        (``kept`` plays no part: the stored values come from ``judged``).  A version is
        materialised instead when ``Resources.materialize`` is set or the input has no row
        digests (published before selections).  Both give the same rows and fingerprint.
        ``narrow`` replaces ``judged`` in the selection path: a relation with only the row key,
        ``reason``, the ``extra`` columns and the stored columns (so that a filter whose
        ``judged`` joins the wide rows back on does not read them for a selection).
        ``positioned``: ``narrow`` also has ``__shard``, ``__row``, each row's base position as
        ``source(..., positions=True)`` gives it (NULL for a row that is no input row), so the
        rows are not matched to positions by their keys again.
        ``in_place`` (with ``positioned``): ``narrow`` is a temp table of this connection holding
        exactly the rows to write, read where it is instead of being copied to ``__judged``
        (a CREATE TABLE AS over a filter or join gives it its rows' NOT NULL statistics, which
        decide the Parquet bytes, as the copy would).
        ``keyed=False`` (with ``positioned``, locally): ``narrow`` has no row key columns (a
        step that reads no key, e.g. the curriculum, which hashes the base's ids); every row
        must then have a position and some row must be kept, since the keys match the rest.
        ``presorted`` (with ``positioned``, locally): ``narrow``'s rows come in ``order`` (an
        Arrow table or a table scanned in insertion order): the kept file is written in
        that order, not sorted again (the same bytes as the sort's).
        ``every_row`` (with ``positioned``): ``narrow`` is the input rows LEFT JOINed to the
        filter's verdicts (one row per input row; a kept row's ``extra`` columns NULL): a
        Dask partition split by position then copies only its rejected rows and writes its
        kept rows from its own runs (``partition_runs``); ``verdicts``: a relation of the
        rows of ``narrow`` with a ``reason`` (others may be in it), which that partition
        reads instead of every row.
        """
        info = self._selection_base(rows_from)
        if info is not None:
            return keep_reject_selection(
                self, info, rows_from or self.inputs[0], narrow or judged, list(columns), order=order,
                extra=list(extra), rejected_columns=list(rejected_columns or columns),
                rejected_order=rejected_order or order, changed=set(changed),
                positioned=positioned and narrow is not None, wide=judged,
                table=narrow if in_place and positioned and narrow is not None else None,
                keyed=keyed or not positioned or narrow is None,
                presorted=presorted and positioned and narrow is not None, every_row=every_row,
                verdicts=verdicts)
        cols = ", ".join(columns)
        kept_rows = self.copy_kept(
            f"SELECT {cols} FROM {kept or judged} WHERE reason IS NULL",
            order_by=order[0], split_on=order[1], size_of=size_of)
        rejected_cols = ", ".join([*(rejected_columns or columns), "reason", *extra])
        by, split = rejected_order or order
        dropped = self.copy_rejected(
            f"SELECT {rejected_cols} FROM {judged} WHERE reason IS NOT NULL",
            order_by=by, split_on=split, size_of=size_of)
        return kept_rows, dropped

    def selects(self, rows_from: Manifest | None = None) -> bool:
        """Whether ``keep_reject`` will publish a selection (positions) for these rows."""
        return self._selection_base(rows_from) is not None

    def _selection_base(self, rows_from: Manifest | None) -> dict[str, Any] | None:
        from thinkforge.manifests.selection import base_of

        if self.materialize or (rows_from is None and len(self.inputs) != 1):
            return None
        return base_of(self.store, rows_from or self.inputs[0])

    def copy_kept(self, select_sql: str, *, order_by: str, split_on: str | None = None,
                  size_of: list[Manifest] | None = None, params: list[Any] | None = None) -> int:
        """Write the rows of ``select_sql`` (in the kind's column order and types), sorted.

        Sorting is what makes the same inputs give the same bytes.  When the rows would not
        fit the memory budget (estimated from the uncompressed size of ``size_of``, default:
        every input), they are written as several shards, each a range of ``split_on``
        sorted on its own: an external sort by range partitioning, since DuckDB's own sort
        of wide rows can fail far below its memory limit.
        """
        self.progress.phase("writing kept rows")
        return self._copy_sorted(select_sql, order_by, split_on, size_of, params,
                                 self.writer.new_shard_path, "kept")

    def copy_rejected(self, select_sql: str, *, order_by: str, split_on: str | None = None,
                      size_of: list[Manifest] | None = None,
                      params: list[Any] | None = None) -> int:
        """Write dropped rows (``select_sql`` has a ``reason`` column) like ``copy_kept``."""
        self.progress.phase("writing rejected rows")
        return self._copy_sorted(select_sql, order_by, split_on, size_of, params,
                                 self.writer.new_rejected_path, "rejected")

    def _copy_sorted(self, select_sql, order_by, split_on, size_of, params, new_path,
                     label: str = "kept") -> int:
        import math

        import pyarrow.parquet as pq

        if current_partition() is not None:  # one file; the merge sorts the union
            path = self.writer.copy_path(label, order_by, split_on,
                                         [m.ref for m in (size_of or self.inputs)])
            self._copy(f"SELECT * FROM ({select_sql})", list(params or []), path)
            return pq.ParquetFile(path).metadata.num_rows
        parts = 1
        if split_on and self.sort_budget:
            parts = math.ceil(uncompressed_bytes(self.store, size_of or self.inputs)
                              / self.sort_budget)
        ranges: list[tuple[str, list[Any]]] = [("", [])]
        if parts > 1:
            fractions = [i / parts for i in range(1, parts)]
            bounds = self.con.execute(f"SELECT quantile_disc({split_on}, ?) FROM ({select_sql})",
                                      [fractions] + list(params or [])).fetchall()[0][0] or []
            bounds = sorted({b for b in bounds if b is not None})
            edges = [None, *bounds, None]
            ranges = []
            for lo, hi in itertools.pairwise(edges):
                cond = [c for c in (f"{split_on} > ?" if lo is not None else "",
                                    f"{split_on} <= ?" if hi is not None else "") if c]
                # an empty set has no bounds (one range, no condition): never a bare WHERE
                ranges.append(("WHERE " + " AND ".join(cond) if cond else "",
                               [v for v in (lo, hi) if v is not None]))
        total = 0
        for where, values in ranges:
            path = new_path()
            self._copy(f"SELECT * FROM ({select_sql}) {where} ORDER BY {order_by}",
                       list(params or []) + values, path)
            n = pq.ParquetFile(path).metadata.num_rows
            if n == 0:
                path.unlink()
            total += n
        return total

    def _copy(self, select_sql: str, params: list[Any] | None, path: Path,
              narrow: bool = False) -> None:
        # the writer buffers one row group: bound it by bytes (docs/concepts.md: ~128 MiB, less when the
        # memory limit is small) and by ROW_GROUP_ROWS, so that DuckDB compresses row groups
        # on every thread (one row group is one thread's work, when written and when read);
        # a Dask partition's files are read once by the merge: snappy, quicker than zstd
        # both ways, and ``narrow`` ones (selection positions) not compressed at all, which
        # is quicker still (the version's own files stay zstd: the merge writes them)
        codec = "zstd" if current_partition() is None else \
            "uncompressed" if narrow else "snappy"
        self.con.execute(f"COPY ({select_sql}) TO {quote_literal(str(path))} "
                         f"(FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, "
                         f"ROW_GROUP_SIZE_BYTES {int(self.row_group_bytes)})", params or []
                         ).fetchall()  # finishing the result frees the query's buffers now


def uncompressed_bytes(store: DatasetStore, manifests: list[Manifest]) -> int:
    """In-memory size of versions as their Parquet footers state it (no data is read)."""
    import pyarrow.parquet as pq

    total = 0
    for m in manifests:
        if m.selection is not None:  # the base's shards it reads, in proportion to its rows
            for f, n in zip(m.selection.base_files, m.selection.used, strict=True):
                if n:
                    meta = pq.ParquetFile(store.root / f.path).metadata
                    total += sum(meta.row_group(i).total_byte_size
                                 for i in range(meta.num_row_groups)) * n // max(1, f.rows)
            continue
        for path in store.shard_paths(m):
            meta = pq.ParquetFile(path).metadata
            total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _duck_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, (list, tuple)):
        return "VARCHAR[]"
    return "VARCHAR"


def make_step(step_type: str, config: StepConfig) -> Step:
    return Step(type=step_type, config=config.model_dump(mode="json"))


def plan_step(store: DatasetStore, name: str, kind: str, step_type: str, config: StepConfig,
              inputs: list[Manifest]) -> StepPlan:
    step = make_step(step_type, config)
    reusable = store.find_reusable(name, step, [m.as_parent() for m in inputs]) \
        if store.datasets_dir.is_dir() else None
    return StepPlan(name=name, kind=kind, step=step, inputs=inputs, reusable=reusable)


def require_kind(manifest: Manifest, *kinds: str, role: str) -> None:
    if manifest.kind not in kinds:
        raise InputDataError(
            f"{role} {manifest.ref} is a {manifest.kind!r} version; this step needs "
            f"{' or '.join(repr(k) for k in kinds)}",
            hint="check the reference (`thinkforge catalog` lists every version and its kind)")


_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3,
          "gib": 1024**3, "tb": 1000**4, "tib": 1024**4}


def size_in_bytes(text: str) -> int:
    """'512MiB' -> 536870912 (the units DuckDB accepts for memory_limit)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"{text!r} is not a size", hint="use a number and a unit, e.g. 512MiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def row_group_bytes(resources: Resources | None) -> int:
    """128 MiB row groups (docs/concepts.md), or 1/16 of a smaller memory limit.

    A row group is held whole by the reader (compressed and decompressed) and by the writer,
    next to the sort runs: with 1/16 they all fit with room to spare.
    """
    limit = resources.memory_limit if resources else None
    return min(128 << 20, max(1 << 20, size_in_bytes(limit) // 16)) if limit else 128 << 20


def open_connection(store: DatasetStore, resources: Resources | None):
    """A bounded DuckDB connection and the spill directory to remove afterwards (or None)."""
    resources = resources or Resources()
    if resources.memory_limit and not valid_memory_limit(resources.memory_limit):
        raise ConfigError(f"memory limit {resources.memory_limit!r} is not a size",
                          hint="use a number and a unit, e.g. 512MiB or 4GB")
    if resources.memory_limit and size_in_bytes(resources.memory_limit) < 16 * 1000**2:
        raise ConfigError(f"memory limit {resources.memory_limit!r} is too small for a step",
                          hint="give at least 16MB (steps spill to disk beyond their limit)")
    spill, own_spill = resources.temp_directory, None
    if spill is None:
        spill = own_spill = store.root / ".staging" / f"spill-{uuid.uuid4().hex}"
    Path(spill).mkdir(parents=True, exist_ok=True)
    if own_spill is not None:
        claim(own_spill)  # a killed step's spill directory is reclaimed by the next write / gc
    con = connect(memory_limit=resources.memory_limit, temp_directory=spill,
                  threads=resources.threads)
    # every step ORDERs its output explicitly (same inputs -> same bytes -> same fingerprint);
    # not preserving insertion order elsewhere lets DuckDB spill instead of failing
    con.execute("SET preserve_insertion_order=false")
    return con, own_spill


def run_step(store: DatasetStore, *, name: str, kind: str, step_type: str, config: StepConfig,
             inputs: list[Manifest], body: Callable[[StepContext], None],
             resources: Resources | None = None,
             provenance: dict[str, Any] | None = None) -> Manifest:
    """Run ``body`` and publish its rows as a new version of ``name``, or reuse an identical one.

    Reuse: when a version of ``name`` was built by the same step type and config from inputs
    with the same fingerprints, it is returned as it is and nothing runs.
    """
    plan = plan_step(store, name, kind, step_type, config, inputs)
    partition = current_partition()
    if plan.reusable is not None and partition is None:
        return plan.reusable
    # log, signature, sizes now; sha256 (cached per file) while the step runs, waited for
    # before the publish: nothing corrupt is laundered (verifying.py).  A Dask partition or a
    # one-thread step hashes first, as before: a busy extra thread would take another's core
    hashes = InputHashes(store, inputs, background=partition is None
                         and not (resources is not None and resources.threads == 1))
    try:
        return _run_body(store, plan, partition, inputs, body, resources, provenance, hashes)
    except BaseException as exc:
        hashes.failed_instead(exc)  # waits for the hashes: no thread outlives the step
        raise


def _run_body(store: DatasetStore, plan: StepPlan, partition, inputs: list[Manifest],
              body: Callable[[StepContext], None], resources: Resources | None,
              provenance: dict[str, Any] | None, hashes: InputHashes) -> Manifest:
    name, kind, step_type = plan.name, plan.kind, plan.step.type
    con, own_spill = open_connection(store, resources)
    progress = StepProgress(f"{step_type.removeprefix('filter.')} -> {name}", con,
                            enabled=bool(resources and resources.progress))
    try:
        with progress, (partition.writer(name, kind, plan.step, inputs, provenance)
                        if partition is not None else
                        store.writer(name, kind, step=plan.step, parents=inputs,
                                     provenance=dict(provenance or {}))) as writer:
            if partition is None:
                writer.use_connection(con)  # the publish reuses the step's connection
            limit = resources.memory_limit if resources else None
            ctx = StepContext(store=store, con=con, writer=writer, provenance=writer.provenance,
                              row_group_bytes=row_group_bytes(resources), inputs=list(inputs),
                              # 1/8 of the limit per sorted part: sort runs, the reader's and
                              # the writer's row groups and the join share the rest
                              sort_budget=size_in_bytes(limit) // 8 if limit else None,
                              progress=progress, materialize=materialize_wanted(resources))
            body(ctx)
            hashes.wait()  # an input that does not verify: the writer publishes nothing
            progress.phase("publishing")  # checks, sha256, stats, catalog
        return writer.manifest
    finally:
        con.close()
        if own_spill is not None:
            shutil.rmtree(own_spill, ignore_errors=True)


def materialize_wanted(resources: Resources | None) -> bool:
    import os

    return bool(resources and resources.materialize) or \
        os.environ.get("THINKFORGE_MATERIALIZE", "") not in ("", "0")


def source(store: DatasetStore, manifest: Manifest, positions: bool = False) -> str:
    """SQL relation over a version's rows (its shards, or its selection resolved);
    ``positions`` adds ``__shard``, ``__row`` (where each row lives in the base shards)."""
    from thinkforge.manifests.selection import row_relation

    # any order: every step orders what it writes (a selection's rows in version order would
    # cost a sort of the wide rows the step reads); a partition reads only its rows
    partition = current_partition()
    ranges = partition.ranges.get(manifest.ref) if partition is not None else None
    relation = row_relation(store, manifest, ordered=False, positions=positions, rows=ranges)
    if partition is None or ranges is not None:  # whole, or its own row groups already
        return relation
    return partition.restrict(manifest.ref, relation)


def row_order(manifest: Manifest) -> tuple[str, str]:
    """(ORDER BY, split column) that keep a filtered version in its input's order.

    Versions are sorted by their row keys, except RL pools with a curriculum, which stay in
    curriculum order: a filter after the curriculum step must not undo it.
    """
    if manifest.kind == "rl_pool" and manifest.stats.get("curriculum_batches"):
        return "curriculum_batch, curriculum_position, id", "curriculum_batch"
    keys = ROW_KEYS[manifest.kind]
    return ", ".join(keys), keys[0]


def filter_resources(ctx: RunContext) -> Resources:
    """The DuckDB part of a run's settings (recipe `resources:` or --memory-limit / --temp-dir);
    progress is shown unless the run is quiet or the settings say otherwise."""
    duckdb = ctx.settings.duckdb()
    return duckdb if duckdb.progress is not None else duckdb.model_copy(update={"progress": not ctx.quiet})


def declare_filter(step_type: str, run: Callable[..., Manifest], *, config: type[StepConfig],
                   kinds: tuple[str, ...], help: str, examples: tuple[str, ...],
                   role: str = "data", output_kind: str | None = None,
                   flags: tuple[Flag, ...] = ()) -> StepDescriptor:
    """Register a one-input filter ``run(store, data, name, config, resources)`` as the step
    ``step_type`` (recipe type, `thinkforge filter <step_type>`, `tf.steps.<step_type>`);
    its versions record ``filter.<step_type>`` as their step type."""
    def run_step_(ctx: RunContext, inputs: dict[str, Any], name: str, cfg: StepConfig):
        return {name: run(ctx.store, inputs[role], name, cfg, resources=filter_resources(ctx))}

    return register_step(StepDescriptor(
        type=step_type, record_type=f"filter.{step_type}", group="filter",
        roles=(Role(role, kinds, help=f"input version ({' or '.join(kinds)})"),),
        output_kind=output_kind, config=config, run=run_step_, help=help, examples=examples,
        flags=flags, resources=True))
