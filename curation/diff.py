"""Compare two versions of the same kind: rows added, removed and changed by row key."""

from __future__ import annotations

from typing import Any

from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect, quote_ident
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.schemas import ROW_KEYS, schema_for
from thinkforge.manifests.selection import row_relation


def diff_versions(store: DatasetStore, a: Manifest, b: Manifest, examples: int = 5) -> dict[str, Any]:
    if a.kind != b.kind:
        raise ConfigError(f"cannot diff {a.ref} ({a.kind}) with {b.ref} ({b.kind})",
                          hint="diff versions of the same record kind")
    for m in (a, b):
        store.check_sizes(m)
    keys = ROW_KEYS[a.kind]
    key_sql = ", ".join(quote_ident(k) for k in keys)
    con = connect()
    for alias, m in (("a", a), ("b", b)):
        # the row's full content as one hash, keyed by the kind's row key
        con.execute(f"CREATE TEMP VIEW {alias} AS SELECT {key_sql}, md5(CAST(t AS VARCHAR)) AS h "
                    f"FROM {row_relation(store, m, ordered=False)} AS t")
    join = " AND ".join(f"a.{quote_ident(k)} = b.{quote_ident(k)}" for k in keys)

    def count_and_sample(sql: str) -> tuple[int, list]:
        n = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
        rows = con.execute(f"{sql} ORDER BY ALL LIMIT {int(examples)}").fetchall()
        return n, [r[0] if len(r) == 1 else list(r) for r in rows]

    added = count_and_sample(f"SELECT {key_sql} FROM b ANTI JOIN a USING ({key_sql})")
    removed = count_and_sample(f"SELECT {key_sql} FROM a ANTI JOIN b USING ({key_sql})")
    changed = count_and_sample(
        f"SELECT {', '.join(f'a.{quote_ident(k)}' for k in keys)} FROM a JOIN b ON {join} WHERE a.h <> b.h")
    changed_columns = _changed_columns(con, store, a, b, keys, join) if changed[0] else {}
    con.close()
    return {
        "a": a.ref, "b": b.ref, "kind": a.kind, "key": list(keys),
        "rows": {"a": a.rows, "b": b.rows, "delta": b.rows - a.rows},
        "added": added[0], "removed": removed[0], "changed": changed[0],
        "unchanged": b.rows - added[0] - changed[0],
        "changed_columns": changed_columns,
        "examples": {"added": added[1], "removed": removed[1], "changed": changed[1]},
        "stats_delta": _stats_delta(a.stats, b.stats),
    }


def _changed_columns(con, store: DatasetStore, a: Manifest, b: Manifest, keys, join: str
                     ) -> dict[str, int]:
    """Column -> rows (matched by key) whose value differs between the versions."""
    columns = [c for c in schema_for(a.kind).names if c not in keys]
    for alias, m in (("fa", a), ("fb", b)):
        con.execute(f"CREATE TEMP VIEW {alias} AS SELECT * FROM "
                    f"{row_relation(store, m, ordered=False)}")
    counts = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE a.{quote_ident(c)} IS DISTINCT FROM "
                              f"b.{quote_ident(c)})" for c in columns)
        + f" FROM fa a JOIN fb b ON {join}").fetchone()
    return {c: n for c, n in zip(columns, counts, strict=True) if n}


def _stats_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Numeric deltas of the counters both versions have (b minus a)."""
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) or isinstance(vb, dict):
            va, vb = va or {}, vb or {}
            sub = {k: (vb.get(k) or 0) - (va.get(k) or 0) for k in sorted(set(va) | set(vb))
                   if isinstance(va.get(k, 0), (int, float)) and isinstance(vb.get(k, 0), (int, float))
                   and (vb.get(k) or 0) != (va.get(k) or 0)}
            if sub:
                out[key] = sub
        elif isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va != vb:
            out[key] = vb - va
    return out
