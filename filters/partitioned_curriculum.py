"""The curriculum step split across Dask workers in two phases (issue 12 item 3).

The local step (``filters/curriculum.py``) ranks the whole pool by (level easiest first,
seeded hash, id), hands rank ranges to batches by the plan computed from the level counts,
and numbers each batch's rows by a second seeded hash.  Split:

1. **counts** (one task per partition of the pool by ``hash(id)``): each task writes its
   rows' narrow sort keys (level, ``h = hash(seed:id)``, id, ``hp = hash(seed:pos:id)``,
   where the row lives) to a partition file and returns how many rows fall in each *cell*
   (level, the top bits of ``h``): a few thousand numbers.
2. **plan** (the driver): the level counts are the cells' sums, so ``plan_batches`` gives
   the local plan; the batches are cut into contiguous ranges, one per task.  Within a
   level the plan hands out ranks to batches in batch order, so the rows of batches
   [b0, b1) are, in every level, one contiguous range of that level's ranks; the cells'
   counts say which cells hold it and the rank each cell starts at.
3. **place** (one task per batch range): reads only those cells' rows from every phase-1
   file, ranks them inside their cells (cells are disjoint ranges of ``h``), keeps its
   ranks, finds each row's batch as the local step does (ASOF on the allocation) and
   numbers its batches' rows by (hp, id): its batches are whole, so the positions are
   the local ones.  It writes its rows as selection positions (``thinkforge.manifests.partitions``).
4. **merge** (``thinkforge.filters.partitioned.merge_partitions``): the union sorted by (batch,
   position), written with the local COPY settings: the local bytes and fingerprint; the
   provenance is the driver's (the same facts the local step records).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from thinkforge.manifests.partitions import PHASED, Partition, Phases, running, threads_here

from .partitioned import FINISH, merge_partitions

CELL_SHIFT = 54  # 1024 cells per level: a place task reads at most 2 cells it does not keep


def _store(store_at):
    store_cls, root = store_at
    return store_cls(root)


def _connection(store, resources: dict[str, Any], hosts: dict[str, int]):
    from .base import Resources, open_connection

    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here(hosts)
    return open_connection(store, res)


def curriculum_counts(store_at, pool_ref: str, seed: str, index: int, count: int, out: str,
                      hosts: dict[str, int], resources: dict[str, Any]) -> dict[str, Any]:
    """Phase 1 on a worker: the narrow sort keys of partition ``index`` and its cell counts."""
    import shutil

    from thinkforge.manifests.selection import row_relation

    from .curriculum import LEVEL_DECIMALS

    store = _store(store_at)
    pool = store.resolve(pool_ref)
    path = Path(out) / f"keys-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet"  # a rerun: afresh
    con, spill = _connection(store, resources, hosts)
    try:
        con.execute(f"""
            COPY (SELECT level_rate, (h >> {CELL_SHIFT})::BIGINT AS cell, h, id, hp, shard,
                         row_in_shard
                  FROM (SELECT round(pass_rate, {LEVEL_DECIMALS}) AS level_rate,
                               hash(? || ':' || id) AS h, id, hash(? || ':pos:' || id) AS hp,
                               __shard AS shard, __row AS row_in_shard
                        FROM {row_relation(store, pool, positions=True, ordered=False)}
                        WHERE hash(id) % {int(count)} = {int(index)}))
            TO '{path}' (FORMAT parquet)""", [seed, seed])
        cells = con.execute("SELECT level_rate, cell, count(*) FROM read_parquet(?) "
                            "GROUP BY ALL", [str(path)]).fetchall()
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return {"path": str(path), "cells": cells}


def curriculum_place(store_at, pool_ref: str, name: str, config, resources: dict[str, Any],
                     hosts: dict[str, int], index: int, count: int, out: str,
                     files: list[str], cells: list[tuple], alloc: list[tuple],
                     first_slot: int, provenance: dict[str, Any]) -> dict[str, Any]:
    """Phase 2 on a worker: the rows of its batches, placed and written as positions."""
    import pyarrow as pa
    from thinkforge.manifests.duck import quote_literal
    from thinkforge.manifests.schemas import schema_for
    from thinkforge.manifests.selection import row_relation

    from .base import Resources, run_step

    store = _store(store_at)
    pool = store.resolve(pool_ref)
    columns = [f.name for f in schema_for("rl_pool")
               if f.name not in ("curriculum_batch", "curriculum_position")]
    res = dict(resources)
    if res.get("threads") is None:
        res["threads"] = threads_here(hosts)
    partition = Partition(count=count, index=index, keys={},
                          out=Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}")

    def body(ctx) -> None:
        con = ctx.con
        level, cell, start, lo, hi = (list(c) for c in zip(*cells, strict=True))
        con.register("cells_in", pa.table({"level_rate": level, "cell": cell, "start": start,
                                           "lo": lo, "hi": hi}))
        con.register("alloc_in", pa.table({"first_rank": [a for a, _ in alloc],
                                           "batch": [b for _, b in alloc]}))
        # global rank = where its cell starts + its rank in the cell (cells: ranges of h)
        keys = "read_parquet([" + ", ".join(quote_literal(f) for f in files) + "])"
        con.execute(f"""
            CREATE TEMP TABLE ranked AS SELECT * FROM (
              SELECT k.id, k.hp, k.shard, k.row_in_shard, c.lo, c.hi,
                     c.start + row_number() OVER (PARTITION BY k.level_rate, k.cell
                                                  ORDER BY k.h, k.id) - 1 AS rank
              FROM {keys} k JOIN cells_in c ON k.level_rate = c.level_rate AND k.cell = c.cell)
            WHERE rank >= lo AND rank < hi""")
        # numbered by insertion order (rowid) as the local step does: its batches are whole,
        # so its first row is batch b0's first, global slot b0 * batch_size
        con.execute("SET preserve_insertion_order=true")
        con.execute("""
            CREATE TEMP TABLE placed AS
            SELECT r.shard, r.row_in_shard, a.batch
            FROM ranked r ASOF JOIN alloc_in a ON r.rank >= a.first_rank
            ORDER BY a.batch, r.hp, r.id""")
        con.execute("SET preserve_insertion_order=false")
        ctx.bind(batch_size=config.batch_size, first_slot=first_slot)
        con.execute(f"CREATE TEMP VIEW pool AS SELECT * EXCLUDE (__shard, __row), "
                    f"__shard AS shard, __row AS row_in_shard "
                    f"FROM {row_relation(store, pool, positions=True, ordered=False)}")
        con.execute(f"""
            CREATE TEMP VIEW judged AS
            SELECT {', '.join('p.' + c for c in columns)}, x.batch AS curriculum_batch,
                   x.rowid + (SELECT first_slot FROM knobs)
                     - x.batch * (SELECT batch_size FROM knobs) AS curriculum_position,
                   NULL::VARCHAR AS reason
            FROM pool p JOIN placed x ON x.shard = p.shard AND x.row_in_shard = p.row_in_shard""")
        ctx.keep_reject("judged", [*columns, "curriculum_batch", "curriculum_position"],
                        order=("curriculum_batch, curriculum_position", "curriculum_batch"),
                        changed=("curriculum_batch", "curriculum_position"))
        ctx.provenance.update(provenance)
        partition.partials["provenance"] = provenance

    with running(partition):
        return run_step(store, name=name, kind="rl_pool", step_type="filter.curriculum",
                        config=config, inputs=[pool], body=body,
                        resources=Resources(**{"progress": False, **res}))


def run_curriculum_phased(ph: Phases, place=None):
    """The driver: counts, the plan, the place tasks (``place``: ``curriculum_place``),
    the merge (the module docstring)."""
    from collections import Counter

    import duckdb
    import numpy as np

    from .base import require_kind
    from .curriculum_plan import plan_batches

    pool, config = ph.inputs["pool"], ph.config
    require_kind(pool, "rl_pool", role="pool")
    firsts = ph.map("counts", curriculum_counts,
                    [(ph.store_at, pool.ref, str(config.seed), i, ph.count, str(ph.out),
                      ph.hosts, ph.resources) for i in range(ph.count)])
    per_cell: Counter = Counter()
    for first in firsts:
        for rate, cell, n in first["cells"]:
            per_cell[(rate, cell)] += n
    if not per_cell or any(rate is None for rate, _ in per_cell):
        return None  # an empty pool (or pass rates missing): the step runs whole
    rates = sorted({rate for rate, _ in per_cell}, reverse=True)  # easiest level first
    counts = [sum(n for (r, _), n in per_cell.items() if r == rate) for rate in rates]
    plan = plan_batches(counts, config.batch_size, config.sigma, config.schedule)
    alloc, start = [], 0
    for level in range(len(rates)):  # as the local step: (first rank, batch) per level
        for batch, n in enumerate(plan[:, level].tolist()):
            if n:
                alloc.append((start, batch))
                start += n
    batches = plan.shape[0]
    tasks = min(ph.count, batches)
    before = np.vstack([np.zeros((1, len(rates)), dtype=np.int64), np.cumsum(plan, axis=0)])
    level_start = np.concatenate([[0], np.cumsum(counts)])
    provenance = {
        "pool": pool.ref, "batches": int(batches), "duckdb": duckdb.__version__,
        "levels": {f"{rate:g}": n for rate, n in zip(rates, counts, strict=True)},
        "first_batches": [dict(zip((f"{r:g}" for r in rates), map(int, row), strict=True))
                          for row in plan[:5]]}
    calls = []
    for task in range(tasks):
        b0, b1 = batches * task // tasks, batches * (task + 1) // tasks
        mine = []
        for level, rate in enumerate(rates):
            lo = int(level_start[level] + before[b0, level])
            hi = int(level_start[level] + before[b1, level])
            at = int(level_start[level])
            for cell in sorted(c for r, c in per_cell if r == rate):
                n = per_cell[(rate, cell)]
                if at < hi and at + n > lo:
                    mine.append((rate, cell, at, lo, hi))
                at += n
        calls.append((ph.store_at, pool.ref, ph.name, config, ph.resources, ph.hosts, task,
                      tasks, str(ph.out), [f["path"] for f in firsts], mine, alloc,
                      b0 * config.batch_size, provenance))
    parts = ph.map("place", place or curriculum_place, calls)
    return merge_partitions(ph.store, parts, ph.resources)


def _finish(provenance: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """The driver computed the whole step's facts (levels, plan): every place task has them."""
    exact = parts[0]["partials"]["provenance"]
    provenance.clear()
    provenance.update(exact)


PHASED["curriculum"] = run_curriculum_phased
FINISH["filter.curriculum"] = _finish
