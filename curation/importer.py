"""Import rows from files into a new version of any record kind (docs/architecture.md).

A field of the target schema gets its value from, in order: ``--map FIELD=COLUMN`` (or a
template ``--map FIELD="{COL1}\\n\\n{COL2}"``), the preset, a source column of the same
name, then a default (``--category``, ``--license``, the source name, a stable id).  For
``prompts``, source columns that no field used are kept in ``metadata`` (JSON), so nothing
from the source row is lost.

Templates and the coercion of values are in ``thinkforge.curation.values``.

Import streams: rows are read, mapped and validated in batches of ``BATCH_ROWS`` and written
as they go (a plain JSONL batch is parsed and mapped by Arrow: ``thinkforge.curation.columnar``; any
batch it cannot map exactly goes row by row, with the same result), so memory does not
grow with the file but for the duplicate check (``thinkforge.curation.keyindex``): 12 bytes a row (a
64-bit hash of the key and the row's line number; 120 MB at 10M rows).  Two different
keys sharing a hash would be taken for duplicates: at 10M rows the chance is about 3 in a
million (n^2 / 2^65).  Columns are those of every row (a column first seen on row
1,000,000 still lands in ``metadata``; a mapped column is missing only if no row has it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import ConfigError, InputDataError
from thinkforge.manifests.manifest import Step, sha256_file
from thinkforge.manifests.schemas import ENUMS, ROW_KEYS, schema_for
from thinkforge.manifests.store import validate_name

from .columnar import ColumnarMapper, key_hashes, read_plain, user_messages
from .keyindex import KeyIndex
from .presets import PRESETS, Preset
from .readers import (
    LABELS,
    LineBatch,
    RowError,
    SourceRowError,
    check_source,
    detect_format,
    jsonl_batches,
    location,
    parse_line,
    read_batches,
)
from .values import (
    DEFAULT_VERIFIER,
    Template,
    coerce,
    column_of,
    dumps_sorted,
    is_template,
    jsonable,
    stable_id,
    user_ids,
)

Getter = Callable[[dict[str, Any]], Any]
WRITE_ROWS = 100_000  # rows gathered before one write (one row group of the shard)
ON_DUPLICATE = ("fail", "first", "skip")




@dataclass
class ImportOptions:
    name: str
    kind: str = "prompts"
    preset: str | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    license: str | None = None
    source: str | None = None
    on_error: str = "fail"
    on_duplicate: str | None = None  # fail | first | skip; None: skip->first, else fail


def duplicate_policy(opts: ImportOptions) -> str:
    return opts.on_duplicate or ("first" if opts.on_error == "skip" else "fail")


def parse_map(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        target, sep, spec = item.partition("=")
        if not sep or not target or not spec:
            raise ConfigError(f"--map {item!r} is not FIELD=COLUMN or FIELD=\"{{COL}} template\"",
                              hint="e.g. --map input=question --map ground_truth=answer")
        mapping[target.strip()] = spec
    return mapping


# -- mapping ----------------------------------------------------------------------------------
class RowMapper:
    """Maps source rows to records of the target kind, a batch at a time.

    ``map_batch`` works column by column; when any row of a batch is bad it raises that
    row's ``RowError`` and the importer maps the batch again one row at a time (a batch of
    one row goes through exactly the same code), so the two can never disagree.
    """

    def __init__(self, opts: ImportOptions, preset: Preset | None, where: str):
        self.opts, self.preset, self.where = opts, preset, where
        self.schema = schema_for(opts.kind)
        unknown = [f for f in opts.mapping if f not in self.schema.names]
        if unknown:
            raise ConfigError(f"--map names unknown field(s) {unknown} of kind {opts.kind}",
                              hint=f"fields: {', '.join(self.schema.names)}")
        self.getters: dict[str, Getter] = {}
        self.column_of: dict[str, str] = {}  # field -> the one column it is taken from as is
        self.mapped: dict[str, tuple[str, list[str]]] = {}  # field -> (spec, columns it needs)
        self.templates: dict[str, Template] = {}
        self.used: set[str] = set()
        self.same_name: set[str] = set()
        for f in self.schema.names:
            if f in opts.mapping:
                spec = opts.mapping[f]
                if is_template(spec):
                    template = self.templates[f] = Template(spec, f"--map {f}")
                    self.getters[f] = template.render
                    self.mapped[f] = (spec, template.columns)
                    self.used |= set(template.columns)
                else:
                    self.getters[f] = (lambda c: lambda row: row.get(c))(spec)
                    self.column_of[f] = spec
                    self.mapped[f] = (spec, [spec])
                    self.used.add(spec)
            elif preset and f in preset.fields:
                self.getters[f] = preset.fields[f]
                self.used |= set(preset.uses)
            else:
                self.getters[f] = (lambda c: lambda row: row.get(c))(f)
                self.column_of[f] = f
                self.same_name.add(f)
        self.source = opts.source or (preset.source if preset else None)
        self.needed = {c for _, cs in self.mapped.values() for c in cs} | set(preset.expects if preset else ())
        self.prompts = opts.kind in ("prompts", "rl_pool")
        self.keys = ROW_KEYS[opts.kind]

    # -- columns of the file ----------------------------------------------------------------
    def check_columns(self, columns: dict[str, None]) -> None:
        """Mapped columns and the preset's columns must be among the file's columns."""
        have = ", ".join(columns) or "(none)"
        if self.preset and self.preset.expects:
            missing = [c for c in self.preset.expects if c not in columns]
            if missing:
                raise InputDataError(
                    f"{self.where}: --preset {self.opts.preset} expects column(s) "
                    f"{', '.join(self.preset.expects)}; the file has {have}",
                    hint=f"missing: {', '.join(missing)}; choose the preset made for this file "
                         f"({', '.join(PRESETS)}) or map columns with --map FIELD=COLUMN")
        for f, (spec, needed) in self.mapped.items():
            missing = [n for n in needed if n not in columns]
            if not missing:
                continue
            if is_template(spec):
                raise InputDataError(f"{self.where}: --map {f}: template {spec!r} names missing "
                                     f"column(s) {missing}", hint=f"columns in the file: {have}")
            raise InputDataError(f"{self.where}: --map {f}: column {spec!r} does not exist",
                                 hint=f"columns in the file: {have}")

    # -- rows ---------------------------------------------------------------------------------
    def map_batch(self, rows: list[dict[str, Any]], columns: set[str] | None = None) -> pa.Table:
        """Records of ``rows`` as an Arrow table.

        ``columns``: the union of the rows' keys, when the caller knows it (a column no row
        has is all None without looking)."""
        n = len(rows)
        if columns is None:
            columns = set().union(*map(set, set(map(tuple, rows))))
        cols: dict[str, list[Any]] = {}
        user_text = False  # input given as plain text: messages built in Arrow directly
        for f in self.schema:
            column = self.column_of.get(f.name)
            if column is not None:
                values = [r.get(column) for r in rows] if column in columns else [None] * n
            else:
                getter = self.getters[f.name]
                values = [getter(r) for r in rows]
            if pa.types.is_list(f.type):
                if set(map(type, values)) == {str}:
                    for v in values:
                        if not v.strip():
                            raise RowError(f"missing value: {f.name} is empty text")
                    user_text = True
                    cols[f.name] = values
                    continue
                cols[f.name] = [coerce(v, f.type, f.name) for v in values]
                continue
            cols[f.name] = column_of(values, f.type, f.name)
        if self.prompts:
            self._prompt_defaults(cols, rows, user_text)
        # the id is derived from the others, so report what it is derived from first
        for f in sorted(self.schema, key=lambda f: f.name == "id"):
            values = cols[f.name]
            if not f.nullable and None in values:
                how = f"--category CATEGORY or --map {f.name}=COLUMN" if f.name == "category" \
                    else f"--map {f.name}=COLUMN"
                raise RowError(f"missing value: required field {f.name!r} has no value"
                               + ("" if f.name not in self.same_name else
                                  f" (no column named {f.name!r}; pass {how})"))
            if f.name in ENUMS:
                allowed = ENUMS[f.name]
                for v in set(values) - set(allowed) - {None}:
                    raise RowError(f"invalid value: {f.name} {v!r} is not one of {', '.join(allowed)}")
        arrays = []
        for f in self.schema:
            values = cols[f.name]
            try:
                if f.name == "input" and user_text:
                    arrays.append(user_messages(values))
                else:
                    arrays.append(pa.array(values, f.type))
            except (pa.ArrowException, UnicodeEncodeError, OverflowError, TypeError) as exc:
                raise RowError(f"invalid value: {f.name}: {str(exc).splitlines()[0][:120]}") from None
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _prompt_defaults(self, cols: dict[str, list[Any]], rows: list[dict[str, Any]],
                         user_text: bool) -> None:
        preset, opts = self.preset, self.opts
        for name, default in (("source", self.source),
                              ("category", opts.category or (preset.category if preset else None)),
                              ("license", opts.license or (preset.license if preset else None))):
            if default is not None:
                cols[name] = [v or default for v in cols[name]]
        fixed = preset.verifier if preset else None
        cols["verifier"] = [v if v is not None else fixed or DEFAULT_VERIFIER.get(c or "", "none")
                            for v, c in zip(cols["verifier"], cols["category"], strict=True)]
        if not user_text:
            for messages in cols["input"]:
                if messages and messages[0]["role"] == "system":
                    raise RowError("system turn: input starts with a system turn; prompts hold no system "
                                   "turn (the generator adds 'detailed thinking on/off')")
        metadata = cols["metadata"]
        if "metadata" in self.same_name:  # no mapping: the columns no field used
            used = self.used | {f for f in self.same_name if f != "metadata"}
            for i, row in enumerate(rows):
                if metadata[i] is None:
                    extra = {c: v for c, v in row.items() if c not in used and v is not None}
                    if "metadata" in extra and len(extra) == 1:
                        continue  # a metadata column that is not an object: coerced above
                    if extra:
                        metadata[i] = dumps_sorted(extra)
        ids = cols["id"]
        if None in ids:
            if user_text:
                user_ids(cols["source"], cols["input"], ids)
                return
            for i, (pid, source, messages) in enumerate(zip(ids, cols["source"], cols["input"], strict=True)):
                if pid is None and messages and source:
                    ids[i] = stable_id(source, messages)


# -- import -----------------------------------------------------------------------------------
@dataclass
class DryRun:
    """What an import would publish: counts only, nothing written."""

    name: str
    kind: str
    rows: int
    rejected: dict[str, int]


class _Counter:
    """Stands in for the version writer on a dry run or a scan: counts, writes nothing."""

    def __init__(self):
        self.rows = 0
        self.rejected: dict[str, int] = {}

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows

    def reject(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.rejected[row["reason"]] = self.rejected.get(row["reason"], 0) + 1


class _Import:
    """One pass over the file: map, check keys, write (or count)."""

    def __init__(self, path: Path, fmt: str, opts: ImportOptions, mapper: RowMapper, sink,
                 progress: Callable[[int], None] | None, drop_keys: set[int] | None = None):
        self.path, self.fmt, self.opts, self.mapper, self.sink = path, fmt, opts, mapper, sink
        self.progress = progress
        self.policy = duplicate_policy(opts)
        # skip: hashes of the keys repeated anywhere in the file (found by a first pass)
        self.drop_keys = None if drop_keys is None else np.array(sorted(drop_keys), dtype=np.int64)
        self.columnar = ColumnarMapper(mapper)
        self.con = connect()
        self.keys = KeyIndex()
        self.columns: dict[str, None] = {}
        self.checked = False
        self.first_error: InputDataError | None = None
        self.first_bad: str | None = None  # where and why the first bad row was bad
        self.duplicates: list[tuple[int, int, str]] = []  # (row, first row, key) of the first few
        self.n_duplicates = 0
        self.duplicate_keys: set[int] = set()
        self.good = 0
        self.rejected = 0
        self.read = 0
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def where(self, number: int) -> str:
        return location(self.fmt, number)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.con.close()

    def _run(self) -> None:
        batches = jsonl_batches(self.path) if self.fmt == "jsonl" else read_batches(self.path, self.fmt)
        for batch in batches:
            if isinstance(batch, LineBatch):
                if self.first_error is None and self.columnar.usable and self._columnar(batch):
                    if self.progress:
                        self.progress(self.good)
                    continue
                batch = batch.rows(self.path)
            self.read += len(batch)
            rows = [(n, r) for n, r in batch if type(r) is dict]
            batch_columns: set[str] = set()
            for shape in set(map(tuple, (r for _, r in rows))):
                self.columns.update(dict.fromkeys(shape))
                batch_columns.update(shape)
            if len(rows) != len(batch):
                for number, row in batch:
                    if isinstance(row, SourceRowError):
                        self.fail_or_skip(number, row.reason, row.raw)
            if not self.checked and self.fmt in ("parquet", "hf", "csv") and rows:
                self.check_columns()  # every row of a columnar file has every column
            if self.first_error is None and rows:
                self.map(rows, batch_columns)
            if self.progress:
                self.progress(self.good)
        self.flush(final=True)
        self.keys = KeyIndex()  # 12 bytes a row, not needed by the publish
        if not self.checked:
            self.check_columns()
        if self.first_error is not None:
            raise self.first_error
        if self.n_duplicates and self.policy == "fail":
            number, first, key = self.duplicates[0]
            more = self.n_duplicates - 1
            raise InputDataError(
                f"{self.path}, {self.where(number)}: duplicate key: {'/'.join(self.mapper.keys)} {key} "
                f"(first seen at {self.where(first)}); {self.n_duplicates:,} row{'s' * bool(more)} in all "
                f"repeat{'s' * (not more)} an earlier row's key ({len(self.duplicate_keys):,} "
                f"key{'s' * (len(self.duplicate_keys) > 1)})",
                hint="--on-duplicate first keeps the first row of each key, --on-duplicate skip "
                     "drops every row of a repeated key; either keeps the others in rejected/")

    def check_columns(self) -> None:
        self.checked = True
        if not self.columns and self.first_bad is not None:  # no row was read at all: say why
            raise InputDataError(f"{self.path}: no row could be read; the first bad one: {self.first_bad}",
                                 hint="fix the file (one JSON object per line for .jsonl)")
        self.mapper.check_columns(self.columns)

    def fail_or_skip(self, number: int, reason: str, raw: str, **extra: Any) -> None:
        if self.first_bad is None:
            self.first_bad = f"{self.where(number)}: {reason}"
        if self.opts.on_error == "fail":
            if self.first_error is None:
                # read on (columns only) so that a mapped column that no row has is named
                self.first_error = InputDataError(
                    f"{self.path}, {self.where(number)}: {reason}",
                    hint="fix the row, or pass --on-error skip to keep it in rejected/")
                self.pending.clear()
                if all(c in self.columns for c in self.mapper.needed):
                    raise self.first_error  # no column to look for in the rest of the file
            return
        self.reject([{"location": self.where(number), "reason": reason.split(":")[0], "detail": reason,
                      "raw": raw[:10_000], **extra}])

    def reject(self, rows: list[dict[str, Any]]) -> None:
        self.rejected += len(rows)
        self.sink.reject(rows)

    def _columnar(self, batch: LineBatch) -> bool:
        """Map a plain batch with Arrow (``thinkforge.curation.columnar``); False: map it row by row."""
        parsed = read_plain(batch)
        table = None if parsed is None else self.columnar.map(parsed, self.con)
        if table is None:
            return False
        self.read += table.num_rows
        self.columns.update(dict.fromkeys(parsed.column_names))

        def raw_of(number: int) -> str:
            i = int(np.searchsorted(batch.numbers, number))
            return _raw(parse_line(self.path, batch.line(i), number, batch.offset + int(batch.starts[i])))

        self.keep(table, batch.numbers, raw_of)
        return True

    def map(self, rows: list[tuple[int, dict[str, Any]]], columns: set[str]) -> None:
        try:
            table = self.mapper.map_batch([r for _, r in rows], columns)
            numbers = [n for n, _ in rows]
        except RowError:
            tables, numbers = [], []
            for number, row in rows:
                try:
                    t = self.mapper.map_batch([row])
                except RowError as exc:
                    self.fail_or_skip(number, str(exc), _raw(row))
                    continue
                tables.append(t)
                numbers.append(number)
            if self.first_error is not None:
                return
            table = pa.concat_tables(tables) if tables else self.mapper.schema.empty_table()
        raws = dict(rows)
        self.keep(table, np.array(numbers, dtype=np.int64), lambda number: _raw(raws[number]))

    def keep(self, table: pa.Table, numbers: np.ndarray, raw_of: Callable[[int], str]) -> None:
        """Check the keys of mapped rows and queue the kept ones for writing."""
        hashes = key_hashes(self.con, table, self.mapper.keys)
        keep = self.check_keys(table, hashes, numbers, raw_of)
        if keep is not None:
            table = table.filter(pa.array(keep, pa.bool_()))
        self.good += table.num_rows
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.flush()

    def check_keys(self, table, hashes: np.ndarray, numbers: np.ndarray, raw_of) -> list[bool] | None:
        drop = None
        if self.drop_keys is not None:
            drop = np.isin(hashes, self.drop_keys)
            if not drop.any():
                drop = None
        first_of = self.keys.add(hashes, numbers)
        if drop is None and all(f is None for f in first_of):
            return None
        keep = [True] * len(hashes)
        key_of = table.select(list(self.mapper.keys)).to_pylist
        keyvals = None
        for i, first in enumerate(first_of):
            skip_all = drop is not None and bool(drop[i])
            if first is None and not skip_all:
                continue
            keep[i] = False
            number = int(numbers[i])
            keyvals = keyvals or key_of()
            key = "/".join(repr(v) for v in keyvals[i].values())
            if first is not None:
                self.n_duplicates += 1
                self.duplicate_keys.add(int(hashes[i]))
                if len(self.duplicates) < 5:
                    self.duplicates.append((number, first, key))
            if self.policy == "fail":
                continue
            where_first = self.where(first if first is not None else number)
            self.reject([{"location": self.where(number), "reason": "duplicate key",
                          "detail": f"duplicate key: {'/'.join(self.mapper.keys)} {key} "
                                    f"(first seen at {where_first})"
                          if first is not None else
                          f"duplicate key: {'/'.join(self.mapper.keys)} {key} repeats later in the "
                          "file (--on-duplicate skip drops every row of the key)",
                          "raw": raw_of(number)[:10_000], "first_seen": where_first}])
        return keep

    def flush(self, final: bool = False) -> None:
        if self.first_error is not None or (self.n_duplicates and self.policy == "fail"):
            self.pending.clear()  # nothing will be published: hold no rows
            self.pending_rows = 0
            return
        if self.pending and (final or self.pending_rows >= WRITE_ROWS
                             or sum(t.nbytes for t in self.pending) > 64 << 20):
            self.sink.write(pa.concat_tables(self.pending))
            self.pending.clear()
            self.pending_rows = 0


def _raw(row: dict[str, Any]) -> str:
    return json.dumps(jsonable(row), ensure_ascii=False)


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
        job = run(sink)
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
    """Writes kept rows as they come and rejected rows in chunks (one schema for all)."""

    def __init__(self, writer):
        self.writer = writer
        self.rejected: list[dict[str, Any]] = []

    def write(self, table: pa.Table) -> None:
        self.writer.write(table)

    def reject(self, rows: list[dict[str, Any]]) -> None:
        self.rejected += rows
        if len(self.rejected) >= 50_000:
            self.close()

    def close(self) -> None:
        if self.rejected:
            self.writer.reject(pa.Table.from_pylist(self.rejected, schema=REJECTED_SCHEMA))
            self.rejected = []


__all__ = ["LABELS", "DryRun", "ImportOptions", "RowError", "RowMapper", "import_file", "parse_map",
           "stable_id"]
