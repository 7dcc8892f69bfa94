"""The Arrow path of import for columnar files (Parquet, Hugging Face datasets): a batch of
Arrow columns mapped to the target kind with Arrow compute, giving exactly the records
``RowMapper.map_batch`` gives for the same rows, or nothing.

``ArrowMapper.map`` takes the kinds that hold no prompt defaults (``sft``, ``rollouts``,
``preferences``: no ids to hash, no ``metadata`` to gather) and returns the batch's table
only when every value is one the row path keeps as it is or converts the same way: text,
integers, booleans, floats without NaN, text or ``{role, content}`` lists for messages.
Anything else (a float shown as text, a number written as text, a missing required value,
an empty message list, an unknown chat role, a value outside its enumeration) returns None
and the importer maps the batch row by row (``Parquet``'s ``to_pylist``), which gives the
one error with file and row, the rejected rows and the duplicate handling it always did.
Batches are the reader's (``readers.arrow_batches``), so both paths write the same rows in
the same row groups (tests/curation/test_import_arrow.py).  At 33M SFT rows this path is
what makes the import a few minutes instead of ten (bench/README.md "pipeline_scale.py").
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from thinkforge.manifests.schemas import ENUMS, MESSAGE, MESSAGES

from .columnar import _BLANK, Decline, template_text, user_messages
from .values import CHAT_ROLES


def _plain(arr) -> pa.Array:
    """One chunk, dictionaries decoded, large/view strings as string."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    if pa.types.is_large_list(arr.type):
        arr = arr.cast(pa.list_(arr.type.value_type))
    return arr


class ArrowMapper:
    """Arrow twin of ``RowMapper.map_batch`` for kinds without prompt defaults (module doc)."""

    def __init__(self, mapper):
        self.m = mapper
        self.schema = mapper.schema
        self.usable = not mapper.prompts and not (mapper.preset and mapper.preset.fields)

    def map(self, table: pa.Table) -> pa.Table | None:
        if not self.usable:
            return None
        try:
            return self._map(table)
        except (Decline, pa.ArrowException):
            return None

    def _map(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        arrays = []
        for f in self.schema:
            template = self.m.templates.get(f.name)
            if template is not None:
                arr = self._template(table, template, n)
            else:
                column = self.m.column_of[f.name]
                arr = _plain(table.column(column)) if column in table.column_names else pa.nulls(n)
            arr = self._convert(arr, f)
            if not f.nullable and arr.null_count:
                raise Decline(f.name)  # the row path names the row
            if f.name in ENUMS and not pc.all(pc.is_in(arr, value_set=pa.array(ENUMS[f.name]))).as_py():
                raise Decline(f.name)
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _template(self, table: pa.Table, template, n: int) -> pa.Array:
        parts: list = []
        for literal, name in template.pieces:
            parts.append(literal)
            if name is not None:
                parts.append(template_text(table, name, n, _plain))
        if not any(isinstance(p, pa.Array) for p in parts):
            return pa.array(["".join(parts)] * n, pa.string())
        return pc.binary_join_element_wise(*parts, "")

    @staticmethod
    def _convert(arr: pa.Array, f: pa.Field) -> pa.Array:
        """``values.coerce`` of a column, where it is exact in Arrow."""
        t, want = arr.type, f.type
        if pa.types.is_null(t):
            return pa.nulls(len(arr), want)
        if pa.types.is_string(want):
            if pa.types.is_string(t):
                return arr
            if pa.types.is_integer(t):  # str(int)
                return pc.cast(arr, pa.string())
        elif pa.types.is_integer(want):
            if pa.types.is_integer(t):
                return pc.cast(arr, want)  # out of range: ArrowInvalid, row by row
        elif pa.types.is_boolean(want):
            if pa.types.is_boolean(t):
                return arr
        elif pa.types.is_floating(want):
            if pa.types.is_floating(t) or pa.types.is_integer(t):
                arr = pc.cast(arr, want)  # an int beyond 2^53: ArrowInvalid, row by row
                if pa.types.is_floating(t) and pc.any(pc.is_nan(arr)).as_py():
                    raise Decline(f.name)  # NaN is missing: the row path's rule
                return arr
        elif want == MESSAGES:
            if pa.types.is_string(t):
                if arr.null_count or pc.any(pc.match_substring_regex(arr, _BLANK)).as_py():
                    raise Decline(f.name)
                return user_messages(arr)
            if pa.types.is_list(t):
                return _messages(arr, f.name)
        raise Decline(f.name)


def _messages(arr: pa.ListArray, name: str) -> pa.Array:
    """A list of ``{role, content, ...}`` structs as the schema's messages (other fields
    dropped), when every list is non-empty and every role a known one."""
    vt = arr.type.value_type
    if not (pa.types.is_struct(vt) and vt.get_field_index("role") >= 0 and vt.get_field_index("content") >= 0):
        raise Decline(name)
    if arr.null_count or pc.any(pc.equal(pc.list_value_length(arr), 0)).as_py():
        raise Decline(name)
    values = arr.flatten()
    if values.null_count:
        raise Decline(name)
    role, content = _plain(values.field("role")), _plain(values.field("content"))
    if not (pa.types.is_string(role.type) and pa.types.is_string(content.type)) \
            or role.null_count or content.null_count \
            or not pc.all(pc.is_in(role, value_set=pa.array(CHAT_ROLES))).as_py():
        raise Decline(name)
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int32)
    struct = pa.StructArray.from_arrays([role, content], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0]), struct, type=MESSAGES)
