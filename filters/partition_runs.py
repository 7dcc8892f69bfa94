"""A Dask partition's kept rows as its runs of base rows less its rejected ones.

A partition split by position (``partitions.position_ranges``) owns runs of the base's
rows; when the filter's judged relation has exactly one row per row of those runs
(``keep_reject(..., every_row=True)``: decontam LEFT JOINs its hits to the rows) and the
kept file would store nothing but positions and sort columns of the base, its kept rows
are the runs less the rejected positions.  Such a partition then writes only its
rejected rows (``__judged`` holds them alone, read from the rows at the verdicts'
positions where the filter names them: ``rows_at``) and tells the merge its runs
(``note_kept_runs``); the merge reads the base's sort columns once, for every run, and
takes the rows no partition rejected (``kept_relation``).  Before, each task read its
every id twice (DuckDB for ``__judged``, pyarrow for a kept file of 5M rows: ~0.5 s per
5M rows on one thread) and the merge read those files again; now the ids are read once,
by the merge's two threads, and the same sorted COPY writes the same bytes.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
from thinkforge.manifests.duck import quote_ident, quote_literal
from thinkforge.manifests.partitions import order_columns
from thinkforge.manifests.selection import ROW, SHARD

# sort column types read from the base as DuckDB reads them into a partition's files
_PLAIN = (pa.string(), pa.int32(), pa.int64())
# positions named in one IN list per shard (``rows_at``); more verdicts read the whole runs
MAX_LISTED = 20_000


def own_runs(store, data, order_by: str, stored: list[str], base_columns: set[str]):
    """This partition's runs of ``data`` when its kept rows can be given as them (no
    stored column, plain sort columns of the base), else None."""
    from thinkforge.manifests.partitions import current

    partition = current()
    runs = partition.ranges.get(data.ref) if partition is not None else None
    columns, _ = order_columns(order_by)
    if not runs or stored or not set(columns) <= base_columns:
        return None
    for path in store.shard_paths(data):
        schema = pq.read_schema(path)
        if any(c not in schema.names or schema.field(c).type not in _PLAIN for c in columns):
            return None
    return runs


def count_rows(con, rejected: str, runs, extra: list[str]):
    """(kept, rejected, the ``extra`` columns the merge must write ``optional``) from the
    table of the rejected rows, or None where a rejected row has no position, or where all
    rows are kept or all rejected (an empty file's columns are what DuckDB planned: those
    partitions write their files the DuckDB way).  The judged rows are the runs' rows
    LEFT JOINed to the verdicts (``keep_reject(every_row=True)``): the rest are kept, and
    each kept row has NULL extras (no verdict), so the table of every row would say they
    may be NULL."""
    dropped, unplaced = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE __shard IS NULL OR __row IS NULL) "
        f"FROM {rejected}").fetchall()[0]
    kept = sum(hi - lo for _, lo, hi in runs) - dropped
    if unplaced or kept <= 0 or not dropped:
        return None
    return kept, dropped, list(extra)


def rows_at(store, data, positions: list[tuple[int, int]]) -> str | None:
    """SQL relation of ``data``'s rows at ``positions`` (shard, row) with ``__shard``,
    ``__row``, as ``source(store, data, positions=True)`` has them: one read per shard
    filtered by an IN list of row numbers, which DuckDB answers by decoding only those rows
    of the row groups that hold them (~0.1 s for 100 rows among 5M ids, a scan of the runs
    0.2 s); None where there are none or too many to list."""
    from thinkforge.manifests.selection import _added_columns

    if not positions or len(positions) > MAX_LISTED or data.selection is not None:
        return None
    by_shard: dict[int, list[int]] = defaultdict(list)
    for shard, row in positions:
        by_shard[int(shard)].append(int(row))
    paths = store.shard_paths(data)
    added = _added_columns(data)
    return "(" + " UNION ALL ".join(
        f"SELECT * EXCLUDE (file_row_number), {shard}::INTEGER AS __shard, "
        f"file_row_number AS __row{', ' + added if added else ''} "
        f"FROM read_parquet({quote_literal(str(paths[shard]))}, file_row_number=true) "
        f"WHERE file_row_number IN ({', '.join(map(str, sorted(set(rows))))})"
        for shard, rows in sorted(by_shard.items())) + ")"


def note_kept_runs(writer, data, runs, order_by: str) -> None:
    """Tell the merge this partition's kept rows are ``runs`` of ``data`` less its rejected
    rows (its kept file is not written)."""
    columns, _ = order_columns(order_by)
    writer.note_kept_runs({"ref": data.ref, "runs": [list(r) for r in runs],
                           "columns": columns})


def kept_relation(store, kept_runs: list[dict], rejected_paths: list[str]) -> str:
    """The kept rows of the partitions that gave them as runs (``note_kept_runs``), with
    the columns their kept files would have had (``SHARD``, ``ROW``, ``__o<i>``): the base
    rows of their runs with no rejected row of any partition at the same position.  Each
    run is read from its shard alone, its shard number a constant: DuckDB then proves the
    positions NOT NULL (``required`` in Parquet, as the local run's table says: the same
    bytes), which it does not for ``file_index`` or through a multi-file read."""
    ref, columns = kept_runs[0]["ref"], kept_runs[0]["columns"]
    if any(k["ref"] != ref or k["columns"] != columns for k in kept_runs):
        raise RuntimeError("partitions gave kept runs of different versions or orders")
    base = store.resolve(ref)
    paths = store.shard_paths(base)
    picked = ", ".join(f"{quote_ident(c)} AS __o{i}" for i, c in enumerate(columns))
    runs: list[list[int]] = []  # adjacent runs (two partitions' parts of a shard) as one
    for shard, lo, hi in sorted(tuple(r) for k in kept_runs for r in k["runs"]):
        if runs and runs[-1][0] == shard and runs[-1][2] == lo:
            runs[-1][2] = hi
        else:
            runs.append([shard, lo, hi])
    reads = []
    for shard, lo, hi in runs:
        whole = lo == 0 and hi == base.files[shard].rows  # no filter to test on each row
        where = "" if whole else f" WHERE file_row_number >= {int(lo)} AND file_row_number < {int(hi)}"
        reads.append(f"SELECT {int(shard)}::INTEGER AS {SHARD}, file_row_number::BIGINT AS {ROW}, "
                     f"{picked} FROM read_parquet({quote_literal(str(paths[shard]))}, "
                     f"file_row_number=true){where}")
    rejected = "read_parquet([" + ", ".join(quote_literal(p) for p in rejected_paths) + "])"
    return (f"(SELECT b.* FROM ({' UNION ALL '.join(reads)}) b ANTI JOIN "
            f"(SELECT {SHARD}, {ROW} FROM {rejected}) r "
            f"ON r.{SHARD} = b.{SHARD} AND r.{ROW} = b.{ROW})")
