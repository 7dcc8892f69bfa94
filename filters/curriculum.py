"""Curriculum ordering of an RL pool by progressive batching (docs/filters.md).

Llama-Nemotron orders RL prompts from easy to hard with "progressive batching": batches of
fixed size, each drawing from the pass-rate levels by a Gaussian whose centre moves from the
easiest level to the hardest.  The allocation (how many rows of each level go in each batch)
is computed from the level counts alone in ``curriculum_plan.plan_batches`` (see its
docstring for the exact rules and why the defaults are ``sigma=0.05``, ``schedule=linear``).
Everything row-sized happens in DuckDB, so the pool may be larger than RAM:

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

from typing import Literal

import duckdb
from pydantic import Field
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.selection import row_relation

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, run_step
from .curriculum_plan import plan_batches

LEVEL_DECIMALS = 6


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
        # bound lists, not a registered Arrow table (registering imports pandas: 0.3 s)
        con.execute("CREATE TEMP TABLE alloc AS SELECT unnest(?::BIGINT[]) AS first_rank, "
                    "unnest(?::BIGINT[]) AS batch", [rows["first_rank"], rows["batch"]])
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
        ctx.bind(batch_size=config.batch_size)
        narrow = None
        if selects:  # the placed rows carry their base positions: no join back to the pool
            narrow = (f"(SELECT shard AS __shard, row_in_shard AS __row, id{carry}, "
                      "batch AS curriculum_batch, rowid - batch * (SELECT batch_size FROM knobs) "
                      "AS curriculum_position, NULL::VARCHAR AS reason FROM placed)")
        # every row kept, with a new batch and position: a selection storing those two
        # columns (in curriculum order), or the rows rewritten when materialising
        con.execute(f"""
            CREATE TEMP VIEW judged AS
            SELECT {', '.join('p.' + c for c in columns)}, x.batch AS curriculum_batch,
                   x.rowid - x.batch * (SELECT batch_size FROM knobs) AS curriculum_position,
                   NULL::VARCHAR AS reason
            FROM pool p JOIN placed x ON x.shard = p.shard AND x.row_in_shard = p.row_in_shard""")
        ctx.keep_reject("judged", [*columns, "curriculum_batch", "curriculum_position"],
                        order=("curriculum_batch, curriculum_position", "curriculum_batch"),
                        changed=("curriculum_batch", "curriculum_position"), narrow=narrow,
                        positioned=narrow is not None)
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
