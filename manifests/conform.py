"""Rows brought to a kind's schema (``conform``) and the type equality the writer checks
shards with (``types_match``)."""

from __future__ import annotations

import pyarrow as pa

from .errors import InputDataError


def conform(rows: pa.Table | pa.RecordBatch | list[dict], schema: pa.Schema, *,
            where: str = "rows") -> pa.Table:
    """Return ``rows`` with exactly the columns of ``schema``, in order, cast to its types."""
    if isinstance(rows, list):
        keys = set().union(*(r.keys() for r in rows)) if rows else set()
        if extra := sorted(keys - set(schema.names)):
            raise InputDataError(f"{where}: unexpected column(s) {extra}",
                                 hint=f"the schema has: {', '.join(schema.names)}")
        missing = [f.name for f in schema if not f.nullable and f.name not in keys]
        if rows and missing:
            raise InputDataError(f"{where}: required column {missing[0]!r} is missing")
        rows = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    extra = [c for c in rows.column_names if c not in schema.names]
    if extra:
        raise InputDataError(f"{where}: unexpected column(s) {extra}",
                             hint=f"the schema has: {', '.join(schema.names)}")
    columns = []
    for field in schema:
        if field.name in rows.column_names:
            col = rows.column(field.name)
            if not types_match(col.type, field.type):
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise InputDataError(
                        f"{where}: column {field.name!r} has type {col.type}, expected "
                        f"{field.type}: {exc}") from exc
            columns.append(col)
        elif field.nullable:
            columns.append(pa.nulls(rows.num_rows, field.type))
        else:
            raise InputDataError(f"{where}: required column {field.name!r} is missing",
                                 hint=f"columns present: {', '.join(rows.column_names)}")
    return pa.Table.from_arrays(columns, schema=schema)


def types_match(a: pa.DataType, b: pa.DataType) -> bool:
    """Type equality that ignores list item names and nullability (DuckDB and Arrow differ)."""
    if pa.types.is_list(a) or pa.types.is_large_list(a):
        return (pa.types.is_list(b) or pa.types.is_large_list(b)) and \
            types_match(a.value_type, b.value_type)
    if pa.types.is_struct(a):
        return pa.types.is_struct(b) and a.num_fields == b.num_fields and all(
            a.field(i).name == b.field(i).name and types_match(a.field(i).type, b.field(i).type)
            for i in range(a.num_fields))
    if pa.types.is_string(a) or pa.types.is_large_string(a) or pa.types.is_string_view(a):
        return pa.types.is_string(b) or pa.types.is_large_string(b) or pa.types.is_string_view(b)
    return a == b
