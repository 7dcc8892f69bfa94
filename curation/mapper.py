"""What a source row becomes: the import's options and ``RowMapper`` (docs/architecture.md).

A field of the target schema gets its value from, in order: ``--map FIELD=COLUMN`` (or a
template ``--map FIELD="{COL1}\\n\\n{COL2}"``), the preset, a source column of the same
name, then a default (``--category``, ``--license``, the source name, a stable id).  For
``prompts``, source columns that no field used are kept in ``metadata`` (JSON), so nothing
from the source row is lost.  Templates and the coercion of values are in
``thinkforge.curation.values``; the Arrow twins of ``map_batch`` (same records, for the
batches they can prove it of) in ``columnar`` (JSONL prompts) and ``arrow_map`` (Parquet and
Hugging Face rows of the other kinds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from thinkforge.manifests.errors import ConfigError, InputDataError
from thinkforge.manifests.schemas import ENUMS, ROW_KEYS, schema_for

from .columnar import user_messages
from .presets import PRESETS, Preset
from .readers import RowError
from .values import (
    DEFAULT_VERIFIER,
    Template,
    coerce,
    column_of,
    dumps_sorted,
    is_template,
    stable_id,
    user_ids,
)

Getter = Callable[[dict[str, Any]], Any]
ON_DUPLICATE = ("fail", "first", "skip")


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
    on_duplicate: str | None = None  # fail | first | skip; None: skip->first, else fail


def duplicate_policy(opts: ImportOptions) -> str:
    return opts.on_duplicate or ("first" if opts.on_error == "skip" else "fail")


def parse_map(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        target, sep, spec = item.partition("=")
        if not sep or not target or not spec:
            raise ConfigError(f"--map {item!r} is not FIELD=COLUMN or FIELD=\"{{COL}} template\"",
                              hint="e.g. --map input=question --map ground_truth=answer")
        mapping[target.strip()] = spec
    return mapping



# -- mapping ----------------------------------------------------------------------------------
class RowMapper:
    """Maps source rows to records of the target kind, a batch at a time.

    ``map_batch`` works column by column; when any row of a batch is bad it raises that
    row's ``RowError`` and the importer maps the batch again one row at a time (a batch of
    one row goes through exactly the same code), so the two can never disagree.
    """

    def __init__(self, opts: ImportOptions, preset: Preset | None, where: str):
        self.opts, self.preset, self.where = opts, preset, where
        self.schema = schema_for(opts.kind)
        unknown = [f for f in opts.mapping if f not in self.schema.names]
        if unknown:
            raise ConfigError(f"--map names unknown field(s) {unknown} of kind {opts.kind}",
                              hint=f"fields: {', '.join(self.schema.names)}")
        self.getters: dict[str, Getter] = {}
        self.column_of: dict[str, str] = {}  # field -> the one column it is taken from as is
        self.mapped: dict[str, tuple[str, list[str]]] = {}  # field -> (spec, columns it needs)
        self.templates: dict[str, Template] = {}
        self.used: set[str] = set()
        self.same_name: set[str] = set()
        for f in self.schema.names:
            if f in opts.mapping:
                spec = opts.mapping[f]
                if is_template(spec):
                    template = self.templates[f] = Template(spec, f"--map {f}")
                    self.getters[f] = template.render
                    self.mapped[f] = (spec, template.columns)
                    self.used |= set(template.columns)
                else:
                    self.getters[f] = (lambda c: lambda row: row.get(c))(spec)
                    self.column_of[f] = spec
                    self.mapped[f] = (spec, [spec])
                    self.used.add(spec)
            elif preset and f in preset.fields:
                self.getters[f] = preset.fields[f]
                self.used |= set(preset.uses)
            else:
                self.getters[f] = (lambda c: lambda row: row.get(c))(f)
                self.column_of[f] = f
                self.same_name.add(f)
        self.source = opts.source or (preset.source if preset else None)
        self.needed = {c for _, cs in self.mapped.values() for c in cs} | set(preset.expects if preset else ())
        self.prompts = opts.kind in ("prompts", "rl_pool")
        self.keys = ROW_KEYS[opts.kind]

    # -- columns of the file ----------------------------------------------------------------
    def check_columns(self, columns: dict[str, None]) -> None:
        """Mapped columns and the preset's columns must be among the file's columns."""
        have = ", ".join(columns) or "(none)"
        if self.preset and self.preset.expects:
            missing = [c for c in self.preset.expects if c not in columns]
            if missing:
                raise InputDataError(
                    f"{self.where}: --preset {self.opts.preset} expects column(s) "
                    f"{', '.join(self.preset.expects)}; the file has {have}",
                    hint=f"missing: {', '.join(missing)}; choose the preset made for this file "
                         f"({', '.join(PRESETS)}) or map columns with --map FIELD=COLUMN")
        for f, (spec, needed) in self.mapped.items():
            missing = [n for n in needed if n not in columns]
            if not missing:
                continue
            if is_template(spec):
                raise InputDataError(f"{self.where}: --map {f}: template {spec!r} names missing "
                                     f"column(s) {missing}", hint=f"columns in the file: {have}")
            raise InputDataError(f"{self.where}: --map {f}: column {spec!r} does not exist",
                                 hint=f"columns in the file: {have}")

    # -- rows ---------------------------------------------------------------------------------
    def map_batch(self, rows: list[dict[str, Any]], columns: set[str] | None = None) -> pa.Table:
        """Records of ``rows`` as an Arrow table.

        ``columns``: the union of the rows' keys, when the caller knows it (a column no row
        has is all None without looking)."""
        n = len(rows)
        if columns is None:
            columns = set().union(*map(set, set(map(tuple, rows))))
        cols: dict[str, list[Any]] = {}
        user_text = False  # input given as plain text: messages built in Arrow directly
        for f in self.schema:
            column = self.column_of.get(f.name)
            if column is not None:
                values = [r.get(column) for r in rows] if column in columns else [None] * n
            else:
                getter = self.getters[f.name]
                values = [getter(r) for r in rows]
            if pa.types.is_list(f.type):
                if set(map(type, values)) == {str}:
                    for v in values:
                        if not v.strip():
                            raise RowError(f"missing value: {f.name} is empty text")
                    user_text = True
                    cols[f.name] = values
                    continue
                cols[f.name] = [coerce(v, f.type, f.name) for v in values]
                continue
            cols[f.name] = column_of(values, f.type, f.name)
        if self.prompts:
            self._prompt_defaults(cols, rows, user_text)
        # the id is derived from the others, so report what it is derived from first
        for f in sorted(self.schema, key=lambda f: f.name == "id"):
            values = cols[f.name]
            if not f.nullable and None in values:
                how = f"--category CATEGORY or --map {f.name}=COLUMN" if f.name == "category" \
                    else f"--map {f.name}=COLUMN"
                raise RowError(f"missing value: required field {f.name!r} has no value"
                               + ("" if f.name not in self.same_name else
                                  f" (no column named {f.name!r}; pass {how})"))
            if f.name in ENUMS:
                allowed = ENUMS[f.name]
                for v in set(values) - set(allowed) - {None}:
                    raise RowError(f"invalid value: {f.name} {v!r} is not one of {', '.join(allowed)}")
        arrays = []
        for f in self.schema:
            values = cols[f.name]
            try:
                if f.name == "input" and user_text:
                    arrays.append(user_messages(values))
                else:
                    arrays.append(pa.array(values, f.type))
            except (pa.ArrowException, UnicodeEncodeError, OverflowError, TypeError) as exc:
                raise RowError(f"invalid value: {f.name}: {str(exc).splitlines()[0][:120]}") from None
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _prompt_defaults(self, cols: dict[str, list[Any]], rows: list[dict[str, Any]],
                         user_text: bool) -> None:
        preset, opts = self.preset, self.opts
        for name, default in (("source", self.source),
                              ("category", opts.category or (preset.category if preset else None)),
                              ("license", opts.license or (preset.license if preset else None))):
            if default is not None:
                cols[name] = [v or default for v in cols[name]]
        fixed = preset.verifier if preset else None
        cols["verifier"] = [v if v is not None else fixed or DEFAULT_VERIFIER.get(c or "", "none")
                            for v, c in zip(cols["verifier"], cols["category"], strict=True)]
        if not user_text:
            for messages in cols["input"]:
                if messages and messages[0]["role"] == "system":
                    raise RowError("system turn: input starts with a system turn; prompts hold no system "
                                   "turn (the generator adds 'detailed thinking on/off')")
        metadata = cols["metadata"]
        if "metadata" in self.same_name:  # no mapping: the columns no field used
            used = self.used | {f for f in self.same_name if f != "metadata"}
            for i, row in enumerate(rows):
                if metadata[i] is None:
                    extra = {c: v for c, v in row.items() if c not in used and v is not None}
                    if "metadata" in extra and len(extra) == 1:
                        continue  # a metadata column that is not an object: coerced above
                    if extra:
                        metadata[i] = dumps_sorted(extra)
        ids = cols["id"]
        if None in ids:
            if user_text:
                user_ids(cols["source"], cols["input"], ids)
                return
            for i, (pid, source, messages) in enumerate(zip(ids, cols["source"], cols["input"], strict=True)):
                if pid is None and messages and source:
                    ids[i] = stable_id(source, messages)
