"""Import rows from files into a new version of any record kind (docs/architecture.md).

Reading, mapping and checking rows is ``import_job`` (one pass over the file: ``mapper``,
``columnar``, ``arrow_map``, ``keyindex``); this module checks the options and publishes
the version the pass wrote (``manifests.writer``: checksums, digests, key checks and stats
are gathered as the rows are written, then published atomically) or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.errors import ConfigError, InputDataError
from thinkforge.manifests.manifest import Step, sha256_file
from thinkforge.manifests.store import validate_name

from .import_job import _Counter, _Import
from .mapper import ON_DUPLICATE, ImportOptions, RowMapper, duplicate_policy, parse_map
from .presets import PRESETS
from .readers import LABELS, RowError, check_source, detect_format
from .values import stable_id


@dataclass
class DryRun:
    """What an import would publish: counts only, nothing written."""

    name: str
    kind: str
    rows: int
    rejected: dict[str, int]


def import_step_record(path: str | Path, opts: ImportOptions) -> Step:
    """The step an import records (file path + sha256 + options): what reuse compares, for
    `thinkforge import` and a recipe's inputs alike."""
    path = Path(path)
    fmt = opts.format or detect_format(path)
    source = opts.source
    if source is None and opts.preset is None:
        source = path.stem if fmt != "hf" else path.name  # import_file's own default
    config = {"path": str(path.resolve()), "sha256": sha256_file(path) if path.is_file() else None,
              "format": fmt, "kind": opts.kind, "preset": opts.preset, "map": opts.mapping,
              "category": opts.category, "license": opts.license, "source": source,
              "on_error": opts.on_error}
    if opts.on_duplicate is not None:
        config["on_duplicate"] = opts.on_duplicate
    return Step(type="import", config=config)


def import_file(store: DatasetStore, path: str | Path, opts: ImportOptions,
                progress: Callable[[int], None] | None = None,
                dry_run: bool = False) -> Manifest | DryRun:
    """Read, map and validate every row of ``path``; publish one version or nothing.

    With ``dry_run`` every row is still read and validated (the same errors are raised),
    but nothing is written to the store.
    """
    path = Path(path)
    validate_name(opts.name)
    preset = None
    if opts.preset:
        if opts.preset not in PRESETS:
            raise ConfigError(f"unknown preset {opts.preset!r}", hint=f"presets: {', '.join(PRESETS)}")
        preset = PRESETS[opts.preset]
        if opts.kind != "prompts":
            raise ConfigError(f"preset {opts.preset} makes prompts, not {opts.kind}")
    if opts.on_error not in ("fail", "skip"):
        raise ConfigError(f"--on-error {opts.on_error!r}: use fail or skip")
    if opts.on_duplicate is not None and opts.on_duplicate not in ON_DUPLICATE:
        raise ConfigError(f"--on-duplicate {opts.on_duplicate!r}: use {', '.join(ON_DUPLICATE)}")
    fmt = opts.format or detect_format(path)
    check_source(path, fmt)
    if opts.source is None and preset is None:
        opts.source = path.stem if fmt != "hf" else path.name
    mapper = RowMapper(opts, preset, str(path))
    drop_keys = None
    if duplicate_policy(opts) == "skip":  # a first pass finds the keys repeated anywhere
        scan = _Import(path, fmt, opts, mapper, _Counter(), None)
        scan.run()
        drop_keys = scan.duplicate_keys

    def run(sink) -> _Import:
        job = _Import(path, fmt, opts, mapper, sink, progress, drop_keys)
        job.run()
        if not job.good:
            first = f"; the first bad one: {job.first_bad}" if job.first_bad else ""
            raise InputDataError(f"{path}: no valid rows to import ({job.rejected} rejected){first}",
                                 hint="check the mapping (--map) and the file's columns")
        return job

    if dry_run:
        counter = _Counter()
        job = run(counter)
        return DryRun(name=opts.name, kind=opts.kind, rows=job.good, rejected=counter.rejected)
    provenance = {"source_file": str(path.resolve())}
    with store.writer(opts.name, opts.kind, step=import_step_record(path, opts),
                      provenance=provenance) as w:
        sink = _Sink(w)
        try:
            job = run(sink)
        except BaseException:
            sink.abandon()  # the write in flight ends before the staging directory goes
            raise
        sink.close()
        provenance["read_rows"] = job.read
        del job, sink
        release_memory()  # the publish's DuckDB starts from what the import gave back
    return w.manifest


def release_memory() -> None:
    """Give freed memory back to the system (Arrow's pool, glibc's heap)."""
    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


REJECTED_SCHEMA = pa.schema([("location", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
                             ("raw", pa.string()), ("first_seen", pa.string())])


class _Sink:
    """Writes kept rows as they come and rejected rows in chunks (one schema for all).

    Kept rows are written on one background thread while the pass reads and maps the next
    batch (Parquet encoding and the writer's DuckDB digests release the GIL: the two cores
    share the work); one table at most waits, so memory stays two batches.  Order is kept
    (one thread, tables in turn); a write's error is raised at the next write or close.
    """

    def __init__(self, writer):
        self.writer = writer
        self.rejected: list[dict[str, Any]] = []
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-import-write")
        self.pending: Future | None = None

    def write(self, table: pa.Table) -> None:
        self._wait()
        self.pending = self.pool.submit(self.writer.write, table)

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def reject(self, rows: list[dict[str, Any]]) -> None:
        self.rejected += rows
        if len(self.rejected) >= 50_000:
            self._flush_rejected()

    def _flush_rejected(self) -> None:
        if self.rejected:
            self.writer.reject(pa.Table.from_pylist(self.rejected, schema=REJECTED_SCHEMA))
            self.rejected = []

    def close(self) -> None:
        try:
            self._wait()
            self._flush_rejected()
        finally:
            self.pool.shutdown(wait=True)

    def abandon(self) -> None:
        """Wait for the write in flight and drop its outcome (the pass already failed)."""
        self.pool.shutdown(wait=True)


__all__ = ["LABELS", "DryRun", "ImportOptions", "RowError", "RowMapper", "duplicate_policy", "import_file",
           "parse_map", "stable_id"]
