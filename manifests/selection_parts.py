"""A selection's publish work done by the Dask partitions that wrote it (issue 27 item 5).

Publishing a selection (``writer.VersionWriter._publish_selection``) checks its positions
(in range, none repeated, whether they ascend), takes the base's row digests at them
(corrected for the stored columns) and counts the base's string columns at the selected
rows.  A merged Dask step did all of it on the driver, after the tasks, over every row
(at 10M rows ~1.8 s of decontam's ~3 s serial part: bench/README.md "dask_scale.py").

Here each partition that owns a contiguous run of base positions (``partitions.position_ranges``:
a plain version split by row position, so its rows' positions are its run) does that work
for its own kept rows (``partition_facts``): range and repeat checks, the rows it takes from
each shard, the digests of its run (the base's, with its rows' stored-column terms xor-ed
in) written to a raw file, the base counts at its rows.  The driver (``combine``) then
needs no bitmap of the base and no read of the base's digests: runs that do not overlap
cannot repeat each other's positions, counts add up, and each row's digest is read from
the run that holds its position, in the merged file's order.  The merged file's
positions are read once (the version's order: the digests' order and whether they
ascend).  Runs that overlap (a split by key hash, where a partition's rows lie anywhere
in the base) are not combined: the publish checks the merged file as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .duck import quote_literal
from .selection import ROW, SELECTION_FILE, SHARD, _h, _ints, _offsets, _xor, gathers


def count_columns(schema, info: dict[str, Any], stored: list[str]) -> list[str]:
    """The base's string columns whose ``by_<column>`` counts come from the base at the
    selected rows (not stored by the selection): ``VersionWriter._base_counts``'s."""
    import pyarrow as pa

    from .stats import COUNT_COLUMNS

    return [c for c in COUNT_COLUMNS if c in schema.names and c in info["base_columns"]
            and c not in stored and pa.types.is_string(schema.field(c).type)]


_BATCH = 1 << 20  # rows per batch: numpy reuses its buffers (fresh pages cost more here)


def partition_facts(con, root: Path, path: Path, info: dict[str, Any], schema,
                    stored: list[str], run: tuple[int, int], out: Path) -> dict[str, Any] | None:
    """The publish's facts of one partition's kept selection file ``path`` whose positions
    lie in its base run ``run`` (first, last position), the run's digests written to
    ``out``; None where the publish would not gather the base's digests in numpy
    (``selection.gathers``: it joins), or a position lies outside the run (the publish
    then checks the merged file whole).  In batches: a task's big fresh arrays cost more
    than the work (5M rows: 2.3 s in one go inside a decontam task, 0.57 s alone)."""
    import pyarrow.parquet as pq

    if not gathers(info, schema.names, stored):
        return None
    files = info["base_files"]
    offsets = np.array(_offsets(files), dtype=np.int64)
    sizes = np.diff(offsets)
    lo, hi = run
    facts: dict[str, Any] = {"rows": 0, "used": [0] * len(files), "repeated": 0, "bad": None,
                             "lo": lo, "hi": hi, "digests": None, "counts": {}}
    if stored:  # the stored columns' digest terms, with each row's position
        batches = con.sql(f"SELECT {SHARD}, {ROW}, {_xor([_h(c) for c in stored])} AS x FROM "
                          f"read_parquet({quote_literal(str(path))})").fetch_record_batch(_BATCH)
    else:
        batches = pq.ParquetFile(path).iter_batches(batch_size=_BATCH, columns=[SHARD, ROW],
                                                    use_threads=False)
    used = np.zeros(len(files), dtype=np.int64)
    seen = np.zeros(hi - lo + 1, dtype=bool)
    terms = []
    n = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        # the messages of selection.scan_positions, which checks a merged file the same way
        if batch.column(0).null_count or batch.column(1).null_count:
            facts["bad"] = f"{SELECTION_FILE}: a position without a shard or row"
            return facts
        shard = _ints(batch.column(0)).astype(np.int64)
        row = _ints(batch.column(1))
        if shard.min() < 0 or shard.max() >= len(files):
            facts["bad"] = f"{SELECTION_FILE}: selection names a shard outside its base"
            return facts
        if row.min() < 0 or (row >= sizes[shard]).any():
            facts["bad"] = f"{SELECTION_FILE}: selection names a row outside its base shard"
            return facts
        local = offsets[shard] + row - lo
        if local.min() < 0 or local.max() > hi - lo:
            return None  # not its own run's rows: the merged file is checked whole
        seen[local] = True
        used += np.bincount(shard, minlength=len(files))
        n += len(local)
        if stored:
            terms.append((local, _ints(batch.column(2)).astype(np.uint64)))
    facts.update(rows=n, used=used.tolist(), repeated=n - int(np.count_nonzero(seen)))
    if not n:
        facts["lo"] = facts["hi"] = None
        return facts
    _write_run_digests(root / info["base_digests"].path, lo, hi, out, terms if stored else None)
    facts["digests"] = str(out)
    columns = count_columns(schema, info, stored)
    if columns:
        from .selection_stats import base_counts

        mask = np.zeros(int(offsets[-1]), dtype=bool)
        mask[lo:hi + 1] = seen
        paths = [root / f.path if u else None for f, u in zip(files, facts["used"], strict=True)]
        facts["counts"] = base_counts(paths, offsets.tolist(), mask, columns)
    return facts


def run_of(files, runs: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """The first and last base position of a partition's rows ``(shard, first, end)``
    (``partitions.position_ranges``), or None (no row)."""
    offsets = _offsets(files)
    if not runs:
        return None
    (s0, first, _), (s1, _, end) = runs[0], runs[-1]
    return offsets[s0] + first, offsets[s1] + end - 1


def _write_run_digests(path: Path, lo: int, hi: int, out: Path, terms) -> None:
    """The base's digests of positions ``lo..hi`` to ``out`` (raw little-endian uint64),
    with each ``(local positions, terms)`` of ``terms`` xor-ed in; read in batches from only
    the row groups of the digests file that hold them, and without stored terms written
    straight from the read buffers."""
    import pyarrow.parquet as pq

    from .errors import IntegrityError

    f = pq.ParquetFile(path)
    groups, start, first = [], 0, None
    for i in range(f.metadata.num_row_groups):
        end = start + f.metadata.row_group(i).num_rows
        if end > lo and start <= hi:
            groups.append(i)
            first = start if first is None else first
        start = end
    if start <= hi:
        raise IntegrityError(f"{path}: {start} digests, the selection names position {hi}")
    run = np.empty(hi - lo + 1, dtype=np.uint64) if terms is not None else None
    with open(out, "wb") as sink:
        at = first  # the position of the batch's first digest
        for batch in f.iter_batches(batch_size=_BATCH, row_groups=groups, columns=["d"],
                                    use_threads=False):
            a, b = max(lo, at), min(hi + 1, at + batch.num_rows)
            if a < b:
                values = _ints(batch.column(0))[a - at:b - at]
                if run is None:
                    sink.write(values.astype(np.dtype("<u8"), copy=False).data)
                else:
                    run[a - lo:b - lo] = values
            at += batch.num_rows
        if run is not None:
            for local, x in terms:
                run[local] ^= x
            sink.write(run.astype(np.dtype("<u8"), copy=False).data)


def combine(facts: list[dict[str, Any]], sel_path: Path, n_files: int,
            offsets: list[int]) -> dict[str, Any] | None:
    """The publish's facts of the merged file ``sel_path`` from its partitions' (None:
    a partition did not make them, or their runs overlap: check the merged file whole).
    Raises nothing itself: ``bad`` and ``repeated`` are for the caller to report."""
    import pyarrow.parquet as pq

    from .errors import IntegrityError

    if not facts or any(f is None for f in facts):
        return None
    bad = next((f["bad"] for f in facts if f["bad"]), None)
    if bad:
        return {"bad": bad}
    runs = sorted((f for f in facts if f["rows"]), key=lambda f: f["lo"])
    if any(a["hi"] >= b["lo"] for a, b in zip(runs, runs[1:], strict=False)):
        return None  # overlapping runs may repeat each other's positions
    used = np.zeros(n_files, dtype=np.int64)
    for f in runs:
        used += np.asarray(f["used"], dtype=np.int64)
    counts: dict[str, dict[str, int]] = {}
    for f in runs:
        for column, found in f["counts"].items():
            into = counts.setdefault(column, {})
            for value, k in found.items():
                into[value] = into.get(value, 0) + k
    counts = {c: {k: found[k] for k in sorted(found)} for c, found in counts.items()}
    for f in facts:  # a partition with no kept row still names the columns it counted
        for column in f["counts"]:
            counts.setdefault(column, {})
    repeated = sum(f["repeated"] for f in runs)
    total = sum(f["rows"] for f in runs)
    f_sel = pq.ParquetFile(sel_path)
    if f_sel.metadata.num_rows != total:
        raise IntegrityError(f"{sel_path}: {f_sel.metadata.num_rows} rows merged, {total} in "
                             "its partitions")
    digests = np.empty(total, dtype=np.uint64)
    ascending = True
    if total:  # the runs laid out at their positions (the gaps between them never read)
        first, last = runs[0]["lo"], runs[-1]["hi"]
        spans = np.empty(last - first + 1, dtype=np.uint64)
        for f in runs:
            with open(f["digests"], "rb") as src:
                got = src.readinto(spans[f["lo"] - first:f["hi"] - first + 1].data.cast("B"))
            if got != 8 * (f["hi"] - f["lo"] + 1):
                raise IntegrityError(f"{f['digests']}: {got // 8} digests, its run has "
                                     f"{f['hi'] - f['lo'] + 1}")
        # in batches, into buffers made once (big fresh arrays cost more than the work)
        at, prev, starts = 0, -1, np.asarray(offsets[:-1], dtype=np.int64) - first
        for batch in f_sel.iter_batches(batch_size=_BATCH, columns=[SHARD, ROW]):
            k = batch.num_rows
            if not k:
                continue
            local = starts[_ints(batch.column(0)).astype(np.int64)]
            local += _ints(batch.column(1))
            if local.min() < 0 or local.max() > last - first:
                raise IntegrityError(f"{sel_path}: a position outside its partitions' runs")
            if ascending:
                ascending = bool(local[0] > prev and (k < 2 or (np.diff(local) > 0).all()))
                prev = int(local[-1])
            np.take(spans, local, out=digests[at:at + k])
            at += k
    # the digests as a buffer for the fingerprint's sha256 (no copy into bytes: ~0.14 s at 10M)
    return {"bad": None, "used": used.tolist(), "ascending": bool(ascending),
            "repeated": repeated, "digests": digests.astype(np.dtype("<u8"), copy=False),
            "counts": counts}
