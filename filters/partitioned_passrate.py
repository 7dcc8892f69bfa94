"""Pass rate split across Dask workers: rollouts by row position, prompts by id range.

Split by key hash, every partition read (and hashed) every rollout to find its prompts'.
Here:

1. **counts** (one task per run of the rollouts' rows, ``row_group_ranges``: each reads
   only its row groups): rollouts, known and correct answers per prompt id in those rows
   (a narrow file: one row per prompt id, two for a prompt whose rollouts straddle two
   runs), the distinct generators it saw, and a sample of its prompt ids;
2. the driver cuts the prompt ids into ``count`` ranges at the quantiles of the samples
   (only the balance depends on them, never the result);
3. **judge** (one task per id range): the local step itself (``passrate.run_passrate``)
   over the prompts of its range, whose counts are the sums of every counts file's rows
   in that range (``passrate.partial_counts_sql``; a rollout of an unknown prompt id is
   reported by the task whose range holds the id, as the local step would);
4. the merge (``partitioned.merge_partitions``): ONE version, the local bytes.

Id ranges, not runs of prompt rows: a counts task routes nothing and reads no prompt
(routing by prompt row position joined every prompt id in each counts task); a judge
task reads every prompt id (narrow) to keep its range.  The merge still sorts: files
concatenated in id order give the same rows but not the same row groups as the local
sorted COPY (DuckDB's order-preserving COPY merges the first file's tail into a row
group), so not the same bytes.

Rows never pass through the scheduler (paths and refs only).  A rollouts selection, or
the LLM judge, falls back to the split by prompt id hash.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from thinkforge.manifests.partitions import PHASED, Partition, Phases, running, threads_here

from .partitioned import merge_partitions

SAMPLE = 1024  # prompt ids each counts task samples for the cut points (~2% balance)


def passrate_counts(store_at, rollouts_ref: str, reasoning: str | None, ranges: dict,
                    resources: dict[str, Any], out: str, index: int) -> dict[str, Any]:
    """Phase 1 on a worker: partial counts per prompt id of one run of rows (one file),
    the generators seen and a sample of the prompt ids (for the judge tasks' id ranges)."""
    from thinkforge.manifests.duck import quote_literal
    from thinkforge.manifests.selection import row_relation

    from .base import Resources, open_connection

    store_cls, root = store_at
    store = store_cls(root)
    rollouts = store.resolve(rollouts_ref)
    store.verify(rollouts)
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here()
    path = str(Path(out) / f"counts-p{index:04d}-{uuid.uuid4().hex[:8]}.parquet")
    rows = row_relation(store, rollouts, ordered=False, rows=ranges[rollouts_ref],
                        columns=["prompt_id", "correct", "generator", "reasoning"])
    where = f"WHERE reasoning = {quote_literal(reasoning)}" if reasoning else ""
    con, spill = open_connection(store, res)
    try:
        con.execute(f"CREATE TEMP VIEW mine AS SELECT * FROM {rows}")
        con.execute(f"CREATE TEMP TABLE counts AS SELECT prompt_id, count(*) AS n_rollouts, "
                    f"count(correct)::BIGINT AS n_samples, "
                    f"(count(*) FILTER (WHERE correct))::BIGINT AS n_correct "
                    f"FROM mine {where} GROUP BY prompt_id")
        con.execute(f"COPY counts TO {quote_literal(path)} (FORMAT parquet)")
        sample = [r[0] for r in con.execute(
            f"SELECT prompt_id FROM counts USING SAMPLE reservoir({SAMPLE} ROWS) "
            "REPEATABLE (27)").fetchall()]
        generators = [r[0] for r in con.execute(
            "SELECT DISTINCT generator FROM mine ORDER BY 1 LIMIT 50").fetchall()]
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return {"path": path, "generators": generators, "sample": sample}


def id_ranges(samples: list[list[str]], count: int) -> list[tuple[str | None, str | None]]:
    """``count`` ranges [low, high) of prompt ids cut at the quantiles of the pooled
    samples (the first and last unbounded): every id falls in exactly one.  No sample (no
    rollout counted): the first range holds every id, the others none."""
    pooled = sorted(s for sample in samples for s in sample)
    if not pooled:
        return [(None, None)] + [("", "")] * (count - 1)
    cuts = [pooled[len(pooled) * i // count] for i in range(1, count)]
    edges = [None, *cuts, None]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def passrate_judge(store_at, rollouts_ref: str, prompts_ref: str, name: str, config,
                   resources: dict[str, Any], index: int, count: int, out: str,
                   bounds: tuple[str | None, str | None], given: dict[str, Any]) -> dict[str, Any]:
    """Phase 2 on a worker: the local step over the prompts whose id is in ``bounds``."""
    from .base import Resources
    from .passrate import run_passrate

    store_cls, root = store_at
    store = store_cls(root)
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here()
    partition = Partition(count=count, index=index, keys={prompts_ref: "id"},
                          out=Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}",
                          bounds={prompts_ref: tuple(bounds)}, given=given)
    with running(partition):
        return run_passrate(store, store.resolve(rollouts_ref), store.resolve(prompts_ref),
                            name, config, resources=res)


def run_passrate_phased(ph: Phases):
    """The driver: counts per run of rollouts, the step per range of prompt ids, the merge."""
    from thinkforge.manifests.partitions import row_group_ranges

    from .passrate import prompts_of

    rollouts, config = ph.inputs["rollouts"], ph.config
    prompts = ph.inputs.get("prompts") or prompts_of(ph.store, rollouts)
    if config.judge.on or rollouts.ref == prompts.ref:
        return None  # the judge asks a model per undecided rollout: the hash split
    by_rollouts = row_group_ranges(ph.store, rollouts, ph.count)
    if by_rollouts is None:
        return None  # a selection of rollouts (or nothing to split): by prompt id hash
    counted = ph.map("counts", passrate_counts,
                     [(ph.store_at, rollouts.ref, config.reasoning, by_rollouts[i],
                       ph.resources, str(ph.out), i) for i in range(ph.count)])
    generators = sorted({g for c in counted for g in c["generators"]})[:50]
    files = [c["path"] for c in counted]
    ranges = id_ranges([c["sample"] for c in counted], ph.count)
    parts = ph.map("judge", passrate_judge,
                   [(ph.store_at, rollouts.ref, prompts.ref, ph.name, config, ph.resources, i,
                     ph.count, str(ph.out), ranges[i],
                     {"generators": generators, "counts": files})
                    for i in range(ph.count)])
    return merge_partitions(ph.store, parts, ph.resources)


PHASED["passrate"] = run_passrate_phased
