"""The columnar path of import: a plain JSONL batch parsed by Arrow and mapped with Arrow
compute, with the result of ``RowMapper.map_batch`` on the same rows, or nothing.

``ColumnarMapper.map`` returns the batch's records only when it can prove they are what the
row path would give: prompts whose input is text, fields taken from columns or templates
(no preset functions), values that are text, 64-bit integers, booleans or null.  Anything
else (a parse error, a float or nested value where it would be shown, an empty input, a
missing required value, a value outside its enumeration, a ``metadata`` column in the file)
returns None before any state changed, and the importer maps the batch row by row, which
gives the one error message with file and line, the rejected rows and the duplicate
handling it always did.  Batch boundaries come from the reader (``LineBatch``), not from
the parser, so both paths write the same row groups: versions are byte-identical
(``tests/curation/test_import_columnar.py``).

Ids and row-key hashes are computed in DuckDB (``sha256`` of the same JSON text as
``values.stable_id``, ``hash`` of the key columns); the row path hashes its keys with the
same ``key_hashes``, so duplicates are found across batches of either kind.
"""

from __future__ import annotations

import io
import sys
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C encoder
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from thinkforge.manifests.duck import quote_ident
from thinkforge.manifests.schemas import ENUMS, MESSAGE, MESSAGES

from .readers import LineBatch
from .values import DEFAULT_VERIFIER

# str.strip() strips what str.isspace() says is whitespace: the same set for Arrow's RE2
_SPACE = "".join(f"\\x{{{c:x}}}" for c in range(sys.maxunicode + 1) if chr(c).isspace())
_BLANK = f"^[{_SPACE}]*$"
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_SHORT_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                  ("\b", "\\b"), ("\f", "\\f"))
_OTHER_CONTROL = r"[\x00-\x07\x0b\x0e-\x1f]"


class Decline(Exception):
    """This batch is not for an Arrow path (columnar JSONL or arrow_map's Parquet/HF; the row
    path maps it)."""


def key_hashes(con, table: pa.Table, keys: tuple[str, ...]) -> np.ndarray:
    """64-bit hashes of each row's key (DuckDB's ``hash``), as int64."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    con.register("_tf_keys", table.select(list(keys)))
    try:
        args = ", ".join(quote_ident(k) for k in keys)
        out = con.execute(f"SELECT hash({args}) AS h FROM _tf_keys").fetchnumpy()["h"]
    finally:
        con.unregister("_tf_keys")
    return np.asarray(out, dtype=np.uint64).view(np.int64)


def read_plain(batch: LineBatch) -> pa.Table | None:
    """Arrow's parse of a plain batch, or None where it may differ from the row path's."""
    if not batch.plain or _too_deep(batch.data):
        return None
    try:
        table = pj.read_json(io.BytesIO(batch.data))
        table.validate(full=True)  # Arrow's JSON reader lets a Latin-1 byte inside a string through
    except Exception:  # a parse error, bad UTF-8, a lone surrogate, a key twice: row by row
        return None
    if table.num_rows != len(batch.numbers):  # two objects on a line: row by row
        return None
    return table


ARROW_MAX_DEPTH = 64  # Arrow's JSON reader takes ~35 s on a 10,000-deep line; json raises at once


def _too_deep(data: bytes) -> bool:
    """A line may nest deeper than ``ARROW_MAX_DEPTH`` (brackets counted per line, inside
    strings too: a false alarm only sends the batch down the row path, which is exact)."""
    b = np.frombuffer(data, dtype=np.uint8)
    if len(b) == 0:
        return False
    step = ((b == 0x5B) | (b == 0x7B)).astype(np.int32) - ((b == 0x5D) | (b == 0x7D)).astype(np.int32)
    depth = np.cumsum(step, dtype=np.int32)
    newline = np.flatnonzero(b == 0x0A)
    if len(newline):  # count from each line's start: a newline takes back its line's sum
        step[newline] -= np.diff(depth[newline], prepend=np.int32(0))
        depth = np.cumsum(step, dtype=np.int32)
    return int(depth.max()) > ARROW_MAX_DEPTH


def json_strings(arr: pa.Array) -> pa.Array:
    """``encode_basestring`` (ensure_ascii=False: quotes around, \\\\ \" and controls
    escaped) of each string; nulls stay null."""
    arr = _one_chunk(arr)
    quoted = pc.binary_join_element_wise('"', arr, '"', "")
    mask = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_ESCAPE), False)
    if not pc.any(mask).as_py():
        return quoted
    idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    sub = arr.take(pa.array(idx))
    for old, new in _SHORT_ESCAPES:
        sub = pc.replace_substring(sub, old, new)
    sub = pc.binary_join_element_wise('"', sub, '"', "")
    other = pc.match_substring_regex(arr.take(pa.array(idx)), _OTHER_CONTROL).to_numpy(zero_copy_only=False)
    if other.any():
        values = sub.to_pylist()
        for j in np.flatnonzero(other).tolist():
            values[j] = encode_basestring(arr[int(idx[j])].as_py())
        sub = pa.array(values, pa.string())
    return pc.replace_with_mask(quoted, mask, sub)


def _one_chunk(arr) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def template_text(table: pa.Table, name: str, n: int, plain=_one_chunk) -> pa.Array:
    """``values.as_text`` of a column: what a template inserts (never null). ``plain`` makes
    the column one plain array (the Parquet/HF path also decodes dictionaries); a type whose
    text Arrow does not write exactly as Python does (floats, nested values) declines."""
    if name not in table.column_names:
        return pa.array([""] * n, pa.string())
    arr = plain(table.column(name))
    t = arr.type
    if pa.types.is_null(t):
        return pa.array([""] * n, pa.string())
    if pa.types.is_string(t):
        return pc.fill_null(arr, "")
    if pa.types.is_integer(t):
        return pc.fill_null(pc.cast(arr, pa.string()), "")
    if pa.types.is_boolean(t):
        return pc.fill_null(pc.if_else(arr, "true", "false"), "")
    raise Decline(name)


class ColumnarMapper:
    """Arrow-compute twin of ``RowMapper.map_batch`` for the common case (see module doc)."""

    def __init__(self, mapper):
        self.m = mapper
        self.schema = mapper.schema
        opts, preset = mapper.opts, mapper.preset
        self.usable = opts.kind == "prompts" and not (preset and preset.fields)
        self.defaults = {"source": mapper.source,
                         "category": opts.category or (preset.category if preset else None),
                         "license": opts.license or (preset.license if preset else None)}
        self.fixed_verifier = preset.verifier if preset else None

    # -- values as the row path sees them ------------------------------------------------------
    def _column(self, table: pa.Table, name: str, n: int) -> pa.Array:
        if name not in table.column_names:
            return pa.nulls(n, pa.string())
        arr = _one_chunk(table.column(name))
        if pa.types.is_string(arr.type):
            return arr
        if pa.types.is_null(arr.type):
            return pa.nulls(n, pa.string())
        raise Decline(name)

    def _string_field(self, table: pa.Table, field: str, n: int) -> pa.Array:
        template = self.m.templates.get(field)
        if template is not None:
            parts: list[Any] = []
            for literal, name in template.pieces:
                parts.append(literal)
                if name is not None:
                    parts.append(template_text(table, name, n))
            if not any(isinstance(p, pa.Array) for p in parts):
                return pa.array(["".join(parts)] * n, pa.string())
            return pc.binary_join_element_wise(*parts, "")
        column = self.m.column_of[field]
        if field != "input" and column in table.column_names and pa.types.is_int64(table.column(column).type):
            return pc.cast(_one_chunk(table.column(column)), pa.string())  # coerce: str(int)
        return self._column(table, column, n)

    def _metadata(self, table: pa.Table, n: int) -> pa.Array:
        """The columns no field used, as ``dumps_sorted`` of the non-null ones (or null)."""
        if "metadata" in table.column_names:
            raise Decline("metadata")  # the row path's rules for a metadata column
        used = self.m.used | {f for f in self.m.same_name if f != "metadata"}
        pieces = []
        for name in sorted(c for c in table.column_names if c not in used):
            arr = _one_chunk(table.column(name))
            t = arr.type
            if pa.types.is_null(t):
                continue
            if pa.types.is_string(t):
                value = json_strings(arr)
            elif pa.types.is_int64(t):
                value = pc.cast(arr, pa.string())
            elif pa.types.is_boolean(t):
                value = pc.if_else(arr, "true", "false")
            else:
                raise Decline(name)  # floats (1.0 vs 1), nested values: row by row
            key = ", " + encode_basestring(name) + ": "
            pieces.append(pc.fill_null(pc.binary_join_element_wise(key, value, ""), ""))
        if not pieces:
            return pa.nulls(n, pa.string())
        joined = pc.binary_join_element_wise(*pieces, "")
        body = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 2), "}", "")
        return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), body)

    # -- the batch -----------------------------------------------------------------------------
    def map(self, table: pa.Table, con) -> pa.Table | None:
        if not self.usable:
            return None
        try:
            return self._map(table, con)
        except (Decline, pa.ArrowException):
            return None

    def _map(self, table: pa.Table, con) -> pa.Table:
        n = table.num_rows
        cols: dict[str, pa.Array] = {}
        for f in self.schema:
            if f.name == "metadata" and "metadata" in self.m.same_name:
                cols[f.name] = self._metadata(table, n)
            else:
                cols[f.name] = self._string_field(table, f.name, n)
        text = cols["input"]
        if text.null_count or pc.any(pc.match_substring_regex(text, _BLANK)).as_py():
            raise Decline("input")  # missing or empty input: the row path says which row
        for name, default in self.defaults.items():
            if default is not None:
                v = cols[name]
                cols[name] = pc.if_else(pc.fill_null(pc.equal(v, ""), True), default, v)
        for name in ("source", "category"):
            if cols[name].null_count or pc.any(pc.equal(cols[name], "")).as_py():
                raise Decline(name)
        verifier = cols["verifier"]
        if verifier.null_count:
            if self.fixed_verifier:
                fill = pa.array([self.fixed_verifier] * n, pa.string())
            else:
                cats = pc.unique(cols["category"])
                names = pa.array([DEFAULT_VERIFIER.get(c, "none") for c in cats.to_pylist()], pa.string())
                fill = names.take(pc.index_in(cols["category"], value_set=cats))
            cols["verifier"] = pc.coalesce(verifier, fill)
        for name in ENUMS:
            if name in cols and not pc.all(pc.is_in(cols[name], value_set=pa.array(ENUMS[name]))).as_py():
                raise Decline(name)
        if cols["id"].null_count:
            cols["id"] = self._ids(cols, con)
        arrays = []
        for f in self.schema:
            if f.name == "input":
                arrays.append(user_messages(text))
            else:
                arrays.append(pc.cast(cols[f.name], f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _ids(self, cols: dict[str, pa.Array], con) -> pa.Array:
        """``values.stable_id(source, [user message])`` where the id is missing."""
        payload = pc.binary_join_element_wise(
            "[", json_strings(cols["source"]), ', [{"content": ', json_strings(cols["input"]),
            ', "role": "user"}]]', "")
        con.register("_tf_ids", pa.table({"id": cols["id"], "p": payload}))
        try:
            out = con.sql("SELECT coalesce(id, left(sha256(p), 16)) AS id FROM _tf_ids").to_arrow_table()
        finally:
            con.unregister("_tf_ids")
        return _one_chunk(out.column("id"))


def user_messages(contents: pa.Array | list[str]) -> pa.Array:
    """One ``[{"role": "user", "content": c}]`` list per text."""
    if not isinstance(contents, pa.Array):
        contents = pa.array(contents, pa.string())
    n = len(contents)
    struct = pa.StructArray.from_arrays([pa.array(["user"] * n, pa.string()), contents], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), struct, type=MESSAGES)
