"""What the console shows, as plain JSON-ready dicts: the pages and ``/api/`` share it.

Every function takes the caller's ``Principal``: a dataset outside its scope is answered
exactly like one that does not exist.  Rows are read through the read-only SQL sandbox
(``thinkforge.manifests.sql.run_sql`` with ``allow=``), manifests and run records from
their files; nothing here writes to the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkforge.manifests.duck import quote_ident, quote_literal
from thinkforge.manifests.errors import ForgeError, InputDataError, NotFoundError
from thinkforge.manifests.manifest import Manifest
from thinkforge.manifests.sql import run_sql
from thinkforge.manifests.store import StoreReader
from thinkforge.manifests.training_runs import TrainingRuns

from .tokens import Principal

# filters of the row table: query parameter -> column (SFT rows call the mode `reasoning`)
FILTER_COLUMNS = {"category": "category", "mode": "reasoning", "bucket": "bucket",
                  "verified": "verified"}


@dataclass
class Limits:
    """Per-query limits of the console's SQL (``thinkforge serve`` options)."""

    timeout: float = 10.0
    max_rows: int = 10_000
    memory_limit: str = "1GB"


class _VersionCache:
    """Answers about one version's rows, kept by fingerprint: a version never changes, so a
    page, its filter values or its rejected groups are read once (bounded, least recent out)."""

    def __init__(self, size: int = 512):
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def get(self, key: tuple, compute):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()  # outside the lock: two threads may both compute, both get the same
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


CACHE = _VersionCache()


def jsonable(value: Any) -> Any:
    """A DuckDB/Arrow value as JSON (timestamps as ISO text, bytes as base64, NaN as null)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def _visible(store: StoreReader, who: Principal) -> list[Manifest]:
    return [m for m in store.manifests() if who.allows(m.name)]


def manifest(store: StoreReader, who: Principal, ref: str) -> Manifest:
    """The version ``ref`` names, if the caller may see it (else: not found, as if absent)."""
    name = ref.partition("@")[0]
    if not who.allows(name) or name not in store.names():  # the store's own error lists every name
        raise NotFoundError(f"no dataset named {name!r} in this store",
                            hint="see the catalog for the datasets your token can see")
    return store.resolve(ref)


def _size_status(store: StoreReader, m: Manifest) -> str:
    try:
        store.check_sizes(m)
    except ForgeError as exc:
        return f"damaged: {str(exc).splitlines()[0]}"
    return "ok"


def _signature(store: StoreReader, m: Manifest) -> str:
    """``signed <key id>``, ``unsigned`` or ``bad signature`` (docs/integrity.md)."""
    from thinkforge.manifests.integrity import manifest_digest
    from thinkforge.manifests.signing import check_signature

    try:
        key = check_signature(store.version_dir(m), m, manifest_digest(store.manifest_path(m).read_bytes()))
    except (ForgeError, OSError):
        return "bad signature"
    return f"signed {key}" if key else "unsigned"


def catalog(store: StoreReader, who: Principal, search: str = "") -> list[dict[str, Any]]:
    """Every visible version, newest first per dataset; ``search``: a part of the name."""
    out = []
    latest: dict[str, int] = {}
    versions = [m for m in _visible(store, who) if search.lower() in m.name]
    for m in versions:
        latest[m.name] = max(latest.get(m.name, 0), m.number)
    for m in versions:
        out.append({"name": m.name, "version": m.version, "ref": m.ref, "kind": m.kind,
                    "rows": m.rows, "rejected_rows": m.rejected.rows, "fingerprint": m.fingerprint,
                    "created_at": m.created_at, "step": m.step.type,
                    "is_latest": latest[m.name] == m.number, "status": _size_status(store, m),
                    "signature": _signature(store, m)})
    return sorted(out, key=lambda r: (r["name"], -int(r["version"][1:])))


def version(store: StoreReader, who: Principal, ref: str,
            reports_dir: Path | None = None) -> dict[str, Any]:
    m = manifest(store, who, ref)
    return {"ref": m.ref, "name": m.name, "version": m.version, "kind": m.kind, "rows": m.rows,
            "fingerprint": m.fingerprint, "created_at": m.created_at, "created_by": m.created_by,
            "step": m.step.model_dump(), "schema": m.schema_, "stats": m.stats,
            "provenance": m.provenance,
            "parents": [p.model_dump() if who.allows(p.name) else {"hidden": True} for p in m.parents],
            "rejected": {"rows": m.rejected.rows, "by_reason": m.rejected.by_reason},
            "selection_of": (m.selection.base.ref if who.allows(m.selection.base.name) else "hidden")
            if m.selection else None,
            "status": _size_status(store, m), "signature": _signature(store, m),
            "plots": [p.name for p in report_plots(m, reports_dir)],
            "columns": [c["name"] for c in m.schema_]}


def verify(store: StoreReader, who: Principal, ref: str) -> dict[str, Any]:
    """The full check of ``thinkforge verify`` (sha256 of every file, publish log), without
    its hash cache: the cache is a file in the store, and the console never writes."""
    m = manifest(store, who, ref)
    try:
        store.verify(m, use_cache=False)
    except ForgeError as exc:
        return {"ref": m.ref, "ok": False, "error": str(exc)}
    return {"ref": m.ref, "ok": True, "error": None}


def report_plots(m: Manifest, reports_dir: Path | None) -> list[Path]:
    """The PNG plots of a `thinkforge report` of this version found under ``reports_dir``
    (a folder whose README.md names the version's fingerprint)."""
    if reports_dir is None or not reports_dir.is_dir():
        return []
    for folder in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        card = folder / "README.md"
        try:
            if card.is_file() and m.fingerprint in card.read_text(encoding="utf-8", errors="replace"):
                return sorted((folder / "plots").glob("*.png"))
        except OSError:
            continue
    return []


def _query(store: StoreReader, who: Principal, query: str, limits: Limits,
           limit: int | None = None) -> tuple[list[str], list[list[Any]]]:
    result = run_sql(store, query, limit=limit if limit is not None else limits.max_rows,
                     timeout=limits.timeout, memory_limit=limits.memory_limit, allow=who.allows)
    return result.columns, [[jsonable(v) for v in row] for row in result.rows()]


def _where(m: Manifest, filters: dict[str, str | None]) -> str:
    columns = {c["name"] for c in m.schema_}
    parts = []
    for key, value in filters.items():
        if value in (None, ""):
            continue
        column = FILTER_COLUMNS.get(key)
        if column is None:
            raise InputDataError(f"unknown filter {key!r}", hint=f"filters: {', '.join(FILTER_COLUMNS)}")
        if column not in columns:
            raise InputDataError(f"{m.ref} has no column {column!r} to filter by {key}",
                                 hint=f"its columns: {', '.join(sorted(columns))}")
        if column == "verified":
            if value not in ("true", "false"):
                raise InputDataError(f"verified={value!r}: use true or false")
            parts.append(f"{quote_ident(column)} = {value}")
        else:
            parts.append(f"CAST({quote_ident(column)} AS VARCHAR) = {quote_literal(str(value))}")
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def rows(store: StoreReader, who: Principal, ref: str, limits: Limits, *, offset: int = 0,
         size: int = 50, filters: dict[str, str | None] | None = None) -> dict[str, Any]:
    """One page of a version's rows (in stored order), with the filtered row count."""
    m = manifest(store, who, ref)
    if offset < 0 or not 1 <= size <= 500:
        raise InputDataError(f"page offset={offset} size={size}: offset >= 0, 1 <= size <= 500")
    view, where = quote_ident(m.ref), _where(m, filters or {})

    def read() -> tuple[list[str], list[list[Any]], int]:
        columns, found = _query(store, who, f"SELECT *, count(*) OVER () AS __total FROM {view}{where} "
                                            f"LIMIT {int(size)} OFFSET {int(offset)}", limits)
        if found:
            return columns[:-1], [r[:-1] for r in found], found[0][-1]
        return columns[:-1], [], _query(store, who, f"SELECT count(*) FROM {view}{where}", limits)[1][0][0]

    key = ("rows", str(store.root), m.ref, m.fingerprint, where, offset, size)
    columns, found, total = CACHE.get(key, read)
    return {"ref": m.ref, "columns": columns, "rows": found, "offset": offset, "size": size,
            "total": total, "filters": filters or {}}


def facets(store: StoreReader, who: Principal, ref: str, limits: Limits) -> dict[str, list[str]]:
    """The values each filter column takes (for the row table's select boxes; at most 50)."""
    m = manifest(store, who, ref)
    columns = {c["name"] for c in m.schema_}
    parts = [f"SELECT {quote_literal(key)} AS k, v FROM (SELECT DISTINCT CAST({quote_ident(column)} AS "
             f"VARCHAR) AS v FROM {quote_ident(m.ref)} WHERE v IS NOT NULL ORDER BY v LIMIT 50)"
             for key, column in FILTER_COLUMNS.items() if column in columns]
    if not parts:
        return {}

    def read() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in _query(store, who, " UNION ALL ".join(parts) + " ORDER BY k, v", limits)[1]:
            out.setdefault(key, []).append(value)
        return out

    return CACHE.get(("facets", str(store.root), m.ref, m.fingerprint), read)


def rejected(store: StoreReader, who: Principal, ref: str, limits: Limits,
             examples: int = 3) -> list[dict[str, Any]]:
    """Rejected rows grouped by reason: count and the first ``examples`` rows of each."""
    m = manifest(store, who, ref)
    if not m.rejected.rows:
        return []
    view = quote_ident(m.ref + "/rejected")

    def read() -> list[dict[str, Any]]:
        # window functions run before QUALIFY: __count is the reason's full count
        columns, found = _query(store, who, f"SELECT *, count(*) OVER (PARTITION BY reason) AS __count, "
                                            f"row_number() OVER (PARTITION BY reason) AS __n FROM {view} "
                                            f"QUALIFY __n <= {int(examples)} ORDER BY __count DESC, reason",
                                limits)
        groups: dict[str, dict[str, Any]] = {}
        reason_at = columns.index("reason")
        for row in found:
            group = groups.setdefault(row[reason_at], {"reason": row[reason_at], "count": row[-2],
                                                       "columns": columns[:-2], "examples": []})
            group["examples"].append(row[:-2])
        return list(groups.values())

    return CACHE.get(("rejected", str(store.root), m.ref, m.fingerprint, examples), read)


def pair(store: StoreReader, who: Principal, ref: str, pair_id: str, limits: Limits) -> dict[str, Any]:
    """The ON and OFF answers of one prompt (rows sharing ``pair_id``)."""
    m = manifest(store, who, ref)
    columns = {c["name"] for c in m.schema_}
    if "pair_id" not in columns:
        raise InputDataError(f"{m.ref} is a {m.kind} version without pair_id: it has no ON/OFF pairs",
                             hint="pairs live in SFT versions made by `thinkforge generate sft`")
    names, found = CACHE.get(("pair", str(store.root), m.ref, m.fingerprint, pair_id), lambda: _query(
        store, who, f"SELECT * FROM {quote_ident(m.ref)} WHERE pair_id = {quote_literal(pair_id)} "
                    "LIMIT 10", limits))
    if not found:
        raise NotFoundError(f"{m.ref} has no pair {pair_id!r}", hint="open a pair from the row table")
    answers = [dict(zip(names, r, strict=True)) for r in found]
    by_mode = {a.get("reasoning"): a for a in answers}
    first = answers[0]
    return {"ref": m.ref, "pair_id": pair_id, "input": first.get("input"),
            "ground_truth": first.get("ground_truth"), "category": first.get("category"),
            "on": _answer(by_mode.get("on")), "off": _answer(by_mode.get("off"))}


def _answer(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    from .text import split_reasoning

    reasoning, answer_text = split_reasoning(str(row.get("output") or ""))
    return {"id": row.get("id"), "reasoning": reasoning, "answer_text": answer_text,
            "answer": row.get("answer"), "verified": row.get("verified"),
            "system_prompt": row.get("system_prompt"), "generator": row.get("generator"),
            "output_tokens": row.get("output_tokens"), "finish_reason": row.get("finish_reason")}


def lineage(store: StoreReader, who: Principal, ref: str) -> dict[str, Any]:
    """Ancestors (through manifest parents) and descendants of a version, and the training
    runs that consumed it.  Versions outside the caller's scope appear only as 'hidden'."""
    m = manifest(store, who, ref)
    every = list(store.manifests())
    by_ref = {v.ref: v for v in every}

    def node(ref_: str, depth: int) -> dict[str, Any]:
        v = by_ref.get(ref_)
        if v is None or not who.allows(v.name):
            return {"ref": None if v is not None else ref_, "depth": depth, "hidden": v is not None,
                    "missing": v is None}
        return {"ref": v.ref, "kind": v.kind, "step": v.step.type, "rows": v.rows,
                "fingerprint": v.fingerprint, "depth": depth, "hidden": False, "missing": False}

    def walk(start: Manifest, edges) -> list[dict[str, Any]]:
        out, seen = [], {start.ref}
        stack = [(r, 1) for r in reversed(edges(start))]
        while stack:
            ref_, depth = stack.pop()
            if ref_ in seen:
                continue
            seen.add(ref_)
            out.append(node(ref_, depth))
            v = by_ref.get(ref_)
            if v is not None and who.allows(v.name):
                stack += [(r, depth + 1) for r in reversed(edges(v))]
        return out

    children: dict[str, list[str]] = {}
    for v in every:
        for p in v.parents:
            children.setdefault(p.ref, []).append(v.ref)
    runs = [{"run_id": r.run_id, "method": r.method, "status": r.status, "base_model": r.base_model,
             "base_model_sha256": r.base_model_sha256, "output_dir": r.output_dir, "weights_sha256": r.weights_sha256,
             "created_at": r.created_at, "data": [d.ref for d in r.data]}
            for r in TrainingRuns(store) if m.fingerprint in r.data_fingerprints
            and all(who.allows(d.name) for d in r.data)]
    ancestors = walk(m, lambda v: [p.ref for p in v.parents])
    descendants = walk(m, lambda v: children.get(v.ref, []))
    return {"ref": m.ref, "ancestors": ancestors, "descendants": descendants, "training_runs": runs,
            "graph": graph(m, ancestors, descendants, by_ref)}


def graph(m: Manifest, ancestors: list[dict], descendants: list[dict],
          by_ref: dict[str, Manifest]) -> dict[str, Any]:
    """A layered drawing of the lineage for the SVG on the lineage page: one column per
    generation (ancestors left, the version in the middle, descendants right), an edge per
    parent link between visible versions."""
    column = {m.ref: 0}
    for n in ancestors:
        if n["ref"] and not n["hidden"]:
            column.setdefault(n["ref"], -n["depth"])
    for n in descendants:
        if n["ref"] and not n["hidden"]:
            column.setdefault(n["ref"], n["depth"])
    left = min(column.values())
    rows: dict[int, int] = {}
    nodes = {}
    for ref_, col in sorted(column.items(), key=lambda kv: (kv[1], kv[0])):
        x, y = (col - left) * 230 + 10, rows.get(col, 0) * 60 + 10
        rows[col] = rows.get(col, 0) + 1
        v = by_ref.get(ref_)
        nodes[ref_] = {"ref": ref_, "x": x, "y": y, "kind": v.kind if v else "", "current": ref_ == m.ref}
    edges = [{"x1": nodes[p.ref]["x"] + 200, "y1": nodes[p.ref]["y"] + 20, "x2": n["x"], "y2": n["y"] + 20}
             for n in nodes.values() for p in (by_ref[n["ref"]].parents if n["ref"] in by_ref else [])
             if p.ref in nodes]
    return {"nodes": list(nodes.values()), "edges": edges,
            "width": (max(column.values()) - left + 1) * 230, "height": max(rows.values()) * 60 + 10}


def training_run(store: StoreReader, who: Principal, run_id: str) -> dict[str, Any]:
    """A training run record in full (config, metrics, weights), if it trained only on data
    the caller may see."""
    from thinkforge.manifests.training_runs import RUN_ID_RE

    runs = TrainingRuns(store)
    if not RUN_ID_RE.match(run_id) or not runs.exists(run_id):
        raise NotFoundError(f"no training run {run_id!r}", hint="runs are listed on a version's lineage page")
    record = runs.get(run_id)
    if not all(who.allows(d.name) for d in record.data):
        raise NotFoundError(f"no training run {run_id!r}", hint="runs are listed on a version's lineage page")
    return jsonable(record.model_dump())


def sql(store: StoreReader, who: Principal, query: str, limits: Limits, *, offset: int = 0,
        size: int = 100) -> dict[str, Any]:
    """One page of a read-only query's result (the same sandbox and refusals as the CLI)."""
    if not query.strip():
        raise InputDataError("empty query", hint='for example: SELECT * FROM versions')
    if offset < 0 or not 1 <= size <= 1000 or offset >= limits.max_rows:
        raise InputDataError(f"page offset={offset} size={size}: offset >= 0 and below the row "
                             f"limit ({limits.max_rows}), 1 <= size <= 1000")
    wanted = min(offset + size + 1, limits.max_rows + 1)
    columns, found = _query(store, who, query, limits, limit=wanted)
    end = min(offset + size, limits.max_rows)
    # capped: the result goes on past the row limit (known once a page reaches the limit)
    return {"columns": columns, "rows": found[offset:end], "offset": offset, "size": size,
            "has_more": len(found) > end and end < limits.max_rows,
            "row_limit": limits.max_rows, "capped": len(found) > limits.max_rows}


def sql_table(store: StoreReader, who: Principal, query: str, limits: Limits):
    """The whole result (at most ``max_rows``) as a pyarrow Table, for downloads."""
    if not query.strip():
        raise InputDataError("empty query", hint='for example: SELECT * FROM versions')
    result = run_sql(store, query, limit=limits.max_rows, timeout=limits.timeout,
                     memory_limit=limits.memory_limit, allow=who.allows)
    return result.table()
