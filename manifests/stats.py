"""Summary statistics of a version, computed by DuckDB over its shards at publish time.

What is counted depends on which columns the kind has, so one function serves every kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from .duck import connect, quote_ident

COUNT_COLUMNS = ("category", "reasoning", "bucket", "verifier", "source", "finish_reason", "generator")


def compute_stats(src: str, schema: pa.Schema, chars_sql: str | None = None, *,
                  memory_limit: str | None = None, temp_directory: Path | None = None) -> dict[str, Any]:
    """``src``: SQL relation of the rows (``manifests.selection.row_relation``);
    ``chars_sql``: a relation of ``n`` = length(output) per row, when cheaper than reading
    the text (a selection takes it from its base's digests); ``memory_limit`` and
    ``temp_directory``: DuckDB's bound and where it spills beyond it (the publish's)."""
    names = set(schema.names)
    con = connect(memory_limit=memory_limit, temp_directory=temp_directory)
    # the narrow columns the counts read, in one pass (a selection's rows come from a join:
    # joined once, not once per count)
    wanted = [quote_ident(c) for c in schema.names if c in (*COUNT_COLUMNS, "output_tokens", "verified", "correct",
                                               "format_ok", "pair_id", "pass_rate", "curriculum_batch")]
    if chars_sql is None and "output" in names:
        chars_sql = "(SELECT n FROM __rows)"
        wanted.append("length(output) AS n")
    con.execute(f"CREATE TEMP TABLE __rows AS SELECT {', '.join(wanted) or '1 AS one'} FROM {src}")
    src = "__rows"
    stats: dict[str, Any] = {"rows": con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]}
    for col in COUNT_COLUMNS:
        if col in names:
            rows = con.execute(
                f"SELECT coalesce({quote_ident(col)}::VARCHAR, '<null>') AS k, count(*) FROM {src} "
                "GROUP BY k ORDER BY k").fetchall()
            stats[f"by_{col}"] = {k: n for k, n in rows}
    if "output_tokens" in names:
        total, p50, p90, p99, mx = con.execute(
            f"SELECT sum(output_tokens), quantile_cont(output_tokens, 0.5), "
            f"quantile_cont(output_tokens, 0.9), quantile_cont(output_tokens, 0.99), "
            f"max(output_tokens) FROM {src}").fetchone()
        stats["output_tokens"] = {"total": int(total or 0), "p50": p50, "p90": p90, "p99": p99,
                                  "max": mx}
    if "output" in names:
        chars = chars_sql or f"(SELECT length(output) AS n FROM {src})"
        p50, p90, mx = con.execute(
            f"SELECT quantile_cont(n, 0.5), quantile_cont(n, 0.9), max(n) FROM {chars}").fetchone()
        stats["output_chars"] = {"p50": p50, "p90": p90, "max": mx}
    for flag in ("verified", "correct", "format_ok"):
        if flag in names:
            group = "reasoning" if "reasoning" in names else "'all'"
            rows = con.execute(
                f"SELECT {group} AS mode, count({flag}) AS checked, "
                f"count(*) FILTER (WHERE {flag}) AS ok FROM {src} GROUP BY mode ORDER BY mode"
            ).fetchall()
            stats[f"{flag}_rate"] = {m: {"checked": c, "true": t, "rate": (t / c) if c else None}
                                     for m, c, t in rows}
    if "pair_id" in names:  # sft: ON/OFF answers of one prompt and sample share a pair_id
        complete, orphans = con.execute(
            f"SELECT count(*) FILTER (WHERE n > 1), count(*) FILTER (WHERE n = 1) FROM "
            f"(SELECT pair_id, count(DISTINCT reasoning) AS n FROM {src} GROUP BY pair_id)"
        ).fetchone()
        stats["pairs"] = {"complete": complete, "orphans": orphans}
    if "pass_rate" in names:
        stats["pass_rate_mean"] = con.execute(f"SELECT avg(pass_rate) FROM {src}").fetchone()[0]
    if "curriculum_batch" in names:
        stats["curriculum_batches"] = con.execute(
            f"SELECT count(DISTINCT curriculum_batch) FROM {src}").fetchone()[0]
    con.close()
    return stats
