"""Rollouts counted per run of equal prompt ids: a read and a ``reduceat``, not a hash aggregate.

Every generator writes a prompt's rollouts next to each other, so the rollouts' ``prompt_id``
column is a sequence of runs.  Read as a Parquet dictionary (one small dictionary per row
group), a run is a stretch of equal codes; summing ``rollouts / known / correct`` per run
is one linear pass in numpy.  Nothing here assumes the grouping: rollouts in any order give
more runs, several runs of a prompt are summed by the caller's ``GROUP BY``, and the sums
are the same in every case (rows not grouped at all, a run a row, are left to DuckDB).

The counts match the SQL ``count(*)``, ``count(correct)``, ``count(*) FILTER (WHERE
correct)`` per ``prompt_id`` (``reasoning``: only rows of that mode, as ``WHERE reasoning =
?``), in BIGINT.  ``counts_by_runs`` returns None where the runs do not apply (a column
missing or of another type, a NULL prompt id): the caller keeps its SQL.

No ``to_numpy`` / ``pa.array(ndarray)`` / ``pyarrow.compute`` on the common path: the first
of them imports pandas (~0.2 s a process), the last its kernels (~0.17 s).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from thinkforge.manifests.arrow_numpy import bits, from_numpy
from thinkforge.manifests.arrow_numpy import ints as _ints

COUNT_COLUMNS = ("prompt_id", "n_rollouts", "n_samples", "n_correct")
_STRING = (pa.string(),)
# row groups per read: few enough calls, small enough pieces for the threads to share
_GROUPS_PER_TASK = 4


class _NotRuns(Exception):
    """The rows cannot be counted here (the caller's SQL counts them)."""


@dataclass
class RunCounts:
    """Counts per run, in row order, equal neighbours merged: ``table`` (COUNT_COLUMNS; a
    prompt may have several rows); ``generators``: the distinct ``generator`` values seen
    (all rows), None if not asked."""

    table: pa.Table
    generators: set | None = None


def _valid(a: pa.Array) -> np.ndarray | None:
    """1 where ``a`` is not NULL (None: no NULL)."""
    return bits(a.buffers()[0], a.offset, len(a)) if a.null_count else None


def _int64(values: np.ndarray) -> pa.Array:
    return from_numpy(np.asarray(values, dtype=np.int64))


def _code(dictionary: pa.Array, value: str) -> int:
    """``value``'s code in a (small) dictionary, -1 when absent."""
    values = dictionary.to_pylist()
    return values.index(value) if value in values else -1


def _batch_runs(batch: pa.RecordBatch, reasoning: str | None, generators: set | None):
    """(ids, n_rollouts, n_samples, n_correct) of one batch's runs, None if no row."""
    ids = batch.column("prompt_id")
    if ids.null_count:
        raise _NotRuns("a NULL prompt id")
    codes = _ints(ids.indices)
    correct = batch.column("correct")
    right = bits(correct.buffers()[1], correct.offset, len(correct))
    known = _valid(correct)
    if known is not None:
        right = right & known  # a NULL's value bit is undefined
    if generators is not None:
        gen = batch.column("generator")
        gen_valid = _valid(gen)
        gen_codes = _ints(gen.indices) if gen_valid is None else _ints(gen.indices)[gen_valid == 1]
        used = np.flatnonzero(np.bincount(gen_codes, minlength=len(gen.dictionary)))
        values = gen.dictionary.to_pylist()
        generators.update(values[i] for i in used)
        if gen_valid is not None and len(gen_codes) < len(gen):
            generators.add(None)
    if reasoning is not None:
        mode = batch.column("reasoning")
        keep = _ints(mode.indices) == _code(mode.dictionary, reasoning)
        if mode.null_count:
            keep &= _valid(mode).astype(bool)
        codes, right = codes[keep], right[keep]
        known = None if known is None else known[keep]
    n = len(codes)
    if n == 0:
        return None
    starts = np.flatnonzero(codes[1:] != codes[:-1])
    if 2 * len(starts) > n:  # not grouped by prompt: a run a row, DuckDB's aggregate is better
        raise _NotRuns("rollouts not grouped by prompt")
    starts += 1
    starts = np.concatenate(([0], starts))
    n_rollouts = np.diff(starts, append=n)
    n_samples = n_rollouts if known is None else np.add.reduceat(known, starts, dtype=np.int64)
    n_correct = np.add.reduceat(right, starts, dtype=np.int64)
    heads = codes[starts]
    dictionary = ids.dictionary
    if len(heads) == len(dictionary) and np.array_equal(heads, np.arange(len(dictionary))):
        names = dictionary  # grouped, dictionary in order of appearance: no gather
    else:
        names = dictionary.take(_int64(heads))
    return names, n_rollouts, n_samples, n_correct


def counts_by_runs(paths: list[str], *, rows: list[tuple[int, int, int]] | None = None,
                   reasoning: str | None = None, generators: bool = False,
                   threads: int = 1) -> RunCounts | None:
    """Counts per run of the rollouts in the Parquet shards ``paths`` (``rows``: only those
    ``(shard, first, end)`` ranges, as ``partitions.row_group_ranges`` gives them), on
    ``threads`` threads; None where the runs do not apply."""
    needed = {"prompt_id": _STRING, "correct": (pa.bool_(),)}
    if reasoning is not None:
        needed["reasoning"] = _STRING
    if generators:
        needed["generator"] = _STRING
    for path in {paths[s] for s, _, _ in rows} if rows is not None else paths:
        schema = pq.read_schema(path)
        if any(schema.get_field_index(c) < 0 or schema.field(c).type not in types
               for c, types in needed.items()):
            return None
    jobs = _jobs(paths, rows)
    seen: set | None = set() if generators else None

    def work(job):
        path, meta, groups, lo, hi = job
        file = pq.ParquetFile(path, metadata=meta, read_dictionary=[
            c for c in needed if c != "correct"])
        table = file.read_row_groups(groups, columns=list(needed), use_threads=False)
        if lo > 0 or hi < table.num_rows:
            table = table.slice(lo, hi - lo)
        mine: set | None = set() if generators else None
        runs = [r for b in table.to_batches() if (r := _batch_runs(b, reasoning, mine))]
        return runs, mine

    try:
        if threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(threads) as pool:
                done = list(pool.map(work, jobs))
        else:
            done = [work(j) for j in jobs]
    except _NotRuns:
        return None
    runs = [r for part, _ in done for r in part]
    if seen is not None:
        for _, mine in done:
            seen |= mine
    return RunCounts(_merged(runs), generators=seen)


def _jobs(paths: list[str], rows: list[tuple[int, int, int]] | None):
    """(path, metadata, row groups, first, end): groups of row groups to read, in row order;
    ``first``/``end`` cut the rows read to a range (rows relative to the groups' start)."""
    wanted = rows if rows is not None else [(i, 0, None) for i in range(len(paths))]
    metas: dict[str, pq.FileMetaData] = {}
    jobs = []
    for shard, lo, hi in wanted:
        path = paths[shard]
        meta = metas.get(path) or metas.setdefault(path, pq.read_metadata(path))
        hi = meta.num_rows if hi is None else hi
        start = 0
        groups: list[tuple[int, int]] = []  # (group, its first row) overlapping [lo, hi)
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if start < hi and start + n > lo:
                groups.append((g, start))
            start += n
        for i in range(0, len(groups), _GROUPS_PER_TASK):
            part = groups[i:i + _GROUPS_PER_TASK]
            first = part[0][1]
            jobs.append((path, meta, [g for g, _ in part], max(lo - first, 0), hi - first))
    return jobs


def _merged(runs) -> pa.Table:
    """One table of the batches' runs in order, a run cut by a batch edge joined again."""
    if not runs:
        empty = {"prompt_id": pa.array([], pa.string())}
        empty.update({c: _int64(np.zeros(0)) for c in COUNT_COLUMNS[1:]})
        return pa.table(empty)
    names, sums, last = [], [[], [], []], None
    for ids, *counts in runs:
        if last is not None and ids[0].as_py() == last:
            for column, values in zip(sums, counts, strict=True):
                column[-1] = column[-1].copy()
                column[-1][-1] += values[0]
            ids, counts = ids.slice(1), [v[1:] for v in counts]
        if len(ids):
            names.append(ids)
            for column, values in zip(sums, counts, strict=True):
                column.append(values)
            last = ids[-1].as_py()
    return pa.table({"prompt_id": pa.concat_arrays(names),
                     **{c: _int64(np.concatenate(v))
                        for c, v in zip(COUNT_COLUMNS[1:], sums, strict=True)}})


def first_generators(seen) -> list:
    """What ``SELECT DISTINCT generator ... ORDER BY 1 LIMIT 50`` answers: the first 50
    distinct values in byte order (a str's code point order is its UTF-8 byte order), NULL
    last."""
    return (sorted(g for g in seen if g is not None) + ([None] if None in seen else []))[:50]


def beside_prompts(runs: pa.Table, id_paths: list[str], shard_rows: list[int]) -> pa.Table | None:
    """The runs as one row per prompt row, ``id, __shard, __row`` and the counts, when the
    runs are the prompts' rows in position order, one run each (the generators write every
    prompt's rollouts in the prompts' order); None otherwise.  The prompt ids are unique
    (a version's row keys), so the runs' are, and a prompt's counts need no aggregate and
    no join.  ``id_paths``: the prompts' shards, ``shard_rows`` their row counts."""
    if runs.num_rows != sum(shard_rows) or runs.num_rows == 0:
        return None
    # ParquetFile, not read_table: that one imports pyarrow.dataset (~0.2 s a process)
    ids = [chunk for path in id_paths
           for chunk in pq.ParquetFile(path).read(columns=["id"], use_threads=False).column(0).chunks]
    ids = pa.concat_arrays(ids) if len(ids) != 1 else ids[0]
    names = runs.column("prompt_id")
    names = pa.concat_arrays(names.chunks) if names.num_chunks != 1 else names.chunk(0)
    if ids.type != names.type or not ids.equals(names):
        return None
    shard = np.repeat(np.arange(len(shard_rows), dtype=np.int32), shard_rows)
    row = np.arange(runs.num_rows, dtype=np.int64) - np.repeat(
        np.cumsum([0, *shard_rows[:-1]]), shard_rows)
    return pa.table({"id": ids, "__shard": from_numpy(shard), "__row": _int64(row),
        **{c: runs.column(c) for c in COUNT_COLUMNS[1:]}})


def merge_in_order(tables: list[pa.Table]) -> pa.Table:
    """Runs tables of consecutive rows (the Dask counts tasks', in task order) as one, a
    prompt whose rollouts straddle two tables joined again."""
    runs = []
    for t in tables:
        for batch in t.to_batches():
            if batch.num_rows:
                ids = batch.column("prompt_id")
                runs.append((ids if ids.type == pa.string() else ids.cast(pa.string()),
                             *(_ints(batch.column(c)) for c in COUNT_COLUMNS[1:])))
    return _merged(runs)
