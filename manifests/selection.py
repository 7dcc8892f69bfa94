"""Selection versions, and the one function every reader uses to read a version's rows.

docs/concepts.md "Versions without copies".  A step that only drops, reorders or labels rows
publishes a *selection*: ``selection.parquet`` holds ``(_shard, _row[, columns])`` in the
version's order, positions in the data shards of a materialised *base* version; the rows
of the version are the base rows at those positions, with the stored ``columns`` added or
replaced.  A selection of a selection stores positions in the same base (chains never
nest).  Rows a filter rejected are a selection too (``rejected/selection.parquet``: the
positions, ``reason`` and the explaining columns), so nothing vanishes and nothing is
copied.

Content fingerprints.  Every version published now has one 64-bit digest per row:
``xor`` over its columns of ``hash(hash(column name, value))``.  The outer ``hash`` (a
murmur finaliser) matters: DuckDB's ``hash(name, value)`` combines the two hashes
linearly, so without it a change of one column's value moved the digest by an amount that
did not depend on the column, and two columns changed alike (``correct`` false -> NULL and
``reward`` 0.0 -> NULL: ``hash(false) = hash(0.0) = 0``) cancelled out, giving two
different versions one fingerprint.  The scheme is recorded in each manifest
(``digest_scheme``); versions of the older scheme (1) keep their fingerprints and verify,
and a filter over one materialises its output rather than mixing two schemes.  A materialised version
stores them in ``digests.parquet`` (with ``length(output)`` per row for kinds that have
an output, so a selection's stats need not read the text); a selection computes its own
from the base's digests at its positions, corrected by xor for the columns it stores
(``xor`` out the base value, ``xor`` in its own): only narrow columns are read.  The
fingerprint is sha256 over the schema and the digests in row order, so a selection and
the version that materialises the same rows in the same order have the same fingerprint.
Versions published before this have the older fingerprint (schema + shard hashes) and
no digests; a filter over such a version materialises its output, as before.

``row_relation(store, manifest)`` is the SQL relation of a version's rows, in order;
catalog views, ``thinkforge sql``, show, diff, exports, trainers, reports and filters all
read through it.  Views join the selection to ``read_parquet(..., file_row_number=true)``
of the base shards it uses (bench/README.md: the join costs about what scanning the
materialised copy costs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .arrow_numpy import ints
from .duck import parquet_source, quote_ident, quote_literal
from .errors import IntegrityError
from .selection_scan import ROW, SHARD, read_digests, take

if TYPE_CHECKING:  # pydantic is not imported on the query path (records.py)
    from .manifest import FileEntry, Manifest, ParentRef

DatasetStore = Any  # thinkforge.manifests.store.DatasetStore (store imports this module)

SELECTION_FILE = "selection.parquet"
REJECTED_SELECTION_FILE = "rejected/selection.parquet"
DIGESTS_FILE = "digests.parquet"
DIGEST_SCHEME = 2  # manifests record it; 1 = the linear hash(name, value) (see above)
_FP_TAG = b"thinkforge rows v2\n"


# -- digests and fingerprints ------------------------------------------------------------------
def _xor(terms: list[str]) -> str:
    if not terms:
        return "0::UBIGINT"
    expr = terms[0]
    for term in terms[1:]:
        expr = f"xor({expr}, {term})"
    return expr


def _h(column: str, qualifier: str | None = None) -> str:
    ref = f"{qualifier}.{quote_ident(column)}" if qualifier else quote_ident(column)
    return f"hash(hash({quote_literal(column)}, {ref}))"


def digest_expr(columns: list[str], qualifier: str | None = None) -> str:
    """SQL: the 64-bit digest of a row over ``columns`` (order of columns does not matter)."""
    return _xor([_h(c, qualifier) for c in columns])


def content_fingerprint(schema_json: list[dict[str, Any]], digests: bytes) -> str:
    """sha256 over the schema and the rows' digests (little-endian uint64, in row order)."""
    h = hashlib.sha256(_FP_TAG)
    h.update(json.dumps(schema_json, sort_keys=True).encode())
    h.update(digests)
    return h.hexdigest()


def _digest_bytes(con, sql: str) -> bytes:
    import numpy as np

    table = con.sql(sql).to_arrow_table()
    if table.num_rows == 0:
        return b""
    return b"".join(ints(chunk).astype(np.dtype("<u8"), copy=False).tobytes()
                    for chunk in table.column(0).chunks)


def write_digests(con, shards: list[Path], columns: list[str], out: Path) -> bytes:
    """Write ``digests.parquet`` of materialised shards (``d`` and, with an output column,
    ``chars``) in row order; return the digests as bytes."""
    chars = ", length(output)::BIGINT AS chars" if "output" in columns else ""
    con.execute(f"COPY (SELECT {digest_expr(columns)} AS d{chars} FROM "
                f"{parquet_source(shards)[:-1]}, file_row_number=true) "
                f"ORDER BY file_index, file_row_number) TO {quote_literal(str(out))} "
                "(FORMAT parquet, COMPRESSION zstd)").fetchall()
    return _digest_bytes(con, f"SELECT d FROM read_parquet({quote_literal(str(out))}, "
                              "file_row_number=true) ORDER BY file_row_number")


# -- what a selection is made from -----------------------------------------------------------------
def base_of(store: DatasetStore, m: Manifest) -> dict[str, Any] | None:
    """The base a selection over ``m`` points into (``m`` itself, or ``m``'s base when ``m``
    is a selection), or None when ``m`` has no row digests of this scheme (published
    before selections, or under digest scheme 1): a step over it materialises."""
    if m.digest_scheme != DIGEST_SCHEME:
        return None
    if m.selection is not None:
        s = m.selection
        return {"base": s.base, "base_columns": list(s.base_columns),
                "base_files": list(s.base_files), "base_digests": s.base_digests,
                "inherited": list(s.columns)}
    if m.digests is None:
        return None
    rel = store.version_dir(m).relative_to(store.root)

    def moved(f: FileEntry) -> FileEntry:
        return f.model_copy(update={"path": str(rel / f.path)})

    return {"base": m.as_parent(), "base_columns": [f["name"] for f in m.schema_],
            "base_files": [moved(f) for f in m.files], "base_digests": moved(m.digests),
            "inherited": []}


# -- resolution ------------------------------------------------------------------------------------
def read_shards(used: list[int]) -> list[int]:
    """Indices of the base shards a selection's join reads: the ones it uses, or the first
    one when it uses none (an empty selection still needs the base's schema)."""
    return [i for i, n in enumerate(used) if n] or [0]


def _base_join(store: DatasetStore, base_files: list[FileEntry], used: list[int],
               file_sql: str) -> str:
    """``FROM <file> s JOIN <used base shards> b ON position``: one BIGINT key, the row's
    place in the whole base (shard offset + row; rows are checked in range at publish), which
    DuckDB joins about twice as fast as the (shard, row) pair."""
    idx = read_shards(used)
    paths = [store.root / base_files[i].path for i in idx]
    offsets = _offsets(base_files)
    if len(idx) == 1:
        key_s, key_b = f"s.{ROW}", "b.file_row_number"
        where = f" AND s.{SHARD} = {idx[0]}"
    else:
        key_s = f"([{', '.join(map(str, offsets[:-1]))}])[s.{SHARD} + 1] + s.{ROW}"
        key_b = (f"([{', '.join(str(offsets[i]) for i in idx)}])[b.file_index::BIGINT + 1] "
                 "+ b.file_row_number")
        where = ""
    return (f"FROM {file_sql} s JOIN {parquet_source(paths)[:-1]}, file_row_number=true) b "
            f"ON {key_s} = {key_b}{where}")


def _file_sql(path: Path) -> str:
    return f"read_parquet({quote_literal(str(path))}, file_row_number=true)"


def _offsets(base_files: list[FileEntry]) -> list[int]:
    """Where each base shard's rows start, counted over the whole base."""
    offsets = [0]
    for f in base_files:
        offsets.append(offsets[-1] + f.rows)
    return offsets


def _filtered(store: DatasetStore, sel, file_path: Path, columns: list[str], *,
              positions: bool) -> str:
    """The rows of an ascending selection that stores none of ``columns``: the base rows
    whose position is in the selection, as a filter of the base scan (a bitmap of the
    selected positions, one bit per base row), in base order, which is the version's.

    No join and no sort: a scan of the base with ``get_bit`` per row, read in insertion
    order like a plain version's shards.
    """
    idx = read_shards(sel.used)
    paths = [store.root / sel.base_files[i].path for i in idx]
    offsets = _offsets(sel.base_files)
    total = max(1, offsets[-1])
    starts = ", ".join(str(offsets[i]) for i in idx)
    bitmap = (f"(SELECT bitstring_agg(([{', '.join(map(str, offsets[:-1]))}])[s.{SHARD} + 1]"
              f" + s.{ROW}, 0, {total - 1}) FROM read_parquet({quote_literal(str(file_path))}) s)")
    exprs = [f"b.{quote_ident(c)} AS {quote_ident(c)}" for c in columns]
    if positions:
        shard = "b.file_index" if idx == list(range(len(idx))) else \
            f"([{', '.join(str(i) for i in idx)}])[b.file_index::BIGINT + 1]"
        exprs += [f"{shard}::INTEGER AS __shard", "b.file_row_number AS __row"]
    return (f"(SELECT {', '.join(exprs)} FROM {parquet_source(paths)[:-1]}, file_row_number=true) b "
            f"WHERE get_bit({bitmap}, (([{starts}])[b.file_index::BIGINT + 1] + b.file_row_number)::INTEGER) = 1)")


def _resolved(store: DatasetStore, sel, file_path: Path, columns: list[str], stored: set[str],
              *, positions: bool, ordered: bool, kind: str | None = None) -> str:
    if set(columns) <= stored:  # only what the selection file stores: no base shard is read
        exprs = [f"s.{quote_ident(c)} AS {quote_ident(c)}" for c in columns]
        if positions:
            exprs += [f"s.{SHARD} AS __shard", f"s.{ROW} AS __row"]
        order = " ORDER BY s.file_row_number" if ordered else ""
        return f"(SELECT {', '.join(exprs) or '1 AS one'} FROM {_file_sql(file_path)} s{order})"
    # base columns only: a filter of the base scan, in base order (the version's when its
    # positions ascend; any order is a set of rows, which it always is)
    if (sel.ascending or not ordered) and columns and not stored & set(columns) \
            and set(columns) <= set(sel.base_columns) \
            and sum(f.rows for f in sel.base_files) < 2**31:  # get_bit takes an INTEGER index
        return _filtered(store, sel, file_path, columns, positions=positions)
    exprs = []
    for c in columns:
        if c in stored:
            exprs.append(f"s.{quote_ident(c)} AS {quote_ident(c)}")
        elif c in sel.base_columns:
            exprs.append(f"b.{quote_ident(c)} AS {quote_ident(c)}")
        elif c in _nullable_types(kind):
            # a nullable column added to the schema after the base was written: NULL
            exprs.append(f"NULL::{_nullable_types(kind)[c]} AS {quote_ident(c)}")
        else:
            raise IntegrityError(f"selection {file_path}: column {c!r} is neither stored nor in "
                                 f"the base {sel.base.ref}")
    if positions:
        exprs += [f"s.{SHARD} AS __shard", f"s.{ROW} AS __row"]
    order = " ORDER BY s.file_row_number" if ordered else ""
    return (f"(SELECT {', '.join(exprs)} {_base_join(store, sel.base_files, sel.used, _file_sql(file_path))}"
            f"{order})")


_DUCK_TYPES = {"string": "VARCHAR", "bool": "BOOLEAN", "int64": "BIGINT", "double": "DOUBLE"}


def _nullable_types(kind: str | None) -> dict[str, str]:
    """Nullable scalar columns of ``kind``'s current schema and their DuckDB types."""
    from .schemas import SCHEMAS

    schema = SCHEMAS.get(kind or "")
    if schema is None:
        return {}
    return {f.name: _DUCK_TYPES[str(f.type)] for f in schema
            if f.nullable and str(f.type) in _DUCK_TYPES}


def _added_columns(m: Manifest) -> str:
    """``NULL::T AS c`` for the nullable columns added to the schema after ``m`` was
    written (an old version stays readable with today's column list), or ''."""
    recorded = {f["name"] for f in m.schema_}
    return ", ".join(f"NULL::{t} AS {quote_ident(c)}" for c, t in _nullable_types(m.kind).items()
                     if c not in recorded)


def row_relation(store: DatasetStore, m: Manifest, *, positions: bool = False,
                 ordered: bool = True, columns: list[str] | None = None,
                 rows: list[tuple[int, int, int]] | None = None) -> str:
    """SQL relation of ``m``'s rows, in the version's order (``ordered=False``: any order,
    for aggregates).  ``positions`` adds ``__shard``, ``__row``: where each row lives in the
    base shards (for a materialised version, in its own shards).  ``columns``: only these
    (default: all); a selection then reads only what they need (its file alone when it
    stores them all, the base scan without a join when it stores none of them).  ``rows``
    (a plain version only): just the rows at these positions, ``(shard, first, end)``, each
    range a filter on ``file_row_number`` that DuckDB answers by skipping the row groups
    outside it (a Dask partition's own rows: ``partitions.position_ranges``)."""
    if rows is not None:
        return _rows_at(store, m, rows, positions=positions, ordered=ordered, columns=columns)
    if m.selection is None:
        if columns is not None:
            inner = row_relation(store, m, positions=positions, ordered=ordered)
            pos = ", __shard, __row" if positions else ""
            return f"(SELECT {', '.join(quote_ident(c) for c in columns)}{pos} FROM {inner})"
        src = parquet_source(store.shard_paths(m))
        added = _added_columns(m)
        if not positions:
            return f"(SELECT *, {added} FROM {src})" if added else src
        order = " ORDER BY file_index, file_row_number" if ordered else ""
        return (f"(SELECT * EXCLUDE (file_row_number), file_index::INTEGER AS __shard, "
                f"file_row_number AS __row{', ' + added if added else ''} FROM {src[:-1]}, "
                f"file_row_number=true){order})")
    sel = m.selection
    return _resolved(store, sel, store.version_dir(m) / sel.file.path,
                     [f["name"] for f in m.schema_] if columns is None else list(columns),
                     set(sel.columns), positions=positions, ordered=ordered, kind=m.kind)


def _rows_at(store: DatasetStore, m: Manifest, rows: list[tuple[int, int, int]], *,
             positions: bool, ordered: bool, columns: list[str] | None) -> str:
    """The plain version's rows at ``rows``: the same ``read_parquet`` over every shard as
    a whole read (DuckDB then proves NOT NULL exactly as it does there: the bytes a
    merge must reproduce), filtered on ``file_index`` and ``file_row_number``, which
    DuckDB answers by skipping the files and row groups outside the runs."""
    if columns is not None:
        inner = _rows_at(store, m, rows, positions=positions, ordered=ordered, columns=None)
        pos = ", __shard, __row" if positions else ""
        return f"(SELECT {', '.join(quote_ident(c) for c in columns)}{pos} FROM {inner})"
    src = f"{parquet_source(store.shard_paths(m))[:-1]}, file_row_number=true)"
    where = " OR ".join(f"(file_index = {int(shard)} AND file_row_number >= {int(lo)} "
                        f"AND file_row_number < {int(hi)})" for shard, lo, hi in rows) or "false"
    added = _added_columns(m)
    pos = ", file_index::INTEGER AS __shard, file_row_number AS __row" if positions else ""
    order = " ORDER BY file_index, file_row_number" if ordered else ""
    return (f"(SELECT * EXCLUDE (file_row_number){pos}{', ' + added if added else ''} "
            f"FROM {src} WHERE {where}{order})")


def selection_relation(store: DatasetStore, sel, file_path: Path, columns: list[str]) -> str:
    """The rows of a selection file not yet published (any order): for its stats; each
    column set is read the cheapest way (``_resolved``)."""
    return _resolved(store, sel, file_path, list(columns), set(sel.columns), positions=False,
                     ordered=False)


def rejected_relation(store: DatasetStore, m: Manifest) -> str | None:
    """SQL relation of the rows a selection step rejected (columns, reason, explaining
    columns), or None when the version keeps its rejected rows as plain shards."""
    sel = m.selection
    if sel is None or sel.rejected is None:
        return None
    stored = {c for c in sel.columns if c in sel.rejected_columns} | {"reason", *sel.rejected_extra}
    resolved = _resolved(store, sel, store.version_dir(m) / sel.rejected.path,
                         [*sel.rejected_columns, "reason", *sel.rejected_extra], stored,
                         positions=False, ordered=True)
    if not m.rejected.files:
        return resolved
    # rejected rows that are no row of the input (kept whole, next to the positions)
    plain = f"{parquet_source(store.rejected_paths(m))[:-1]}, union_by_name=true)"
    return f"(SELECT * FROM {resolved} UNION ALL BY NAME SELECT * FROM {plain})"


def gathers(info: dict[str, Any], columns: list[str], stored: list[str]) -> bool:
    """Whether ``selection_digests`` takes the base's digests at the positions in numpy
    (``_gathered_digests``: no base column is stored or dropped, the base is small enough),
    which wants the positions ``scan_positions(keep=True)`` read."""
    base_cols = info["base_columns"]
    return not any(c in base_cols for c in stored) and all(c in columns for c in base_cols) \
        and sum(f.rows for f in info["base_files"]) <= _GATHER_ROWS


def selection_digests(con, store: DatasetStore, file_path: Path, info: dict[str, Any],
                      used: list[int], columns: list[str], stored: list[str],
                      positions=None, *, base=None, pool=None):
    """The digests of a selection's rows (before it is published), as bytes or a buffer
    (``content_fingerprint`` hashes either): the base's at the positions, corrected for the
    columns the selection stores or drops.  ``positions``: each row's base position in file
    order, as the position check read them (else read again here; the digests are written
    over them: the caller gives them up); ``base``: what
    ``prefetch_base_digests`` returned; ``pool``: ``selection_scan.publish_pool``'s."""
    base_cols = info["base_columns"]
    b_terms = [_h(c, "b") for c in stored if c in base_cols] + \
        [_h(c, "b") for c in base_cols if c not in columns]
    s_terms = [_h(c, "s") for c in stored]
    offsets = [0]
    for f in info["base_files"]:
        offsets.append(offsets[-1] + f.rows)
    if gathers(info, columns, stored):  # no b_terms, a base small enough
        base = base() if base is not None else \
            _base_digests(store.root / info["base_digests"].path, pool)
        return _gathered_digests(con, base, file_path, offsets, s_terms, positions, pool)
    digests = (f"(SELECT d, file_row_number AS pos FROM "
               f"{_file_sql(store.root / info['base_digests'].path)})")
    src = (_base_join(store, info["base_files"], used, _file_sql(file_path)) if b_terms
           else f"FROM {_file_sql(file_path)} s")
    sql = (f"SELECT {_xor(['dg.d', *b_terms, *s_terms])} AS d {src} JOIN {digests} dg "
           f"ON dg.pos = ([{', '.join(map(str, offsets))}])[s.{SHARD} + 1] + s.{ROW} "
           "ORDER BY s.file_row_number")
    return _digest_bytes(con, sql)


_GATHER_ROWS = 64_000_000  # base rows whose digests (8 bytes each) a publish may hold in memory


def prefetch_base_digests(store: DatasetStore, info: dict[str, Any], pool):
    """The base's digests for ``selection_digests(base=...)``, read on one thread of
    ``pool`` while the caller checks the positions on the others (the read and the check
    took ~0.3 s each at 10M rows, one after the other): a function that waits for them.
    Without a pool they are read when asked for."""
    path = store.root / info["base_digests"].path
    if pool is None:
        return lambda: _base_digests(path)
    return pool.submit(_base_digests, path).result


def _gathered_digests(con, base, file_path: Path, offsets: list[int], s_terms: list[str],
                      positions=None, pool=None):
    """``selection_digests`` without a join or a sort: the base's digests (``base``, numpy)
    taken at each row's position and xor-ed with the row's stored-column terms, placed at
    the row's index in the file (the version's order).  With ``positions`` (the position
    check's, in file order) DuckDB reads only the stored columns' terms and each row's
    index (the scan may run out of order); the (shard, row) -> position arithmetic per row
    was half of this query.  Results come as Arrow (zero copy to numpy): ``fetchnumpy``
    copies, ~2x slower here.  The digests are returned as the array's buffer: ``tobytes``
    copied 80 MB at 10M rows (0.2 s, most of it the first touch of fresh pages)."""
    import numpy as np

    if len(base) < offsets[-1]:  # positions were checked against the base's rows
        raise IntegrityError(f"{len(base)} row digests for the {offsets[-1]} rows of the base")
    if positions is not None:
        out = take(base, positions, pool)  # over the positions: the cached base is never written
        if s_terms and len(out):
            got = con.sql(f"SELECT s.file_row_number AS i, {_xor(s_terms)} AS x "
                          f"FROM {_file_sql(file_path)} s").to_arrow_table()
            if got.num_rows != len(out):
                raise IntegrityError(f"{file_path}: {got.num_rows} rows read, "
                                     f"{len(out)} positions checked")
            for batch in got.to_batches():
                idx = ints(batch.column(0)).astype(np.int64, copy=False)
                out[idx] ^= ints(batch.column(1)).astype(np.uint64, copy=False)
        return memoryview(out.astype(np.dtype("<u8"), copy=False))
    got = con.sql(
        f"SELECT s.file_row_number AS i, ([{', '.join(map(str, offsets[:-1]))}])[s.{SHARD} + 1] "
        f"+ s.{ROW} AS pos, {_xor(s_terms)} AS x FROM {_file_sql(file_path)} s").to_arrow_table()
    n = got.num_rows
    if n == 0:
        return b""
    out = np.empty(n, dtype=np.uint64)
    for batch in got.to_batches():
        i, pos, x = (ints(batch.column(k)) for k in range(3))
        out[i.astype(np.int64, copy=False)] = \
            base[pos.astype(np.int64, copy=False)] ^ x.astype(np.uint64, copy=False)
    return memoryview(out.astype(np.dtype("<u8"), copy=False))


_KEPT_DIGESTS = 8_000_000  # base rows whose digests stay in memory for the next selection
_last_digests: dict[tuple, Any] = {}


def _base_digests(path: Path, pool=None):
    """A base's row digests as numpy, read once per process for a small base: a pipeline's
    steps select from the same base one after another (pass rate, then its curriculum), and
    reading 1M digests costs ~30 ms.  Keyed like ``integrity.HashCache`` (size, mtime,
    ctime, inode), so a file changed since cannot be served; the step verified its sha256.
    Read in parts on ``pool`` (``selection_scan.read_digests``)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key in _last_digests:
        return _last_digests[key]
    base = read_digests(path, pool)
    _last_digests.clear()
    if len(base) <= _KEPT_DIGESTS:
        base.flags.writeable = False  # shared by the next publish: nobody writes into it
        _last_digests[key] = base
    return base


def chars_relation(store: DatasetStore, file_path: Path, info: dict[str, Any]) -> str:
    """``n`` = length(output) of each row of a selection, from the base's digests file."""
    offsets = [0]
    for f in info["base_files"]:
        offsets.append(offsets[-1] + f.rows)
    return (f"(SELECT dg.chars AS n FROM {_file_sql(file_path)} s JOIN (SELECT chars, "
            f"file_row_number AS pos FROM {_file_sql(store.root / info['base_digests'].path)}) dg "
            f"ON dg.pos = ([{', '.join(map(str, offsets))}])[s.{SHARD} + 1] + s.{ROW})")


def needed_files(store: DatasetStore, m: Manifest) -> list[tuple[str, FileEntry, Path]]:
    """Every file the rows of ``m`` are read from: (what, entry, absolute path).  For a
    selection: the selection file, the base shards it uses and the base's digests."""
    if m.selection is None:
        out = [("shard", f, p) for f, p in zip(m.files, store.shard_paths(m), strict=True)]
        if m.digests is not None:
            out.append(("digests", m.digests, store.version_dir(m) / m.digests.path))
        return out
    sel = m.selection
    out = [("selection", sel.file, store.version_dir(m) / sel.file.path)]
    out += [(f"base shard of {sel.base.ref}", sel.base_files[i], store.root / sel.base_files[i].path)
            for i in read_shards(sel.used)]
    out.append((f"base digests of {sel.base.ref}", sel.base_digests,
                store.root / sel.base_digests.path))
    return out


def base_ref(m: Manifest) -> ParentRef | None:
    return m.selection.base if m.selection is not None else None


def read_table(store: DatasetStore, m: Manifest, columns: list[str] | None = None):
    """A version's rows as one pyarrow Table, in order (small versions: tests, tools)."""
    from .duck import connect

    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    con = connect()
    try:
        return con.sql(f"SELECT {cols} FROM {row_relation(store, m)}").to_arrow_table()
    finally:
        con.close()


def read_rejected(store: DatasetStore, m: Manifest):
    """A version's rejected rows as one pyarrow Table (empty table when none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .duck import connect

    relation = rejected_relation(store, m)
    if relation is None:
        paths = store.rejected_paths(m)
        return pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default") \
            if paths else pa.table({})
    con = connect()
    try:
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table()
    finally:
        con.close()


def any_rejected_relation(store: DatasetStore, m: Manifest) -> str | None:
    """SQL relation of a version's rejected rows in either form, or None when none."""
    relation = rejected_relation(store, m)
    if relation is not None:
        return relation
    paths = store.rejected_paths(m)
    return f"{parquet_source(paths)[:-1]}, union_by_name=true)" if paths else None


def union_relation(store: DatasetStore, manifests: list[Manifest]) -> str:
    """SQL relation of the rows of several versions of one kind, one after the other."""
    parts = [row_relation(store, m) for m in manifests]
    if len(parts) == 1:
        return parts[0]
    return "(" + " UNION ALL BY NAME ".join(f"SELECT * FROM {p}" for p in parts) + ")"
