"""Decontamination: drop rows that share word n-grams with benchmark items (docs/filters.md).

A row is contaminated when at least ``min_matches`` of its word ``ngram``-grams (default 13,
the GPT-3 / Llama convention) also occur in one benchmark item.  Words are normalised as in
``text.py`` (lower case, letters and digits only); a text with fewer than ``ngram`` words is
one n-gram of all its words, so a short benchmark item matches only a row that contains it
as its whole text.

Benchmarks are prompts-like versions (their ``input`` messages) or files (JSONL, JSON,
Parquet, CSV) read by DuckDB; a file's text column is ``text_field`` or the first of
``input``, ``question``, ``problem``, ``prompt``, ``text``; its item id is ``id_field`` or
the first of ``id``, ``task_id``, ``unique_id``, else ``row N``.

Every rejected row says ``benchmark`` (version ref or file name), ``matched_item`` (the
benchmark item with the most shared n-grams; ties: smallest id), ``matched_ngrams`` and
``matched_text`` (the first 200 characters of that item).

How: with numba, one compiled pass over each row's text bytes (``ngram_kernels.py``; a plain
version's texts read with pyarrow straight from its shards) splits and hashes the words and
rules out every window whose adjacent word pairs are not all benchmark word pairs (one
bitmap lookup per word); the few windows left are hashed as n-grams and looked up in the
sorted benchmark n-grams.  With more than one DuckDB thread, pyarrow reads the texts in a
background thread from the step's start (while numba loads) and the kernels, which release
the GIL, scan each row group in one piece per thread (``overlap.py``; the same hits in the
same order).  Without numba DuckDB hashes the words (``text.py``) and numpy does the same.
Only the hits, keyed by each row's base position, go back to DuckDB to be joined with the
items and the rows.
"""

from __future__ import annotations

from contextlib import closing, nullcontext
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connection_threads, quote_ident
from thinkforge.manifests.errors import ConfigError, InputDataError, NotFoundError
from thinkforge.manifests.manifest import Step, sha256_file
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

from .base import (
    Resources,
    StepConfig,
    StepContext,
    filter_resources,
    require_kind,
    row_order,
    run_step,
    size_in_bytes,
    source,
)
from .minhash import MIX, MinHasher, flat_lists, window_hashes
from .overlap import ReadAhead, ordered_map
from .text import (
    MESSAGES_TEXT,
    prefetched,
    register,
    text_expr,
    word_hash_batches,
    word_hashes_expr,
)

BATCH_ROWS = 100_000
# texts read ahead of the kernels: at 1M rows (9 row groups of ~40 MB) most are read while
# numba loads (run_decontam 1M x 10k, fresh process: 64 MiB 1.61-1.76 s, 256 MiB 1.54-1.60 s,
# all 1.45-1.48 s; peak RSS ~0.8 -> ~1.0 GiB)
READ_AHEAD_BYTES = 256 << 20
TEXT_FIELDS = ("input", "question", "problem", "prompt", "text")
ID_FIELDS = ("id", "task_id", "unique_id")
READERS = {".jsonl": "read_json_auto", ".ndjson": "read_json_auto", ".json": "read_json_auto",
           ".parquet": "read_parquet", ".csv": "read_csv_auto"}
_MASK = np.uint64((1 << 24) - 1)  # 16M-entry bitmap of benchmark word pairs (16 MiB)


class DecontamConfig(StepConfig):
    ngram: int = Field(13, ge=1, le=64, description="words per n-gram")
    on: list[Literal["input", "output"]] = Field(["input"], min_length=1,
                                                 description="which texts of a row to check")
    min_matches: int = Field(1, ge=1, description="shared n-grams with one item that make a hit")
    text_field: str | None = Field(None, description="text column of benchmark files (default: "
                                                     "the first of " + ", ".join(TEXT_FIELDS) + ")")
    id_field: str | None = Field(None, description="item id column of benchmark files")


class BenchmarkFile(BaseModel):
    """A benchmark given as a file, recorded in the step config by path and content hash."""

    model_config = ConfigDict(extra="forbid")
    path: str
    sha256: str


class _DecontamStep(DecontamConfig):
    benchmark_files: list[BenchmarkFile] = Field(default_factory=list)


def step_config(config: DecontamConfig, files: list[Path]) -> DecontamConfig:
    """The config recorded in the manifest: the options plus each benchmark file's sha256."""
    return _DecontamStep(**config.model_dump(), benchmark_files=[
        BenchmarkFile(path=str(Path(f).resolve()), sha256=sha256_file(Path(f))) for f in files])


def run_decontam(store: DatasetStore, data: Manifest, benchmarks: list[Manifest | Path],
                 name: str, config: DecontamConfig | None = None,
                 resources: Resources | None = None) -> Manifest:
    """Drop rows of ``data`` sharing n-grams with any of ``benchmarks`` (versions or files)."""
    config = config or DecontamConfig()
    require_kind(data, "prompts", "sft", "rl_pool", role="data")
    if not benchmarks:
        raise ConfigError("no benchmark to decontaminate against",
                          hint="pass --against NAME[@VERSION] or --against FILE (repeatable)")
    versions = [b for b in benchmarks if isinstance(b, Manifest)]
    files = [Path(b) for b in benchmarks if not isinstance(b, Manifest)]
    for v in versions:
        require_kind(v, "prompts", "sft", "rl_pool", role="--against")
    for f in files:
        if f.suffix.lower() not in READERS or not f.is_file():
            raise NotFoundError(f"benchmark file {f} does not exist or is not "
                                f"{'/'.join(READERS)}", hint="give a prompts version or a file")
    step = step_config(config, files)
    columns = schema_for(data.kind).names

    def body(ctx: StepContext) -> None:
        con = ctx.con
        threads = connection_threads(con)
        # the first field's texts are read (pyarrow, without the GIL) while numba loads the
        # kernels and the benchmark index is built (both hold the GIL nearly all the time)
        early = _texts(store, data, config.on[0], threads, resources) \
            if _numba_installed() else None
        with closing(early) if early is not None else nullcontext():
            kernels = _kernels()
            if kernels is None:
                register(con)
            ctx.progress.phase("benchmark n-grams")
            index = _benchmark_index(con, store, versions, files, step, kernels)
            hits = []
            # every row with its base position: the hits and verdicts are keyed by it, and a
            # selection writes it without matching the row keys to positions again
            con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM "
                        f"{source(store, data, positions=True)}")
            ctx.progress.phase("scanning rows", rows=data.rows * len(config.on))
            for field in config.on:
                texts = early if field == config.on[0] else None
                hits.append(_row_hits(con, store, data, field, text_expr(field, columns), index,
                                      ctx.progress, threads, resources, texts))
        con.register("hits", pa.concat_tables(hits))
        con.execute("""
            CREATE TEMP TABLE matched AS
            SELECT __shard, __row, benchmark, item_id, n FROM (
              SELECT h.__shard, h.__row, g.benchmark, g.item_id, count(*) AS n,
                     row_number() OVER (PARTITION BY h.__shard, h.__row ORDER BY count(*) DESC,
                                        g.benchmark, g.item_id) AS rk
              FROM hits h JOIN bench_grams g ON g.gram = h.gram
              GROUP BY h.__shard, h.__row, g.benchmark, g.item_id)
            WHERE rk = 1 AND n >= ?""", [config.min_matches])
        judged = ("SELECT s.*, CASE WHEN m.__row IS NOT NULL THEN "
                  "'contaminated' END AS reason, m.benchmark, m.item_id AS matched_item, "
                  "m.n AS matched_ngrams, left(i.text, 200) AS matched_text FROM {rows} s "
                  "LEFT JOIN matched m ON m.__shard = s.__shard AND m.__row = s.__row "
                  "LEFT JOIN (SELECT DISTINCT ON (benchmark, item_id) * FROM items) i "
                  "ON i.benchmark = m.benchmark AND i.item_id = m.item_id")
        con.execute(f"CREATE TEMP VIEW judged AS {judged.format(rows='src')}")
        hit_rows = _hit_rows(con, store, data)
        if hit_rows is not None:  # the same verdicts over the matched rows alone
            con.execute(f"CREATE TEMP VIEW verdicts AS {judged.format(rows=hit_rows)}")
        ctx.keep_reject("judged", columns, order=row_order(data), rejected_order=("id", None),
                        extra=("benchmark", "matched_item", "matched_ngrams", "matched_text"),
                        size_of=[data], rows_from=data, narrow="judged", positioned=True,
                        every_row=True,  # LEFT JOINs of src: one judged row per row
                        verdicts=None if hit_rows is None else "verdicts")
        by_benchmark = dict(con.execute("SELECT benchmark, count(*) FROM matched GROUP BY ALL "
                                        "ORDER BY 1").fetchall())
        ctx.provenance.update({"data": data.ref, "benchmarks": [v.ref for v in versions]
                               + [f.name for f in files], "hits_by_benchmark": by_benchmark,
                               "benchmark_items": con.execute(
                                   "SELECT count(*) FROM items").fetchall()[0][0]})

    return run_step(store, name=name, kind=data.kind, step_type="filter.decontam", config=step,
                    inputs=[data, *versions], body=body, resources=resources)


def _hit_rows(con, store: DatasetStore, data: Manifest) -> str | None:
    """Inside a Dask partition split by position: the rows of ``data`` that have a match,
    read at their positions (``partition_runs.rows_at``), for its rejected rows; else None
    (a whole run reads every row for its kept ones anyway)."""
    from thinkforge.manifests.partitions import current

    from . import partition_runs

    partition = current()
    if partition is None or data.ref not in partition.ranges:
        return None
    hits = con.execute("SELECT __shard, __row FROM matched LIMIT ?",
                       [partition_runs.MAX_LISTED + 1]).fetchall()
    return partition_runs.rows_at(store, data, hits)


# the last benchmark index a Dask worker built (filters/partitioned.py): every partition of a
# decontam step (and the next step against the same benchmarks) reuses it instead of
# reading the items and hashing their n-grams again (~0.2 s per task at 10k items)
_LAST_INDEX: dict[tuple, tuple[pa.Table, pa.Table, _Index]] = {}


def _benchmark_index(con, store: DatasetStore, versions: list[Manifest], files: list[Path],
                     step: _DecontamStep, kernels) -> _Index:
    """Tables ``items`` and ``bench_grams`` and the index rows are looked up in; inside a
    Dask partition, kept for the next task that names the same benchmark contents (version
    fingerprints, file sha256s) and settings."""
    from thinkforge.manifests.partitions import current

    key = (tuple((v.ref, v.fingerprint) for v in versions),
           tuple((f.path, f.sha256) for f in step.benchmark_files),
           step.ngram, step.text_field, step.id_field, kernels is not None)
    if current() is not None and key in _LAST_INDEX:
        items, grams, index = _LAST_INDEX[key]
        con.register("cached_items", items)
        con.register("cached_grams", grams)
        con.execute("CREATE TEMP TABLE items AS SELECT * FROM cached_items")
        con.execute("CREATE TEMP TABLE bench_grams AS SELECT * FROM cached_grams")
        con.unregister("cached_items")
        con.unregister("cached_grams")
        return index
    con.execute("CREATE TEMP TABLE items (benchmark VARCHAR, item_id VARCHAR, text VARCHAR)")
    for v in versions:
        con.execute(f"INSERT INTO items SELECT ?, id, {text_expr('input', ['input'])} "
                    f"FROM {source(store, v)}", [v.ref])
    for f in files:
        _load_file(con, f, step)
    index = _benchmark_grams(con, step.ngram, kernels)
    if current() is not None:
        _LAST_INDEX.clear()  # one benchmark at a time: its items and n-grams stay in memory
        _LAST_INDEX[key] = (con.sql("SELECT * FROM items").to_arrow_table(),
                            con.sql("SELECT * FROM bench_grams").to_arrow_table(), index)
    return index


def _load_file(con, path: Path, config: DecontamConfig) -> None:
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw AS SELECT * FROM "
                    f"{READERS[path.suffix.lower()]}(?)", [str(path)])
    except duckdb.Error as exc:  # DuckDB's message says where: line, byte, column
        reason = str(exc).split("\n")[0].split(": ", 1)[-1]
        raise InputDataError(f"benchmark file {path} cannot be read: {reason}",
                             hint="fix that line, or pass the benchmark as an imported version "
                                  "(`thinkforge import FILE --name NAME`)") from None
    described = con.execute("DESCRIBE raw").fetchall()
    names = [r[0] for r in described]
    types = {r[0]: r[1] for r in described}
    text = config.text_field or next((f for f in TEXT_FIELDS if f in names), None)
    if text not in names:
        raise ConfigError(f"benchmark file {path}: no text column "
                          f"({config.text_field or ' / '.join(TEXT_FIELDS)})",
                          hint=f"its columns: {', '.join(names)}; pass --text-field")
    ident = config.id_field or next((f for f in ID_FIELDS if f in names), None)
    if config.id_field and config.id_field not in names:
        raise ConfigError(f"benchmark file {path}: no id column {config.id_field!r}",
                          hint=f"its columns: {', '.join(names)}")
    text_sql = MESSAGES_TEXT.format(col=quote_ident(text)) \
        if types[text].startswith("STRUCT") else f"{quote_ident(text)}::VARCHAR"
    id_sql = f"{quote_ident(ident)}::VARCHAR" if ident else "'row ' || row_number() OVER ()"
    con.execute(f"INSERT INTO items SELECT ?, {id_sql}, {text_sql} FROM raw", [path.name])


def _kernels():
    """``thinkforge.filters.ngram_kernels`` (compiled word hashing and n-gram lookup) or None without
    numba: then DuckDB hashes the words and numpy filters the windows (the same hits)."""
    try:
        from . import ngram_kernels
    except (ImportError, RuntimeError):  # RuntimeError: numba finds nowhere to cache them
        return None
    return ngram_kernels


def _benchmark_grams(con, n: int, kernels=None) -> _Index:
    """Create ``bench_grams(gram, benchmark, item_id)``; return the index rows are looked up in."""
    if kernels is not None:
        parts = [(b, _word_lists(kernels, b.column("text"))) for b in
                 con.sql("SELECT benchmark, item_id, text FROM items").to_arrow_reader(1 << 20)]
    else:
        parts = list(word_hash_batches(con, f"SELECT benchmark, item_id, "
                                            f"{word_hashes_expr('text')} AS words FROM items",
                                       1 << 20))
    table = pa.Table.from_batches([b.select(["benchmark", "item_id"]) for b, _ in parts],
                                  schema=pa.schema([("benchmark", pa.string()),
                                                    ("item_id", pa.string())]))
    words = pa.concat_arrays([w for _, w in parts] or [pa.array([], pa.list_(pa.uint64()))])
    grams, doc = MinHasher(num_perm=1, shingle=n).shingles(words)
    con.register("bench_grams_arrow", pa.table({
        "gram": grams, "benchmark": table.column("benchmark").take(doc),
        "item_id": table.column("item_id").take(doc)}))
    con.execute("CREATE TEMP TABLE bench_grams AS SELECT DISTINCT * FROM bench_grams_arrow")
    grams = np.sort(grams)  # np.unique: 0.3 s for 550k n-grams, sorting them 0.04 s
    return _Index(grams[np.r_[True, grams[1:] != grams[:-1]]] if len(grams) else grams, words, n,
                  kernels)


def _word_lists(kernels, texts) -> pa.ListArray:
    values, offsets = kernels.word_lists(*kernels.text_buffers(texts), kernels.TABLE)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int64()).cast(pa.int32()),
                                    pa.array(values, pa.uint64()))


class _Index:
    """Sorted benchmark n-gram hashes behind a bitmap of benchmark word pairs.

    A row's n-gram can only be a benchmark n-gram if each of its n - 1 adjacent word pairs
    is a pair of some benchmark item: one bitmap lookup per row word rules out almost every
    window before any n-gram hash is computed (random text: a 12-pair run of false hits has
    probability ~0.03^12).
    """

    def __init__(self, grams: np.ndarray, words: pa.ListArray, n: int, kernels=None):
        self.grams, self.n, self.kernels, self.bits = grams, n, kernels, None
        self.bitmap = np.zeros(int(_MASK) + 1, dtype=bool)
        values, offsets = flat_lists(words)
        if n > 1:
            pairs, inside = _pairs(values, offsets)
            self.bitmap[_slots(pairs[inside])] = True
        else:
            self.bitmap[_slots(values)] = True

    def hits(self, words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """(row index within ``words``, n-gram hash) of every benchmark n-gram of the rows."""
        values, offsets = flat_lists(words)
        lengths, n = np.diff(offsets), self.n
        if len(values) < n:
            starts = np.zeros(0, dtype=np.int64)
        elif n > 1:
            pairs, inside = _pairs(values, offsets)
            ok = np.flatnonzero(self.bitmap[_slots(pairs)] & inside)  # few: ~4% of random pairs
            # the window starting at word p covers pairs p .. p+n-2: all must be benchmark
            # pairs, i.e. p and the n-2 positions after it are consecutive entries of ``ok``
            k = n - 2
            starts = ok[:len(ok) - k][ok[k:] - ok[:len(ok) - k] == k] if len(ok) > k else ok[:0]
        else:
            starts = np.flatnonzero(self.bitmap[_slots(values)])
        grams = window_hashes(values, starts, n)
        rows = np.searchsorted(offsets, starts, side="right") - 1
        # a text shorter than n words is one n-gram of all its words (see the module doc)
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        if len(short):
            short_grams, doc = MinHasher(num_perm=1, shingle=n).shingles(words.take(short))
            rows, grams = np.r_[rows, short[doc]], np.r_[grams, short_grams]
        at = np.minimum(np.searchsorted(self.grams, grams), len(self.grams) - 1)
        found = self.grams[at] == grams if len(self.grams) else np.zeros(len(grams), bool)
        return rows[found], grams[found]


    def text_hits(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """``hits`` of the words of ``texts``, in one compiled pass over their bytes."""
        k = self.kernels
        if self.bits is None:
            self.bits = np.packbits(self.bitmap, bitorder="little")  # 2 MiB: stays in cache
        return k.text_hits(texts, self.bits, _MASK, self.grams, self.n)

    def column_hits(self, column) -> tuple[np.ndarray, np.ndarray]:
        """``text_hits`` of a column as read from Parquet: strings, or a messages list."""
        if self.bits is None:
            self.bits = np.packbits(self.bitmap, bitorder="little")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return self.kernels.text_hits(column, self.bits, _MASK, self.grams, self.n)
        return self.kernels.messages_hits(column, self.bits, _MASK, self.grams, self.n)


def _pairs(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hash of each adjacent word pair, and which pairs lie inside one text."""
    with np.errstate(over="ignore"):
        pairs = values[:-1] * MIX + values[1:]
    inside = np.ones(len(pairs), dtype=bool)
    ends = offsets[1:-1] - 1  # the last word of each text but the final one
    inside[ends[(ends >= 0) & (ends < len(pairs))]] = False
    return pairs, inside


def _slots(hashes: np.ndarray) -> np.ndarray:
    return np.bitwise_and(hashes, _MASK).view(np.int64)  # < 2**24: the same values, no copy


def _row_hits(con, store: DatasetStore, data: Manifest, field: str, text: str, index: _Index,
              progress, threads: int, resources: Resources | None, texts=None) -> pa.Table:
    """(__shard, __row, gram) for every n-gram of a row that is also a benchmark n-gram;
    ``texts``: ``_texts`` of ``field`` if already started."""
    out_shards, out_rows, out_grams = [], [], []
    direct = None
    if index.kernels is not None:
        direct = texts if texts is not None else _texts(store, data, field, threads, resources)
    if direct is not None:  # straight from the shards: (shard, first row, texts) per piece
        def piece_hits(piece):
            shard, first, column = piece
            return shard, first, len(column), index.column_hits(column)

        # the kernels release the GIL: each row group is cut in one piece per thread, so the
        # threads finish it together, and the hits come out in row order as with one thread
        with closing(direct):
            for shard, first, n, (rows, grams) in ordered_map(
                    piece_hits, _pieces(direct, threads), threads):
                progress.advance(n)
                out_shards.append(np.full(len(rows), shard, np.int32))
                out_rows.append(rows + first)
                out_grams.append(grams)
    else:
        if index.kernels is not None:
            batches = ((b, b.column(2)) for b in prefetched(
                con, f"SELECT __shard, __row, {text} AS text FROM src", BATCH_ROWS))
            hits = index.text_hits
        else:
            batches = word_hash_batches(con, f"SELECT __shard, __row, {word_hashes_expr(text)} "
                                             "AS words FROM src", BATCH_ROWS)
            hits = index.hits
        for batch, words in batches:
            rows, grams = hits(words)
            progress.advance(batch.num_rows)
            taken = pa.array(rows, pa.int64())
            out_shards.append(batch.column(0).take(taken).to_numpy(zero_copy_only=False))
            out_rows.append(batch.column(1).take(taken).to_numpy(zero_copy_only=False))
            out_grams.append(grams)
    def join(parts, dtype):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

    return pa.table({"__shard": pa.array(join(out_shards, np.int32)),
                     "__row": pa.array(join(out_rows, np.int64)),
                     "gram": pa.array(join(out_grams, np.uint64))})


def _numba_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("numba") is not None


def _texts(store: DatasetStore, data: Manifest, field: str, threads: int,
           resources: Resources | None):
    """``_shard_texts``, read ahead by a background thread (started now) when the step has
    more than one thread, up to READ_AHEAD_BYTES or a quarter of its memory limit."""
    texts = _shard_texts(store, data, field)
    if texts is None or threads <= 1:
        return texts
    limit = resources.memory_limit if resources else None
    budget = min(READ_AHEAD_BYTES, size_in_bytes(limit) // 4) if limit else READ_AHEAD_BYTES
    return ReadAhead(texts, lambda item: item[2].nbytes, budget)


def _pieces(texts, parts: int):
    """(shard, first row, texts) of ``texts`` with each column cut into ``parts`` slices."""
    for shard, first, column in texts:
        if isinstance(column, pa.ChunkedArray) and column.num_chunks == 1:
            column = column.chunk(0)  # combine_chunks would copy it
        step = max(1, -(-len(column) // parts))
        for lo in range(0, len(column), step):
            yield shard, first + lo, column.slice(lo, step)


def _shard_texts(store: DatasetStore, data: Manifest, field: str):
    """The texts of ``field`` read with pyarrow from a plain version's shards, one row group
    at a time, as (shard, first row, column): only that column's leaf (``input``: the
    messages' contents), no SQL. DuckDB's scan of the nested ``input`` column and the
    joined text it builds cost ~1 CPU-s per million rows; this reads the contents' string
    buffers, which the kernels take as they are.  A Dask partition split by position
    (``Partition.ranges``) reads only the row groups its runs overlap, sliced to them, as
    its SQL would.  None where the rows are not simply the shards' (a selection, a
    partition split by key hash) or the column is not stored as read."""
    import pyarrow.parquet as pq
    from thinkforge.manifests.partitions import current

    partition = current()
    runs = partition.ranges.get(data.ref) if partition is not None else None
    if data.selection is not None or (runs is None and partition is not None
                                      and data.ref in partition.keys):
        return None
    paths = store.shard_paths(data)
    leaf = "input.list.element.content" if field == "input" else field
    for path in paths:
        schema = pq.read_schema(path)
        if field not in schema.names:
            return None
        kind = schema.field(field).type
        if field == "input" and not (pa.types.is_list(kind) and pa.types.is_struct(kind.value_type)
                                     and kind.value_type.get_field_index("content") >= 0
                                     and pa.types.is_string(kind.value_type.field("content").type)):
            return None
        if field != "input" and not pa.types.is_string(kind):
            return None
    wanted = ([(shard, 0, None) for shard in range(len(paths))] if runs is None
              else [tuple(run) for run in runs])

    def texts():
        for shard, lo, hi in wanted:
            f = pq.ParquetFile(paths[shard])
            first = 0
            for group in range(f.num_row_groups):
                n = f.metadata.row_group(group).num_rows
                a, b = max(lo, first), n + first if hi is None else min(hi, n + first)
                if a < b:  # the part of [lo, hi) in this row group
                    column = f.read_row_group(group, columns=[leaf], use_threads=False).column(0)
                    yield shard, a, column if b - a == n else column.slice(a - first, b - a)
                first += n
    return texts()


def _run_step(ctx, inputs, name, config):
    return {name: run_decontam(ctx.store, inputs["data"], list(inputs["against"]), name, config,
                               resources=filter_resources(ctx))}


def _records(store, inputs, name, config):
    against = list(inputs["against"])
    versions = [b for b in against if isinstance(b, Manifest)]
    files = [Path(b) for b in against if not isinstance(b, Manifest)]
    step = step_config(config, files)
    return [(name, Step(type="filter.decontam", config=step.model_dump(mode="json")),
             [inputs["data"], *versions])]


TEXT_KINDS = ("prompts", "sft", "rl_pool")
STEP = register_step(StepDescriptor(
    type="decontam", record_type="filter.decontam", group="filter", resources=True,
    roles=(Role("data", TEXT_KINDS, help="version to clean"),
           Role("against", TEXT_KINDS, many=True, flag=True, files=True,
                help="benchmark: a version (gsm8k-test) or a file (.jsonl/.json/.parquet/.csv); "
                     "repeatable")),
    config=DecontamConfig, run=_run_step, records=_records,
    help="Drop rows sharing word n-grams with benchmark items; each hit names the item.",
    examples=("thinkforge filter decontam gsm8k --against gsm8k-test --name gsm8k-clean",
              "thinkforge filter decontam gsm8k --against gsm8k-test --against data/math500.jsonl "
              "--name clean")))
