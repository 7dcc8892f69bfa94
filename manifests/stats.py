"""Summary statistics of a version, computed by DuckDB over its shards at publish time.

What is counted depends on which columns the kind has, so one function serves every kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .duck import connect, quote_ident

COUNT_COLUMNS = ("category", "reasoning", "bucket", "verifier", "source", "finish_reason", "generator")


STAT_COLUMNS = (*COUNT_COLUMNS, "output_tokens", "verified", "correct", "format_ok", "pair_id",
                "pass_rate", "curriculum_batch")
# counts that read two columns of the same row
_PAIRED = (("verified", "reasoning"), ("correct", "reasoning"), ("format_ok", "reasoning"),
           ("pair_id", "reasoning"))


def compute_stats(src: str, schema: pa.Schema, chars_sql: str | None = None, *,
                  memory_limit: str | None = None, temp_directory: Path | None = None,
                  con=None, relation: Callable[[list[str]], str] | None = None,
                  stored: set[str] = frozenset(),
                  counted: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """``src``: SQL relation of the rows (``thinkforge.manifests.selection.row_relation``);
    ``chars_sql``: a relation of ``n`` = length(output) per row, when cheaper than reading
    the text (a selection takes it from its base's digests); ``memory_limit`` and
    ``temp_directory``: DuckDB's bound and where it spills beyond it (the publish's);
    ``con``: a connection to use (and leave open) instead of opening one.

    ``relation(columns)`` (any order) and ``stored``: a selection's rows, read in two parts
    when no count needs a stored column and a base column of the same row: the columns it
    stores from its own file, the others from its base without a join (every stat is a
    count over a set of rows, not a sequence).  ``counted``: ``by_<column>`` counts the
    caller made already (``selection_stats.base_counts``): those columns are not read here,
    unless another count reads them too."""
    names = set(schema.names)
    counted = dict(counted or {})
    own = con is None
    if own:
        con = connect(memory_limit=memory_limit, temp_directory=temp_directory)
    try:
        paired = {c for pair in _PAIRED if set(pair) <= names for c in pair}
        wanted = [c for c in schema.names if c in STAT_COLUMNS
                  and (c not in counted or c in paired)]
        mixed = any(a in names and b in names and ((a in stored) != (b in stored))
                    for a, b in _PAIRED)
        chars = "output" in names and chars_sql is None  # length(output) read from the text
        text = ["output"] if chars else []
        if relation is None or mixed or not stored & set(wanted):
            tables = _rows(con, src if relation is None else relation(wanted + text), wanted,
                           chars, "__rows")
        else:
            own_cols = [c for c in wanted if c in stored]
            base_cols = [c for c in wanted if c not in stored]
            tables = _rows(con, relation(own_cols), own_cols, False, "__srows")
            if base_cols or chars:
                tables.update(_rows(con, relation(base_cols + text), base_cols, chars, "__rows"))
        return _stats(con, tables, names, chars_sql, counted)
    finally:
        con.execute("DROP TABLE IF EXISTS __rows")
        con.execute("DROP TABLE IF EXISTS __srows")
        if own:
            con.close()


def _rows(con, src: str, columns: list[str], with_chars: bool, table: str) -> dict[str, str]:
    """The narrow columns the counts read, in one pass (a selection's rows come from a join:
    joined once, not once per count): {column: table}; "" names the table for the row count."""
    exprs = [quote_ident(c) for c in columns] + (["length(output) AS n"] if with_chars else [])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {', '.join(exprs) or '1 AS one'} "
                f"FROM {src}")
    return {"": table, **{c: table for c in columns}, **({"n": table} if with_chars else {})}


def _stats(con, tables: dict[str, str], names: set[str], chars_sql: str | None,
           counted: dict[str, dict[str, int]]) -> dict[str, Any]:
    def t(column: str) -> str:
        return tables.get(column, tables[""])

    if chars_sql is None and "output" in names:
        chars_sql = f"(SELECT n FROM {t('n')})"
    stats: dict[str, Any] = {"rows": con.execute(f"SELECT count(*) FROM {tables['']}").fetchall()[0][0]}
    for col in COUNT_COLUMNS:
        if col in counted:
            stats[f"by_{col}"] = counted[col]
        elif col in names:
            rows = con.execute(
                f"SELECT coalesce({quote_ident(col)}::VARCHAR, '<null>') AS k, count(*) FROM {t(col)} "
                "GROUP BY k ORDER BY k").fetchall()
            stats[f"by_{col}"] = {k: n for k, n in rows}
    if "output_tokens" in names:
        total, p50, p90, p99, mx = con.execute(
            f"SELECT sum(output_tokens), quantile_cont(output_tokens, 0.5), "
            f"quantile_cont(output_tokens, 0.9), quantile_cont(output_tokens, 0.99), "
            f"max(output_tokens) FROM {t('output_tokens')}").fetchall()[0]
        stats["output_tokens"] = {"total": int(total or 0), "p50": p50, "p90": p90, "p99": p99,
                                  "max": mx}
    if "output" in names:
        p50, p90, mx = con.execute(
            f"SELECT quantile_cont(n, 0.5), quantile_cont(n, 0.9), max(n) FROM {chars_sql}").fetchall()[0]
        stats["output_chars"] = {"p50": p50, "p90": p90, "max": mx}
    for flag in ("verified", "correct", "format_ok"):
        if flag in names:
            group = "reasoning" if "reasoning" in names else "'all'"
            rows = con.execute(
                f"SELECT {group} AS mode, count({flag}) AS checked, "
                f"count(*) FILTER (WHERE {flag}) AS ok FROM {t(flag)} GROUP BY mode ORDER BY mode"
            ).fetchall()
            stats[f"{flag}_rate"] = {m: {"checked": c, "true": n, "rate": (n / c) if c else None}
                                     for m, c, n in rows}
    stats.update(narrow_stats(con, t, names))
    return stats


# the counts that need every row of a group at once (a pair's two modes) or DuckDB's own
# floating-point sum: computed by a narrow scan at publish, not accumulated
NARROW = ("pair_id", "pass_rate", "curriculum_batch")


def narrow_stats(con, t: Callable[[str], str], names: set[str]) -> dict[str, Any]:
    """The ``NARROW`` stats; ``t(column)``: the relation to read ``column`` from."""
    stats: dict[str, Any] = {}
    if "pair_id" in names:  # sft: ON/OFF answers of one prompt and sample share a pair_id
        # min <> max is count(DISTINCT reasoning) > 1 without a distinct set per group
        complete, orphans = con.execute(
            f"SELECT count(*) FILTER (WHERE lo <> hi), count(*) FILTER (WHERE lo = hi) FROM "
            f"(SELECT pair_id, min(reasoning) AS lo, max(reasoning) AS hi FROM {t('pair_id')} "
            "GROUP BY pair_id)").fetchall()[0]
        stats["pairs"] = {"complete": complete, "orphans": orphans}
    if "pass_rate" in names:
        stats["pass_rate_mean"] = con.execute(
            f"SELECT avg(pass_rate) FROM {t('pass_rate')}").fetchall()[0][0]
    if "curriculum_batch" in names:
        stats["curriculum_batches"] = con.execute(
            f"SELECT count(DISTINCT curriculum_batch) FROM {t('curriculum_batch')}").fetchall()[0][0]
    return stats


def quantile_cont(values: np.ndarray, counts: np.ndarray, q: float) -> float | None:
    """DuckDB's ``quantile_cont`` (linear between the two nearest ranks) of the multiset of
    sorted distinct ``values`` with ``counts``."""
    n = int(counts.sum())
    if n == 0:
        return None
    rn = (n - 1) * q
    lo_rank, hi_rank = math.floor(rn), math.ceil(rn)
    ends = np.cumsum(counts)
    lo = float(values[int(np.searchsorted(ends, lo_rank, side="right"))])
    if lo_rank == hi_rank:
        return lo
    hi = float(values[int(np.searchsorted(ends, hi_rank, side="right"))])
    return lo + (hi - lo) * (rn - lo_rank)


class Histogram:
    """Exact counts of each distinct integer (token and character counts have few)."""

    def __init__(self):
        self.counts: dict[int, int] = {}

    def add(self, arr: pa.Array) -> None:
        import pyarrow.compute as pc  # lazily: 45 ms of every step's start

        arr = arr.drop_null()
        if len(arr):
            vc = pc.value_counts(arr)
            for v, c in zip(vc.field(0).to_pylist(), vc.field(1).to_pylist(), strict=True):
                self.counts[v] = self.counts.get(v, 0) + c

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        keys = sorted(self.counts)
        return np.array(keys, dtype=np.int64), np.array([self.counts[k] for k in keys], dtype=np.int64)


class StatsAccumulator:
    """``compute_stats`` of a materialised version, accumulated as its rows are written (one
    pass, no text read again); ``finish`` adds the ``NARROW`` stats from a narrow scan."""

    def __init__(self, schema: pa.Schema):
        self.names = set(schema.names)
        self.rows = 0
        self.by: dict[str, dict[str, int]] = {c: {} for c in COUNT_COLUMNS if c in self.names}
        self.tokens = Histogram() if "output_tokens" in self.names else None
        self.chars = Histogram() if "output" in self.names else None
        self.flags = {f: {} for f in ("verified", "correct", "format_ok") if f in self.names}

    def add(self, table: pa.Table, chars: pa.Array | None = None) -> None:
        """``chars``: length(output) of each row, when the caller has it."""
        import pyarrow.compute as pc  # lazily: 45 ms of every step's start

        self.rows += table.num_rows
        for col, counts in self.by.items():
            arr = table.column(col)
            if not pa.types.is_string(arr.type):
                arr = pc.cast(arr, pa.string())
            _count(counts, pc.fill_null(arr, "<null>"))
        if self.tokens is not None:
            self.tokens.add(table.column("output_tokens"))
        if self.chars is not None:
            self.chars.add(pc.utf8_length(table.column("output")) if chars is None else chars)
        for flag, by_mode in self.flags.items():
            mode = table.column("reasoning") if "reasoning" in self.names else pa.nulls(table.num_rows)
            grouped = pa.table({"m": mode, "f": table.column(flag)}).group_by("m", use_threads=False) \
                .aggregate([("f", "count"), ("f", "sum")])
            for m, checked, ok in zip(grouped["m"].to_pylist(), grouped["f_count"].to_pylist(),
                                      grouped["f_sum"].to_pylist(), strict=True):
                m = "all" if "reasoning" not in self.names else m
                c0, n0 = by_mode.get(m, (0, 0))
                by_mode[m] = (c0 + checked, n0 + (ok or 0))

    def finish(self, narrow: dict[str, Any]) -> dict[str, Any]:
        stats: dict[str, Any] = {"rows": self.rows}
        for col, counts in self.by.items():
            stats[f"by_{col}"] = {k: counts[k] for k in sorted(counts)}
        if self.tokens is not None:
            v, c = self.tokens.arrays()
            stats["output_tokens"] = {"total": int((v * c).sum()),
                                      **{f"p{round(q * 100)}": quantile_cont(v, c, q) for q in (0.5, 0.9, 0.99)},
                                      "max": int(v[-1]) if len(v) else None}
        if self.chars is not None:
            v, c = self.chars.arrays()
            stats["output_chars"] = {"p50": quantile_cont(v, c, 0.5), "p90": quantile_cont(v, c, 0.9),
                                     "max": int(v[-1]) if len(v) else None}
        for flag, by_mode in self.flags.items():
            modes = sorted(by_mode, key=lambda m: (m is None, m or ""))  # NULLS LAST, as ORDER BY
            stats[f"{flag}_rate"] = {m: {"checked": by_mode[m][0], "true": by_mode[m][1],
                                         "rate": (by_mode[m][1] / by_mode[m][0]) if by_mode[m][0] else None}
                                     for m in modes}
        stats.update(narrow)
        return stats


def _count(counts: dict[str, int], arr) -> None:
    import pyarrow.compute as pc  # lazily: 45 ms of every step's start

    vc = pc.value_counts(arr)
    for k, n in zip(vc.field(0).to_pylist(), vc.field(1).to_pylist(), strict=True):
        counts[k] = counts.get(k, 0) + n
