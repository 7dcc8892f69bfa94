"""Import rows from files into a new version of any record kind (DESIGN §6).

A field of the target schema gets its value from, in order: ``--map FIELD=COLUMN`` (or a
template ``--map FIELD="{COL1}\\n\\n{COL2}"``), the preset, a source column of the same
name, then a default (``--category``, ``--license``, the source name, a stable id).  For
``prompts``, source columns that no field used are kept in ``metadata`` (JSON), so nothing
from the source row is lost.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from manifests import DatasetStore, Manifest
from manifests.errors import ConfigError, InputDataError
from manifests.manifest import sha256_file
from manifests.schemas import ENUMS, ROW_KEYS, schema_for
from manifests.store import validate_name

from .presets import PRESETS, Preset
from .readers import SourceRowError, detect_format, read_rows

Getter = Callable[[dict[str, Any]], Any]
DEFAULT_VERIFIER = {"math": "math", "code": "code", "instruction_following": "ifeval"}


class RowError(Exception):
    """A problem with one source row: fatal with --on-error fail, rejected with skip."""


@dataclass
class ImportOptions:
    name: str
    kind: str = "prompts"
    preset: str | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    license: str | None = None
    source: str | None = None
    on_error: str = "fail"


def parse_map(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        target, sep, spec = item.partition("=")
        if not sep or not target or not spec:
            raise ConfigError(f"--map {item!r} is not FIELD=COLUMN or FIELD=\"{{COL}} template\"",
                              hint="e.g. --map input=question --map ground_truth=answer")
        mapping[target.strip()] = spec
    return mapping


def _getter(spec: str, columns: list[str], where: str) -> Getter:
    """A column as it is, or a template filled from several columns."""
    names = [f for _, f, _, _ in string.Formatter().parse(spec) if f is not None]
    if not names:
        if spec not in columns:
            raise InputDataError(f"{where}: column {spec!r} does not exist",
                                 hint=f"columns in the file: {', '.join(columns)}")
        return lambda row: row.get(spec)
    missing = [n for n in names if n not in columns]
    if missing:
        raise InputDataError(f"{where}: template {spec!r} names missing column(s) {missing}",
                             hint=f"columns in the file: {', '.join(columns)}")
    return lambda row: spec.format_map({n: "" if row.get(n) is None else row.get(n) for n in names})


def _coerce(value: Any, type_: pa.DataType, column: str) -> Any:
    """Bring one JSON/CSV value to the schema's type, or raise RowError saying why."""
    if value is None:
        return None
    kind = type(value).__name__
    if pa.types.is_string(type_):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if column == "metadata" and isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        raise RowError(f"wrong type: {column}: expected text, got {kind} {str(value)[:60]!r}")
    if pa.types.is_boolean(type_):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise RowError(f"wrong type: {column}: expected true/false, got {kind} {str(value)[:60]!r}")
    if pa.types.is_integer(type_):
        if isinstance(value, bool):
            raise RowError(f"wrong type: {column}: expected an integer, got a boolean")
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise RowError(f"wrong type: {column}: expected an integer, got {kind} {str(value)[:60]!r}")
    if pa.types.is_floating(type_):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value) if isinstance(value, str) else _bad(column, "a number", value)
        except ValueError:
            raise RowError(f"wrong type: {column}: expected a number, got {value[:60]!r}") from None
    if pa.types.is_list(type_):  # chat messages
        return _messages(value, column)
    raise RowError(f"wrong type: {column}: unsupported type {type_}")


def _bad(column: str, expected: str, value: Any):
    raise RowError(f"wrong type: {column}: expected {expected}, got {type(value).__name__} {str(value)[:60]!r}")


def _messages(value: Any, column: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError(f"missing value: {column} is empty text")
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    _bad(column, "text or a list of {role, content} messages", value)


def stable_id(source: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps([source, messages], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RowMapper:
    def __init__(self, opts: ImportOptions, preset: Preset | None, columns: list[str], where: str):
        self.opts, self.preset = opts, preset
        self.schema = schema_for(opts.kind)
        unknown = [f for f in opts.mapping if f not in self.schema.names]
        if unknown:
            raise ConfigError(f"--map names unknown field(s) {unknown} of kind {opts.kind}",
                              hint=f"fields: {', '.join(self.schema.names)}")
        self.getters: dict[str, Getter] = {}
        used: set[str] = set()
        for f in self.schema.names:
            if f in opts.mapping:
                self.getters[f] = _getter(opts.mapping[f], columns, f"{where}: --map {f}")
                used |= {n for _, n, _, _ in string.Formatter().parse(opts.mapping[f]) if n} \
                    or {opts.mapping[f]}
            elif preset and f in preset.fields:
                self.getters[f] = preset.fields[f]
                used |= set(preset.uses)
            elif f in columns:
                self.getters[f] = (lambda c: lambda row: row.get(c))(f)
                used.add(f)
        self.extra_columns = [c for c in columns if c not in used]
        self.source = opts.source or (preset.source if preset else None)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for f in self.schema:
            getter = self.getters.get(f.name)
            value = getter(row) if getter else None
            out[f.name] = _coerce(value, f.type, f.name)
        if self.opts.kind in ("prompts", "rl_pool"):
            self._prompt_defaults(out, row)
        # the id is derived from the others, so report what it is derived from first
        for f in sorted(self.schema, key=lambda f: f.name == "id"):
            if out[f.name] is None and not f.nullable:
                how = f"--category CATEGORY or --map {f.name}=COLUMN" if f.name == "category" \
                    else f"--map {f.name}=COLUMN"
                raise RowError(f"missing value: required field {f.name!r} has no value"
                               + ("" if f.name in self.getters else
                                  f" (no column named {f.name!r}; pass {how})"))
            if f.name in ENUMS and out[f.name] is not None and out[f.name] not in ENUMS[f.name]:
                raise RowError(f"invalid value: {f.name} {out[f.name]!r} is not one of {', '.join(ENUMS[f.name])}")
        return out

    def _prompt_defaults(self, out: dict[str, Any], row: dict[str, Any]) -> None:
        preset = self.preset
        out["source"] = out["source"] or self.source
        out["category"] = out["category"] or self.opts.category or (preset.category if preset else None)
        if out["verifier"] is None:
            out["verifier"] = (preset.verifier if preset else None) or \
                DEFAULT_VERIFIER.get(out["category"] or "", "none")
        out["license"] = out["license"] or self.opts.license or (preset.license if preset else None)
        if out["input"] and out["input"][0]["role"] == "system":
            raise RowError("system turn: input starts with a system turn; prompts hold no system turn (the "
                           "generator adds 'detailed thinking on/off')")
        if out["metadata"] is None and self.extra_columns:
            extra = {c: row.get(c) for c in self.extra_columns if row.get(c) is not None}
            out["metadata"] = json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str) \
                if extra else None
        if out["id"] is None and out["input"] and out["source"]:
            out["id"] = stable_id(out["source"], out["input"])


@dataclass
class DryRun:
    """What an import would publish: counts only, nothing written."""

    name: str
    kind: str
    rows: int
    rejected: dict[str, int]


def import_file(store: DatasetStore, path: str | Path, opts: ImportOptions,
                progress: Callable[[int], None] | None = None,
                dry_run: bool = False) -> Manifest | DryRun:
    """Read, map and validate every row of ``path``; publish one version or nothing.

    With ``dry_run`` every row is still read and validated (the same errors are raised),
    but nothing is written to the store.
    """
    path = Path(path)
    validate_name(opts.name)
    preset = None
    if opts.preset:
        if opts.preset not in PRESETS:
            raise ConfigError(f"unknown preset {opts.preset!r}", hint=f"presets: {', '.join(PRESETS)}")
        preset = PRESETS[opts.preset]
        if opts.kind != "prompts":
            raise ConfigError(f"preset {opts.preset} makes prompts, not {opts.kind}")
    if opts.on_error not in ("fail", "skip"):
        raise ConfigError(f"--on-error {opts.on_error!r}: use fail or skip")
    fmt = opts.format or detect_format(path)
    if opts.source is None and preset is None:
        opts.source = path.stem if fmt != "hf" else path.name
    keys = ROW_KEYS[opts.kind]
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    mapper: RowMapper | None = None

    def fail_or_skip(where: str, reason: str, raw: str) -> None:
        if opts.on_error == "fail":
            raise InputDataError(f"{path}, {where}: {reason}",
                                 hint="fix the row, or pass --on-error skip to keep it in rejected/")
        bad.append({"location": where, "reason": reason.split(":")[0], "detail": reason,
                    "raw": raw[:10_000]})

    for where, row in read_rows(path, fmt):
        if isinstance(row, SourceRowError):
            fail_or_skip(where, row.reason, row.raw)
            continue
        if mapper is None:
            mapper = RowMapper(opts, preset, list(row), f"{path}")
        try:
            record = mapper(row)
        except RowError as exc:
            fail_or_skip(where, str(exc), json.dumps(row, ensure_ascii=False, default=str))
            continue
        key = tuple(json.dumps(record[k]) for k in keys)
        if key in seen:
            fail_or_skip(where, f"duplicate key: {'/'.join(keys)} {record[keys[0]]!r} (first seen at "
                                f"{seen[key]})", json.dumps(row, ensure_ascii=False, default=str))
            continue
        seen[key] = where
        good.append(record)
        if progress and len(good) % 1000 == 0:
            progress(len(good))
    if not good:
        raise InputDataError(f"{path}: no valid rows to import ({len(bad)} rejected)",
                             hint="check the mapping (--map) and the file's columns")
    if dry_run:
        by_reason: dict[str, int] = {}
        for row in bad:
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
        return DryRun(name=opts.name, kind=opts.kind, rows=len(good), rejected=by_reason)
    config = {"path": str(path.resolve()), "sha256": sha256_file(path) if path.is_file() else None,
              "format": fmt, "kind": opts.kind, "preset": opts.preset, "map": opts.mapping,
              "category": opts.category, "license": opts.license, "source": opts.source,
              "on_error": opts.on_error}
    with store.writer(opts.name, opts.kind, step={"type": "import", "config": config},
                      provenance={"source_file": str(path.resolve()), "read_rows": len(good) + len(bad)}) as w:
        w.write(pa.Table.from_pylist(good, schema=schema_for(opts.kind)))
        if bad:
            w.reject(bad)
    return w.manifest
