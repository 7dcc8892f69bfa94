"""One pass of an import over a file: read in batches, map (Arrow where it is exact, row by
row otherwise), check keys, hand the kept rows to a sink (the version writer, or a counter).

Rows are read, mapped and validated in batches of ``readers.BATCH_ROWS`` and written in
``WRITE_ROWS`` as they go: a plain JSONL batch of prompts is parsed and mapped by Arrow
(``columnar``), a Parquet or Hugging Face batch of the other kinds is mapped by Arrow
(``arrow_map``), and any batch those cannot map exactly goes row by row, with the same
result.  So memory does not grow with the file but for the duplicate check
(``keyindex``): 12 bytes a row (a 64-bit hash of the key and the row's number; 400 MB at
33M rows, freed before the publish).  Two different keys sharing a hash would be taken for
duplicates: at 10M rows the chance is about 3 in a million (n^2 / 2^65).  Columns are those
of every row (a column first seen on row 1,000,000 still lands in ``metadata``; a mapped
column is missing only if no row has it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import InputDataError

from .arrow_map import ArrowMapper
from .columnar import ColumnarMapper, key_hashes, read_plain
from .keyindex import KeyIndex
from .mapper import ImportOptions, RowMapper, duplicate_policy
from .readers import (
    ArrowBatch,
    LineBatch,
    RowError,
    SourceRowError,
    arrow_batches,
    jsonl_batches,
    location,
    parse_line,
    read_batches,
)
from .values import jsonable

WRITE_ROWS = 100_000  # rows gathered before one write (one row group of the shard)


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
        self.arrow = ArrowMapper(mapper)
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
        if self.fmt == "jsonl":
            batches = jsonl_batches(self.path)
        elif self.fmt in ("parquet", "hf") and self.arrow.usable:
            batches = arrow_batches(self.path, self.fmt)
        else:
            batches = read_batches(self.path, self.fmt)
        for batch in batches:
            if isinstance(batch, ArrowBatch):
                if self._arrow(batch):
                    if self.progress:
                        self.progress(self.good)
                    continue
                batch = batch.rows()
            elif isinstance(batch, LineBatch):
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

    def _arrow(self, batch: ArrowBatch) -> bool:
        """Map a Parquet / HF batch with Arrow (``arrow_map``); False: map it row by row."""
        if self.first_error is not None or batch.table.num_rows == 0:
            return False
        self.columns.update(dict.fromkeys(batch.table.column_names))
        if not self.checked:
            self.check_columns()  # every row of a columnar file has every column
        table = self.arrow.map(batch.table)
        if table is None:
            return False
        self.read += table.num_rows
        source = batch.table

        def raw_of(number: int) -> str:
            return _raw(source.slice(number - batch.first, 1).to_pylist()[0])

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
