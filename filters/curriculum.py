"""Curriculum ordering of an RL pool by progressive batching (docs/filters.md).

Llama-Nemotron orders RL prompts from easy to hard with "progressive batching": batches of
fixed size, each drawing from the pass-rate levels by a Gaussian whose centre moves from the
easiest level to the hardest.  The allocation (how many rows of each level go in each batch)
is computed from the level counts alone in ``curriculum_plan.plan_batches`` (see its
docstring for the exact rules and why the defaults are ``sigma=0.05``, ``schedule=linear``).
The rows are read and written by DuckDB; the two seeded orders below are sorted in numpy
on the rows' keys (level, 64-bit hashes: ~256 B a row) while the pool fits half the step's
memory limit, else by DuckDB (out of core, so the pool may be larger than RAM); both give
the same order and bytes:

* a pass-rate *level* is a distinct pass rate (rounded to 6 decimals), easiest (highest)
  first;
* within a level, rows are taken in a seeded hash order (DuckDB's 64-bit ``hash`` of seed
  and id; ties by id), so which rows of a level land in which batch is random but
  reproducible (the DuckDB version is recorded in the provenance: ``hash`` may change
  between major versions);
* within a batch, ``curriculum_position`` is again a seeded hash order (the shuffle).

Output: the same rows (none dropped), ``curriculum_batch`` 0..T-1 and ``curriculum_position``
0..B-1 filled in, written in curriculum order.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
from pydantic import Field
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.arrow_numpy import from_numpy, numbers, strings
from thinkforge.manifests.duck import connection_threads, quote_literal
from thinkforge.manifests.partitions import current as current_partition
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.selection import row_relation

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, run_step, size_in_bytes
from .curriculum_plan import plan_batches

LEVEL_DECIMALS = 6
# bytes a row of the pool holds, at the peak, while it is placed in numpy: its narrow row
# as Arrow (id, positions, stored columns, level, hashes; or the hashes of at most two base
# rows a row, _gathered_keys), the orders, the reordered copy
PLACE_BYTES = 256


class CurriculumConfig(StepConfig):
    batch_size: int = Field(..., ge=1, description="rows per batch (every batch is full except "
                                                   "possibly the last)")
    sigma: float = Field(0.05, gt=0, le=10, description="Gaussian width as a fraction of the "
                                                        "pool (cumulative-row axis)")
    schedule: Literal["linear", "cosine"] = Field(
        "linear", description="how the centre moves from the easiest to the hardest level")
    seed: int = Field(0, description="seed of the within-level draw and the in-batch shuffle")


def sort_by_hash(con, table: str, select: str, order: str, keys: tuple[str, ...],
                 params: list) -> None:
    """``CREATE TEMP TABLE table AS select ORDER BY order, id`` (rows in that order), sorting
    on ``order`` alone when that is the same thing: the hash keys end ``order``, so two rows
    tie only on a 64-bit collision, which adjacent equal ``keys`` would show; then the sort
    runs again with ``id`` last.  A string id as the last sort key made each sort ~1.5x
    slower (bench/README.md)."""
    con.execute(f"CREATE TEMP TABLE {table} AS {select} ORDER BY {order}", params)
    got = con.execute("SELECT " + ", ".join(f"coalesce({k}, -1e308)" if k == "level_rate" else k
                                            for k in keys) + f" FROM {table}").fetchnumpy()
    same = None
    for column in got.values():
        eq = column[1:] == column[:-1]
        same = eq if same is None else same & eq
    if same is not None and bool(same.any()):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {select} ORDER BY {order}, id",
                    params)


def place(level: np.ndarray, h: np.ndarray, hp: np.ndarray, first_rank: list[int],
          batch_of: list[int], threads: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """The curriculum order in numpy: rows ranked by (level, h), each rank's batch from the
    allocation (ranks ``first_rank[i]`` up to the next one go to ``batch_of[i]``), then
    ordered by (batch, hp).  Returns (rows in curriculum order, their batch), or None when
    two rows tie on (level, h) or (batch, hp): a 64-bit collision, which only the id can
    order (the SQL path sorts on it then).  Each order is a stable (radix) sort of the small
    key, then the hash sorted within each run of it (``_lexsort``, on ``threads``)."""
    order = _lexsort(level, h, threads)
    if _ties(level[order], h[order]):
        return None
    sizes = np.diff(np.append(np.asarray(first_rank, dtype=np.int64), len(order)))
    batch = np.empty(len(order), dtype=np.int64)
    batch[order] = np.repeat(np.asarray(batch_of, dtype=np.int64), sizes)
    small = batch.astype(np.int16) if batch.max(initial=0) < 2**15 else batch
    final = _lexsort(small, hp, threads)
    if _ties(small[final], hp[final]):
        return None
    return final, batch[final]


def _lexsort(small: np.ndarray, key: np.ndarray, threads: int = 1) -> np.ndarray:
    """Rows ordered by (small, key): a stable (radix) sort of the small key, then each run of
    rows with one small key sorted by ``key``; rows that tie on both come out in either order
    (the caller rejects ties).  A run is shorter than the whole (a level, a batch), so this
    sorts less than one argsort of every key; batches are all ``batch_size`` rows but the last:
    one 2-D argsort, row by row (at 747k rows in 730 batches ~30 ms instead of ~65 ms).
    ``threads``: the runs (and blocks of the 2-D rows) sorted on that many threads (numpy's
    sorts release the GIL; DuckDB is idle meanwhile)."""
    order = np.argsort(small, kind="stable")
    if len(order) < 2:
        return order
    k = key[order]
    cuts = np.flatnonzero(small[order][1:] != small[order][:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.append(cuts, len(order))
    width = int(ends[0] - starts[0])
    full = len(starts) - 1 if len(starts) > 1 else 1  # runs before the last one
    jobs = []
    rows = None
    if width > 1 and (ends[:full] - starts[:full] == width).all():
        m = full * width
        square = k[:m].reshape(full, width)
        rows = np.empty((full, width), dtype=np.intp)

        def block(a: int, b: int) -> None:
            rows[a:b] = np.argsort(square[a:b], axis=1)

        edges = np.linspace(0, full, threads + 1).astype(int).tolist()
        jobs += [(block, a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]
        starts, ends = starts[full:], ends[full:]

    def run(lo: int, hi: int) -> None:
        order[lo:hi] = order[lo:hi][np.argsort(k[lo:hi])]

    jobs += [(run, lo, hi) for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True)
             if hi - lo > 1]
    if threads > 1 and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda job: job[0](*job[1:]), jobs))
    else:
        for job in jobs:
            job[0](*job[1:])
    if rows is not None:
        m = rows.size
        rows += np.arange(0, m, width, dtype=rows.dtype)[:, None]
        order[:m] = order[rows.ravel()]
    return order


def _ties(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(((a[1:] == a[:-1]) & (b[1:] == b[:-1])).any())


def _gathered_keys(ctx: StepContext, pool: Manifest, seed: str, stored: list[str]
                   ) -> tuple[dict[str, np.ndarray], str, dict[str, object] | None] | None:
    """The pool's (level_rate, h, hp) in its selection file's order, the SQL of that file's
    rows (its positions and ``stored`` columns, the same order) and those rows' columns
    fetched (``_fetched_rows``; None when one cannot be), or None when the pool is no
    selection storing its pass rates (not its ids) over a base it mostly keeps.

    The hashes are taken over every base row of the shards it uses, in base order, and
    picked at each row's position in numpy: no join of the selection to the base for its
    ids (the join and the ids carried to the write cost ~2x more at 1M prompts, 75% kept).
    """
    from thinkforge.manifests.duck import parquet_source
    from thinkforge.manifests.selection import ROW, SHARD, read_shards

    sel = pool.selection
    if sel is None or "pass_rate" not in sel.columns or "id" in sel.columns \
            or current_partition() is not None:
        return None
    shards = read_shards(sel.used)
    base_rows = sum(sel.base_files[i].rows for i in shards)
    if not sel.file.rows or base_rows > 2 * sel.file.rows:  # sparse: the join hashes fewer
        return None
    con = ctx.con
    path = quote_literal(str(ctx.store.version_dir(pool) / sel.file.path))
    codes = _string_codes(con, path, stored)
    con.execute("SET preserve_insertion_order=true")  # the base's rows, the file's, in order
    hashes = _fetch(con, "SELECT hash(? || ':' || id) AS h, hash(? || ':pos:' || id) AS hp FROM "
                    + parquet_source([ctx.store.root / sel.base_files[i].path for i in shards]),
                    [seed, seed])
    fetched = [] if codes is None else [
        f"(list_position(?::VARCHAR[], {c}) - 1)::SMALLINT AS {c}" if c in codes else c
        for c in stored]
    got = _fetch(con, f"SELECT {SHARD}, {ROW}, round(pass_rate, {LEVEL_DECIMALS}) AS level_rate"
                 + "".join(f", {c}" for c in fetched) + f" FROM read_parquet({path})",
                 [] if codes is None else [codes[c] for c in stored if c in codes])
    con.execute("SET preserve_insertion_order=false")
    if hashes["h"] is None or hashes["hp"] is None or len(hashes["h"]) != base_rows \
            or got[SHARD] is None or got[ROW] is None:
        return None
    # where each used shard starts among the hashed rows (positions were checked at publish)
    start = np.zeros(len(sel.base_files), dtype=np.int64)
    start[shards] = np.cumsum([0] + [sel.base_files[i].rows for i in shards[:-1]])
    at = start[got[SHARD].astype(np.int64)] + got[ROW].astype(np.int64)
    keys = {"level_rate": got["level_rate"], "h": hashes["h"][at], "hp": hashes["hp"][at]}
    rows = (f"SELECT s.{SHARD} AS __shard, s.{ROW} AS __row"
            + "".join(f", s.{c}" for c in stored) + f" FROM read_parquet({path}) s")
    columns = None
    if codes is not None and all(got[c] is not None for c in stored):
        columns = {"__shard": got[SHARD], "__row": got[ROW],
                   **{c: (got[c], codes[c]) if c in codes else got[c] for c in stored}}
    return keys, rows, columns


def _fetch(con, sql: str, params: list) -> dict[str, np.ndarray | None]:
    """A query's columns as numpy arrays, by way of Arrow (``fetchnumpy`` converts each
    column: 2-3x slower at 1M rows); a column with a NULL (or no rows, or not a number)
    comes back as None."""
    table = con.sql(sql, params=params).to_arrow_table()
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        chunks = [numbers(c) for c in column.chunks]
        out[name] = None if column.null_count or not chunks or any(c is None for c in chunks) \
            else chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return out


def _string_codes(con, path: str, stored: list[str]) -> dict[str, list[str]] | None:
    """The distinct values of each stored string column (a pass rate's bucket) of the
    selection file at ``path``: those columns are fetched as their codes in these lists,
    not as a Python string a row.  None when a stored column is neither a number nor a
    string with a few values (its rows then go to DuckDB through the selection file)."""
    import pyarrow as pa

    schema = schema_for("rl_pool")
    strings = []
    for c in stored:
        t = schema.field(c).type
        if pa.types.is_string(t):
            strings.append(c)
        elif not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            return None
    if not strings:
        return {}
    got = con.execute("SELECT " + ", ".join(f"list(DISTINCT {c}) FILTER (WHERE {c} IS NOT NULL)"
                                            for c in strings)
                      + f" FROM read_parquet({path})").fetchall()[0]
    codes = {c: sorted(values or []) for c, values in zip(strings, got, strict=True)}
    return codes if all(len(v) < 2**15 for v in codes.values()) else None


def _placed_in_numpy(ctx: StepContext, pool: Manifest, stored: list[str], seed: str,
                     levels: list[tuple], alloc: dict[str, list[int]]
                     ) -> tuple[str, bool, bool] | None:
    """The placed rows as a relation for ``keep_reject``'s ``narrow`` (positions, the
    stored columns, batch and position), whether it has the ids (``keyed``) and whether its
    rows come in curriculum order (``presorted``), or None when the SQL path must place
    them: a NULL or NaN level (its place in DuckDB's order is not numpy's) or a hash
    collision.

    DuckDB reads the rows once, unsorted, with their two seeded hashes (``_gathered_keys``,
    else a table of the pool's rows with their ids); the two orders are numpy sorts of the
    keys (DuckDB sorting the narrow rows twice cost ~4x more).  Rows fetched whole (the
    pool's positions and numbers, its bucket as codes) are put in curriculum order in numpy
    and handed to DuckDB as an Arrow table: the kept file is then written in that order
    without a sort (``_in_order``; ~0.07 s less at 747k rows).  Otherwise each row's batch
    and position go back, in the rows' order, as an uncompressed Parquet file in the spill
    directory, joined to the rows by position and sorted by the write."""
    con = ctx.con
    gathered = _gathered_keys(ctx, pool, seed, stored)
    columns = None
    if gathered is not None:
        got, rows, columns = gathered
    else:
        carry = "".join(f", {c}" for c in stored)
        con.execute(f"CREATE TEMP TABLE __cur_rows AS SELECT id, shard, row_in_shard{carry}, "
                    "level_rate, hash(? || ':' || id) AS h, hash(? || ':pos:' || id) AS hp "
                    "FROM pool", [seed, seed])
        con.execute("SET preserve_insertion_order=true")  # the fetched rows in rowid order
        got = con.execute("SELECT level_rate, h, hp FROM __cur_rows").fetchnumpy()
        con.execute("SET preserve_insertion_order=false")
        rows = ("SELECT c.shard AS __shard, c.row_in_shard AS __row, c.id"
                + "".join(f", c.{c}" for c in stored) + " FROM __cur_rows c")
    rates = np.array([r for r, _ in levels], dtype=np.float64)
    rate = got["level_rate"]
    # a NULL comes back masked (checked by attribute: np.ma's import alone costs 25 ms), or
    # as None from _fetch
    if rate is None or getattr(rate, "mask", np.False_).any() or np.isnan(rates).any() \
            or (np.diff(rates) >= 0).any():
        return None
    rate = np.asarray(rate, dtype=np.float64)
    ascending = rates[::-1]
    at = np.minimum(np.searchsorted(ascending, rate), len(ascending) - 1)
    if (ascending[at] != rate).any():  # a level the GROUP BY did not see: not this pool
        return None
    # levels easiest (highest) first, as the ranks of the allocation count them
    level = (len(ascending) - 1 - at).astype(np.int16 if len(ascending) < 2**15 else np.int64)
    threads = connection_threads(con)
    placed = place(level, np.asarray(got["h"]), np.asarray(got["hp"]), alloc["first_rank"],
                   alloc["batch"], threads)
    if placed is None:
        return None
    final, batch = placed
    size = int(con.execute("SELECT batch_size FROM knobs").fetchall()[0][0])
    if columns is not None:
        return _in_order(con, columns, final, batch, size, threads), False, True
    # each row's batch and position, in rowid order (the order the table scan gives)
    position = np.empty(len(final), dtype=np.int64)
    position[final] = np.arange(len(final), dtype=np.int64) - batch * size
    by_row = np.empty(len(final), dtype=np.int64)
    by_row[final] = batch
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    path = spill / f"curriculum-order-{uuid.uuid4().hex}.parquet"
    # plain pages (no dictionary, no statistics): the file is read once, in order
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, pa.schema([("curriculum_batch", pa.int64()),
                                           ("curriculum_position", pa.int64())]),
                          compression="none", use_dictionary=False,
                          write_statistics=False) as out:
        out.write_table(pa.Table.from_arrays([from_numpy(by_row), from_numpy(position)],
                                             names=["curriculum_batch", "curriculum_position"]))
    return (f"(SELECT x.*, o.curriculum_batch, o.curriculum_position, NULL::VARCHAR AS reason "
            f"FROM ({rows}) x POSITIONAL JOIN read_parquet({quote_literal(str(path))}) o)",
            gathered is None, False)


def _in_order(con, columns: dict[str, object], final: np.ndarray, batch: np.ndarray,
              size: int, threads: int = 1) -> str:
    """The fetched rows (``_gathered_keys``) taken in curriculum order (``final``), with
    their batch and position, as an Arrow table registered on ``con`` (scanned in place:
    DuckDB 2.0 imports no pandas for it; unregistered with the step's connection); a
    string column goes as its codes into its distinct values and comes back as VARCHAR.
    Its rows have no NULL (``_gathered_keys``): the table ``keep_reject`` makes of them
    has the NOT NULL statistics, and so the Parquet bytes, of the rows read from the file."""
    import pyarrow as pa

    def gather(values: np.ndarray) -> np.ndarray:
        return values[final]

    plain = [v[0] if isinstance(v, tuple) else v for v in columns.values()]
    if threads > 1:  # numpy's gathers release the GIL (DuckDB idles meanwhile)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            taken = list(pool.map(gather, plain))
    else:
        taken = [gather(v) for v in plain]
    arrays, names, select = [], [], []
    for (name, values), rows in zip(columns.items(), taken, strict=True):
        if isinstance(values, tuple):
            arrays.append(pa.DictionaryArray.from_arrays(from_numpy(rows), strings(values[1])))
            select.append(f"{name}::VARCHAR AS {name}")
        else:
            arrays.append(from_numpy(rows))
            select.append(name)
        names.append(name)
    arrays += [from_numpy(batch), from_numpy(np.arange(len(final), dtype=np.int64) - batch * size)]
    names += ["curriculum_batch", "curriculum_position"]
    table = f"__cur_placed_{uuid.uuid4().hex}"
    con.register(table, pa.Table.from_arrays(arrays, names=names))
    return (f"(SELECT {', '.join(select)}, curriculum_batch, curriculum_position, "
            f"NULL::VARCHAR AS reason FROM {table})")


def _python_budget(resources: Resources | None) -> int:
    """Bytes the numpy placement may hold: half the step's memory limit (DuckDB holds
    little else meanwhile: the levels), 4 GiB without a limit."""
    limit = resources.memory_limit if resources else None
    return size_in_bytes(limit) // 2 if limit else 4 << 30


def run_curriculum(store: DatasetStore, pool: Manifest, name: str, config: CurriculumConfig,
                   resources: Resources | None = None) -> Manifest:
    """Write ``pool`` (an ``rl_pool`` version) again with its curriculum batch and position."""
    require_kind(pool, "rl_pool", role="pool")
    columns = [f.name for f in schema_for("rl_pool")
               if f.name not in ("curriculum_batch", "curriculum_position")]

    def body(ctx: StepContext) -> None:
        con = ctx.con
        seed = str(config.seed)
        # (shard, row in shard) names a row more cheaply than its id: the final join is on it
        con.execute(f"CREATE TEMP VIEW pool AS SELECT * EXCLUDE (__shard, __row), "
                    f"round(pass_rate, {LEVEL_DECIMALS}) AS level_rate, __shard AS shard, "
                    "__row AS row_in_shard "
                    f"FROM {row_relation(store, pool, positions=True, ordered=False)}")
        ctx.progress.phase("placing rows in batches")
        # the levels need only pass_rate (a selection's own column: no base shard is read)
        levels = con.execute(
            f"SELECT round(pass_rate, {LEVEL_DECIMALS}) AS level_rate, count(*) FROM "
            f"{row_relation(store, pool, columns=['pass_rate'], ordered=False)} GROUP BY level_rate "
            "ORDER BY level_rate DESC").fetchall()
        counts = [n for _, n in levels]
        plan = plan_batches(counts, config.batch_size, config.sigma, config.schedule)
        # one row per (level, batch): the first rank, counted over all levels easiest first,
        # that goes to the batch
        rows = {"first_rank": [], "batch": []}
        start = 0
        for level in range(len(levels)):
            for batch, n in enumerate(plan[:, level].tolist()):
                if n:
                    rows["first_rank"].append(start)
                    rows["batch"].append(batch)
                    start += n
        # Ranks without window functions (a partitioned window over a few huge levels runs on
        # one thread): a table filled from a sorted query, insertion order kept, numbers its
        # rows in that order (rowid).  Narrow rows only (id and keys); the one sort of whole
        # rows is the final one into curriculum order.
        # A selection's rows keep the pool's stored columns (counts, bucket) and need no other
        # column: they travel with the narrow rows, so nothing joins the pool again.
        selects = ctx.selects()
        stored = [c for c in (pool.selection.columns if selects and pool.selection else [])
                  if c in columns and c != "id"]
        carry = "".join(f", {c}" for c in stored)
        ctx.bind(batch_size=config.batch_size)
        narrow = placed = None
        keyed, presorted = True, False
        if selects and len(counts) and sum(counts) * PLACE_BYTES <= _python_budget(resources):
            narrow, keyed, presorted = _placed_in_numpy(ctx, pool, stored, seed, levels, rows) \
                or (None, True, False)
            placed = narrow and ("(SELECT __shard AS shard, __row AS row_in_shard, curriculum_batch "
                                 f"AS batch, curriculum_position FROM {narrow})")
        if narrow is None:
            # bound lists, not a registered Arrow table (registering imports pandas: 0.3 s)
            con.execute("CREATE TEMP TABLE alloc AS SELECT unnest(?::BIGINT[]) AS first_rank, "
                        "unnest(?::BIGINT[]) AS batch", [rows["first_rank"], rows["batch"]])
            con.execute("SET preserve_insertion_order=true")
            sort_by_hash(con, "ranked", f"SELECT id, shard, row_in_shard{carry}, level_rate, "
                         "hash(? || ':' || id) AS h FROM pool", "level_rate DESC, h",
                         ("level_rate", "h"), [seed])
            # batches are full but the last: batch b starts at b * batch_size in curriculum order
            sort_by_hash(con, "placed", f"""
                SELECT r.shard, r.row_in_shard, a.batch{''.join(f', r.{c}' for c in stored)}, r.id,
                       hash(? || ':pos:' || r.id) AS hp
                FROM (SELECT rowid AS level_rank, * FROM ranked) r
                ASOF JOIN alloc a ON r.level_rank >= a.first_rank""", "batch, hp", ("batch", "hp"),
                         [seed])
            con.execute("SET preserve_insertion_order=false")
            placed = ("(SELECT shard, row_in_shard, batch, rowid - batch * (SELECT batch_size "
                      "FROM knobs) AS curriculum_position FROM placed)")
            if selects:  # the placed rows carry their base positions: no join back to the pool
                narrow = (f"(SELECT shard AS __shard, row_in_shard AS __row, id{carry}, "
                          "batch AS curriculum_batch, rowid - batch * (SELECT batch_size FROM "
                          "knobs) AS curriculum_position, NULL::VARCHAR AS reason FROM placed)")
        # every row kept, with a new batch and position: a selection storing those two
        # columns (in curriculum order), or the rows rewritten when materialising
        con.execute(f"""
            CREATE TEMP VIEW judged AS
            SELECT {', '.join('p.' + c for c in columns)}, x.batch AS curriculum_batch,
                   x.curriculum_position, NULL::VARCHAR AS reason
            FROM pool p JOIN {placed} x ON x.shard = p.shard AND x.row_in_shard = p.row_in_shard""")
        ctx.keep_reject("judged", [*columns, "curriculum_batch", "curriculum_position"],
                        order=("curriculum_batch, curriculum_position", "curriculum_batch"),
                        changed=("curriculum_batch", "curriculum_position"), narrow=narrow,
                        positioned=narrow is not None, keyed=keyed, presorted=presorted)
        ctx.provenance.update({
            "pool": pool.ref, "batches": int(plan.shape[0]), "duckdb": duckdb.__version__,
            "levels": {f"{rate:g}": n for rate, n in levels},
            "first_batches": [dict(zip((f"{r:g}" for r, _ in levels), map(int, row), strict=True))
                              for row in plan[:5]],
        })

    return run_step(store, name=name, kind="rl_pool", step_type="filter.curriculum",
                    config=config, inputs=[pool], body=body, resources=resources)


STEP = declare_filter(
    "curriculum", run_curriculum, config=CurriculumConfig, kinds=("rl_pool",), role="pool",
    output_kind="rl_pool",
    help="Order an rl_pool easy -> hard by progressive batching (curriculum_batch, _position).",
    examples=("thinkforge filter curriculum gsm8k-pool --name gsm8k-curriculum --batch-size 64",
              "thinkforge filter curriculum pool@v2 --name cur --batch-size 256 --sigma 0.1 "
              "--schedule cosine"))
