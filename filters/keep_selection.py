"""``StepContext.keep_reject`` as a selection: the kept and rejected rows written as
positions into the input's base shards (plus the columns the step adds or changes), not as
copies of the rows (docs/filters.md, "selections").

One narrow pass over the filter's judged relation, joined to where each input row lives by
its row key (or carrying its position already); the counts checked against the matches
(a kept row that is no input row is an error, a rejected one is kept as a plain rejected
row); inside a Dask partition the files carry the merge's sort columns, unsorted.
"""

from __future__ import annotations

from typing import Any

from thinkforge.manifests import Manifest
from thinkforge.manifests.errors import InputDataError
from thinkforge.manifests.partitions import current as current_partition
from thinkforge.manifests.schemas import ROW_KEYS


def keep_reject_selection(ctx, info: dict[str, Any], data: Manifest, judged: str,
                           columns: list[str], *, order, extra: list[str],
                           rejected_columns: list[str], rejected_order,
                           changed: set[str], positioned: bool = False,
                           wide: str | None = None, table: str | None = None,
                           keyed: bool = True, presorted: bool = False,
                           every_row: bool = False,
                           verdicts: str | None = None) -> tuple[int, int]:
    """keep_reject as positions: one narrow pass over ``judged``, joined to where each
    input row lives by its row key.  ``ctx``: the step's ``base.StepContext`` (not imported
    here: base imports this module).  ``verdicts``: ``judged``'s rows with a ``reason``
    (and maybe others), read without the rest (see ``partition_runs``)."""
    import re

    from thinkforge.manifests.duck import quote_ident
    from thinkforge.manifests.selection import ROW, SHARD, row_relation

    con, q = ctx.con, quote_ident
    keys = list(ROW_KEYS[data.kind])
    base_cols = set(info["base_columns"])
    stored = [c for c in columns if c not in base_cols or c in changed
              or c in info["inherited"]]
    if not positioned:
        ctx.progress.phase("matching rows to base positions")
        partition = current_partition()
        ranges = partition.ranges.get(data.ref) if partition is not None else None
        rows = row_relation(ctx.store, data, positions=True, ordered=False, rows=ranges)
        if ranges is None and partition is not None \
                and partition.keys.get(data.ref, "").isidentifier():
            rows = partition.restrict(data.ref, rows)  # a Dask partition: only its rows
        con.execute("CREATE OR REPLACE TEMP TABLE __pos AS SELECT "
                    + ", ".join(f"{q(k)} AS {q('__k_' + k)}" for k in keys)
                    + f", __shard, __row FROM {rows}")

    def names(order_by: str) -> list[str]:
        return [re.split(r"\s", t.strip(), maxsplit=1)[0].strip('"') for t in order_by.split(",")
                if t.strip()]

    def ordered(order_by: str) -> str:
        return ", ".join("j." + t.strip() for t in order_by.split(",") if t.strip())

    wanted = list(dict.fromkeys([*(keys if keyed else ()), *stored, *names(order[0]), *names(rejected_order[0]),
                                 "reason", *extra,
                                 *(c for c in rejected_columns if c in stored),
                                 *(("__shard", "__row") if positioned else ())]))
    ctx.progress.phase("judging rows")
    # a table (not a view) even when the filter made one already: DuckDB writes a column
    # as required (not null) in Parquet when the table's statistics say it has no NULL,
    # so the selection's bytes depend on it (a Dask merge must give the same bytes); a
    # table the filter made of exactly these rows has those statistics already
    jt = table or "__judged"
    select = "CREATE OR REPLACE TEMP TABLE __judged AS SELECT " + ", ".join(
        q(c) for c in wanted) + " FROM "
    runs = counted = None
    if every_row and positioned and table is None and current_partition() is not None:
        from . import partition_runs  # numpy and pyarrow: imported where they run

        runs = partition_runs.own_runs(ctx.store, data, order[0], stored, base_cols)
    if runs is not None:
        # a Dask partition that owns runs of base rows, one judged row each: only its
        # rejected rows go to ``__judged`` (read at the verdicts' positions, where the
        # filter names them, not every row of the runs), its kept rows are the runs less
        # those: the merge takes them from the base (``partition_runs``)
        con.execute(select + f"{verdicts or judged} WHERE reason IS NOT NULL")
        counted = partition_runs.count_rows(con, jt, runs, list(extra))
    # rows that come in the kept order already (``presorted``): copied to ``__judged`` and
    # written with insertion order kept, no sort (the sorted COPY's bytes: same row groups)
    in_order = presorted and positioned and table is None and counted is None \
        and current_partition() is None
    kept_order_set = in_order
    if in_order:
        con.execute("SET preserve_insertion_order=true")
    if table is None and counted is None:
        con.execute(select + judged)
    if positioned:  # the rows carry their positions: no key join
        join, p = f"FROM {jt} j", "j"
        missing = f"EXISTS (SELECT 1 FROM {jt} u WHERE u.__shard IS NULL AND " + " AND ".join(
            f"u.{q(k)} = j.{q(k)}" for k in keys) + ")"
    else:
        join, p = (f"FROM {jt} j JOIN __pos p ON "
                   + " AND ".join(f"j.{q(k)} = p.{q('__k_' + k)}" for k in keys)), "p"
        missing = "NOT EXISTS (SELECT 1 FROM __pos p WHERE " + " AND ".join(
            f"p.{q('__k_' + k)} = j.{q(k)}" for k in keys) + ")"
    where = " AND j.__shard IS NOT NULL" if positioned else ""
    if counted:  # every row has its position (count_rows)
        kept, dropped, nulls = counted
        matched_kept, matched_dropped = kept, dropped
    elif positioned:  # one scan: every row, and the rows with a position
        kept, dropped, matched_kept, matched_dropped = con.execute(
            "SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS "
            "NOT NULL), count(*) FILTER (WHERE reason IS NULL AND __shard IS NOT NULL), "
            f"count(*) FILTER (WHERE reason IS NOT NULL AND __shard IS NOT NULL) FROM {jt}"
        ).fetchall()[0]
        if not keyed and (kept + dropped > matched_kept + matched_dropped or not matched_kept
                          or current_partition() is not None):
            raise ValueError(f"{ctx.writer.name}: rows without their keys need every row "
                             "positioned, one kept, and no Dask partition")
        if keyed and (not matched_kept or not matched_dropped):
            # an empty file takes its columns' NOT NULL from how the query was planned
            # (DuckDB writes ``optional`` where a filter of one table left no row): the
            # key join against no positions writes the empty file the key-matched path
            # and a Dask merge write
            con.execute("CREATE OR REPLACE TEMP TABLE __pos AS SELECT "
                        + ", ".join(f"{q(k)} AS {q('__k_' + k)}" for k in keys)
                        + ", __shard::INTEGER AS __shard, __row::BIGINT AS __row "
                          f"FROM {jt} LIMIT 0")
    by_key = (f"FROM {jt} j JOIN __pos p ON "
              + " AND ".join(f"j.{q(k)} = p.{q('__k_' + k)}" for k in keys), "p", "")
    # without keys (``keyed=False``) an empty rejected file is written as it comes: the
    # publish drops an empty rejected selection file, so its schema is never kept
    kept_from = by_key if positioned and keyed and not matched_kept else (join, p, where)
    rejected_from = by_key if positioned and keyed and not matched_dropped else (join, p, where)
    kept_path, rejected_path = ctx.writer.select(
        info, stored, rejected_columns, extra)
    if positioned and kept + dropped > matched_kept + matched_dropped \
            and current_partition() is not None:
        # rows without a position (NULL __shard, __row) make DuckDB write ``_row``
        # optional (the WHERE proves ``_shard`` only), in the whole step's files too;
        # this partition's files may have no row to say so: the merge is told
        ctx.writer.note_nullable([ROW])
    if counted and nulls:
        ctx.writer.note_nullable(nulls)
    kept_by, rejected_by = partition_order(ctx.writer, order[0], rejected_order[0])
    # a Dask partition's files are not sorted: the merge sorts their union (by the
    # ``__o<i>`` columns ``_partition_order`` adds) whatever order each is in
    sort = current_partition() is None
    ctx.progress.phase("writing kept rows")  # as positions
    stored_sql = "".join(f", j.{q(c)}" for c in stored)
    rel, at, cond = kept_from
    if counted:
        from . import partition_runs

        partition_runs.note_kept_runs(ctx.writer, data, runs, order[0])
    else:
        in_order = in_order and rel == join  # not the key join of an empty side
        ctx._copy(f"SELECT {at}.__shard::INTEGER AS {SHARD}, {at}.__row::BIGINT AS {ROW}"
                   f"{stored_sql}{kept_by} {rel} WHERE j.reason IS NULL{cond}"
                   + (f" ORDER BY {ordered(order[0])}" if sort and not in_order else ""), [],
                   kept_path, narrow=True)
    if kept_order_set:  # the step's setting back (its other writes ORDER BY)
        con.execute("SET preserve_insertion_order=false")
    ctx.progress.phase("writing rejected rows")
    rej_stored = "".join(f", j.{q(c)}" for c in rejected_columns if c in stored)
    rel, at, cond = rejected_from
    ctx._copy(f"SELECT {at}.__shard::INTEGER AS {SHARD}, {at}.__row::BIGINT AS {ROW}{rej_stored}, "
               f"j.reason{''.join(f', j.{q(c)}' for c in extra)}{rejected_by} {rel} "
               f"WHERE j.reason IS NOT NULL{cond}"
               + (f" ORDER BY {ordered(rejected_order[0])}" if sort else ""), [],
               rejected_path, narrow=True)
    if not positioned:
        kept, dropped = con.execute(
            "SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS "
            f"NOT NULL) FROM {jt}").fetchall()[0]
        matched_kept, matched_dropped = con.execute(
            f"SELECT count(*) FILTER (WHERE j.reason IS NULL), count(*) FILTER (WHERE j.reason "
            f"IS NOT NULL) {join}").fetchall()[0]
    if matched_kept != kept:
        raise InputDataError(f"{ctx.writer.name}: {kept - matched_kept} kept row(s) match no "
                             f"row of {data.ref} by {', '.join(keys)}",
                             hint="a selection step keeps or drops its input's rows")
    if matched_dropped != dropped:
        # rejected rows that are no input row (e.g. rollouts of an unknown prompt): kept
        # as plain rejected rows next to the rejected positions
        ctx.copy_rejected(
            f"SELECT {', '.join([*rejected_columns, 'reason', *extra])} FROM {wide or judged} j "
            f"WHERE reason IS NOT NULL AND {missing}", order_by=rejected_order[0], split_on=None)
    return kept, dropped


def partition_order(writer, kept: str, rejected: str) -> tuple[str, str]:
    """Inside a partition: the sort columns each selection file carries for the merge."""
    from thinkforge.manifests.duck import quote_ident
    from thinkforge.manifests.partitions import order_columns

    if current_partition() is None:
        return "", ""
    (kept_cols, kept_terms), (rej_cols, rej_terms) = order_columns(kept), order_columns(rejected)
    writer.note_order(kept_terms, rej_terms)
    return ("".join(f", j.{quote_ident(c)} AS __o{i}" for i, c in enumerate(kept_cols)),
            "".join(f", j.{quote_ident(c)} AS __o{i}" for i, c in enumerate(rej_cols)))
