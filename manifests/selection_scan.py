"""A selection publish's array work on every core it may use: the position check, the read of
the base's row digests and the gather of the digests at the positions.

At 10M rows these were ~1 s of one core (bench/README.md, dask_scale "Where the time goes
at 10M"), on a driver whose other core sat idle: the tasks were done.  Here each is cut
into parts of ~1M rows run by a small thread pool (pyarrow's decode and numpy's big
operations release the GIL), and the base's digests are read while the positions are
checked.  The pool has as many threads as the publish's DuckDB connection (``publish_pool``):
a single-thread Dask worker starts none, its one core runs everything in turn, as before.

The results do not depend on the threads: every part writes its own slice of the positions
and the digests, and what the parts find is combined in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .arrow_numpy import ints
from .duck import connection_threads

SHARD, ROW = "_shard", "_row"  # a selection file's position columns
# rows per part (~2 MiB of positions; three of the store's 122,880-row groups): a part is
# one thread's work, so a selection of 750k rows (a pass rate's pool at 1M prompts) is
# three parts on two threads, not one part on one thread as at 1M rows a part
PART_ROWS = 1 << 18
MAX_THREADS = 8  # the work is memory bound: more threads than this buy nothing


@contextmanager
def publish_pool(con) -> Iterator[Any]:
    """A thread pool with the threads of ``con`` (DuckDB's ``threads`` setting, at most
    ``MAX_THREADS``), or None for a single-thread connection: a single-thread Dask worker
    that ran busy extra threads would take a core another worker owns."""
    threads = connection_threads(con)
    if threads <= 1:
        yield None
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(threads, MAX_THREADS), thread_name_prefix="publish") as pool:
        yield pool


def each(pool, fn: Callable, items: Iterable) -> list:
    """``[fn(item) ...]`` in order, on ``pool``'s threads when there is one; the first
    failure in item order is raised."""
    return list(pool.map(fn, items) if pool is not None else map(fn, items))


def _parts(group_rows: list[int]) -> list[tuple[int, list[int]]]:
    """Consecutive row groups in parts of about ``PART_ROWS`` rows: (first row, groups)."""
    parts: list[tuple[int, list[int]]] = []
    first = size = 0
    for g, n in enumerate(group_rows):
        if not parts or size >= PART_ROWS:
            parts.append((first, []))
            size = 0
        parts[-1][1].append(g)
        first += n
        size += n
    return parts


def _layout(path: Path) -> tuple[int, list[tuple[int, list[int]]], list[int]]:
    """A Parquet file's rows, its parts and the rows of each row group (from its footer)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    return meta.num_rows, _parts(rows), rows


def _read(path: Path, groups: list[int], columns: list[str], expected: int):
    """Row groups of ``path`` as a Table (each part opens the file: a reader is not shared
    between threads), checked to hold the rows its footer says."""
    import pyarrow.parquet as pq

    from .errors import IntegrityError

    table = pq.ParquetFile(path).read_row_groups(groups, columns=columns, use_threads=False)
    if table.num_rows != expected:
        raise IntegrityError(f"{path}: {table.num_rows} rows read, {expected} in its footer")
    return table


def scan_positions(path: Path, base_files: list, keep: bool = False, pool=None
                   ) -> tuple[list[int], bool, int, Any, Any]:
    """One pass over a selection file's positions: the rows it takes from each base shard,
    whether its positions strictly increase (version order = base order), how many rows
    repeat a position, the marks themselves (numpy bool, one per base row: the selected
    rows, which the stats count without a join: ``selection_stats.py``) and, with ``keep``,
    each row's position in the whole base in file order (numpy int64, for
    ``selection_digests``; else None).  A shard or row outside the base is an InputDataError.

    Parts run on ``pool``: each marks its rows (two parts marking one row both write True)
    and says where its positions start and end; the order across parts and the repeats
    (rows read less rows marked) are decided once all are done."""
    import numpy as np

    from .errors import InputDataError

    n_files = len(base_files)
    rows = np.array([f.rows for f in base_files], dtype=np.int64)
    starts = np.zeros(n_files, dtype=np.int64)
    np.cumsum(rows[:-1], out=starts[1:])
    seen = np.zeros(int(rows.sum()), dtype=bool)
    total, parts, group_rows = _layout(path)
    kept = np.empty(total, dtype=np.int64) if keep else None
    unordered = []  # appended to by the first part whose own positions do not increase

    def check(part: tuple[int, list[int]]) -> tuple[Any, list[tuple[int, int]]]:
        first, groups = part
        table = _read(path, groups, [SHARD, ROW], sum(group_rows[g] for g in groups))
        used = np.zeros(n_files, dtype=np.int64)
        bounds = []
        at = first
        for batch in table.to_batches():  # the two columns cut at the same rows
            if batch.column(0).null_count or batch.column(1).null_count:
                raise InputDataError(f"{path.name}: a position without a shard or row")
            shard, row = ints(batch.column(0)), ints(batch.column(1))
            if not len(row):
                continue
            if shard.min() < 0 or shard.max() >= n_files:
                raise InputDataError(f"{path.name}: selection names a shard outside its base")
            shard = shard.astype(np.int64, copy=False)
            if row.min() < 0 or (row >= rows[shard]).any():
                raise InputDataError(f"{path.name}: selection names a row outside its base shard")
            used += np.bincount(shard, minlength=n_files)
            pos = kept[at:at + len(row)] if kept is not None else np.empty(len(row), np.int64)
            np.add(starts[shard], row, out=pos)
            at += len(row)
            if not unordered and not (pos[1:] > pos[:-1]).all():
                unordered.append(first)
            bounds.append((int(pos[0]), int(pos[-1])))
            seen[pos] = True
        return used, bounds

    used = np.zeros(n_files, dtype=np.int64)
    bounds: list[tuple[int, int]] = []
    for part_used, part_bounds in each(pool, check, parts):
        used += part_used
        bounds += part_bounds
    ascending = not unordered and all(b[0] > a[1] for a, b in zip(bounds, bounds[1:], strict=False))
    repeated = total - int(np.count_nonzero(seen))  # a repeat marks no new row
    return used.tolist(), ascending, repeated, seen, kept


def read_digests(path: Path, pool=None):
    """The ``d`` column of a digests file as one numpy array, its parts read on ``pool``
    straight into their place (no concatenation).  ``ParquetFile``, not ``read_table``:
    that goes through pyarrow.dataset, which imports pandas (~0.3 s in a fresh process)."""
    import numpy as np
    import pyarrow.parquet as pq

    total, parts, group_rows = _layout(path)
    dtype = np.dtype(pq.ParquetFile(path).schema_arrow.field("d").type.to_pandas_dtype())
    out = np.empty(total, dtype=dtype)

    def read(part: tuple[int, list[int]]) -> None:
        first, groups = part
        at = first
        for chunk in _read(path, groups, ["d"], sum(group_rows[g] for g in groups)).column(0).chunks:
            out[at:at + len(chunk)] = ints(chunk)
            at += len(chunk)

    each(pool, read, parts)
    return out


def take(base, positions, pool=None):
    """``base[positions]``, in parts on ``pool``, written over ``positions`` (the caller
    gives them up) when the two have one item size: a fresh array of 80 MB at 10M rows cost
    0.05-0.1 s in first touches of its pages.  ``positions`` are in range (``scan_positions``
    checked them against the base, whose digests the caller counted)."""
    import numpy as np

    same = base.dtype.itemsize == positions.dtype.itemsize and positions.flags.c_contiguous
    out = positions.view(base.dtype) if same else np.empty(len(positions), dtype=base.dtype)

    def gather(first: int) -> None:
        part = slice(first, first + PART_ROWS)
        out[part] = base[positions[part]]  # read whole before written: in place is safe

    each(pool, gather, range(0, len(positions), PART_ROWS))
    return out
