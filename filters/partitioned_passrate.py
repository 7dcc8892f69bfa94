"""Pass rate split across Dask workers: rollouts by row position, prompts by id hash.

Split by key hash, every partition read (and hashed) every rollout to find its prompts'.
Here:

1. **counts** (one task per run of the rollouts' rows, ``row_group_ranges``: each reads
   only its row groups): rollouts, known and correct answers per prompt id in those rows
   (narrow: one row per prompt id, two for a prompt whose rollouts straddle two runs),
   written as one file per judge task, ``hash(prompt_id) % count`` (the same split as
   the judge tasks' prompts), and the distinct generators it saw;
2. **judge** (one task per prompt id hash): the local step itself
   (``passrate.run_passrate``) over the prompts of its hash, whose counts are the sums of
   the counts files written for it (``passrate.partial_counts_sql``; a rollout of an
   unknown prompt id is reported by the task whose hash the id has, as the local step
   would);
3. the merge (``partitioned.merge_partitions``): ONE version, the local bytes.

A counts task routes its rows by a hash it computes itself, and reads no prompt; a judge
task reads only the counts of its own prompt ids, and every prompt id (narrow) to keep
its own.  (Before: id ranges cut at the quantiles of samples the counts tasks drew, which
made each judge task read and filter every counts row, with a ~2% imbalance; and runs of
prompt rows before that, which joined every prompt id in each counts task.)  The merge
sorts the union of the partitions' files: concatenated, they give the same rows but not
the local sorted COPY's row groups, so not the same bytes.

Rows never pass through the scheduler (paths and refs only).  A rollouts selection, or
the LLM judge, falls back to the split by prompt id hash of the rollouts.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from thinkforge.manifests.partitions import PHASED, Partition, Phases, running, threads_here

from .partitioned import close_connection, merge_connection, merge_partitions


def passrate_counts(store_at, rollouts_ref: str, reasoning: str | None, ranges: dict,
                    resources: dict[str, Any], out: str, index: int,
                    count: int) -> dict[str, Any]:
    """Phase 1 on a worker: partial counts per prompt id of one run of rows, as one file
    per judge task (``hash(prompt_id) % count``, as ``Partition.restrict`` splits the
    prompts), and the generators seen."""
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
    tag = uuid.uuid4().hex[:8]
    paths = [str(Path(out) / f"counts-p{index:04d}-j{j:04d}-{tag}.parquet") for j in range(count)]
    rows = row_relation(store, rollouts, ordered=False, rows=ranges[rollouts_ref],
                        columns=["prompt_id", "correct", "generator", "reasoning"])
    where = f"WHERE reasoning = {quote_literal(reasoning)}" if reasoning else ""
    con, spill = open_connection(store, res)
    try:
        con.execute(f"CREATE TEMP VIEW mine AS SELECT * FROM {rows}")
        con.execute(f"CREATE TEMP TABLE counts AS SELECT prompt_id, count(*) AS n_rollouts, "
                    f"count(correct)::BIGINT AS n_samples, "
                    f"(count(*) FILTER (WHERE correct))::BIGINT AS n_correct, "
                    f"hash(prompt_id) % {int(count)} AS __judge "
                    f"FROM mine {where} GROUP BY prompt_id")
        for j, path in enumerate(paths):  # a narrow table in memory: one scan per judge task
            con.execute(f"COPY (SELECT * EXCLUDE (__judge) FROM counts WHERE __judge = {j}) "
                        f"TO {quote_literal(path)} (FORMAT parquet, COMPRESSION uncompressed)")
        generators = [r[0] for r in con.execute(
            "SELECT DISTINCT generator FROM mine ORDER BY 1 LIMIT 50").fetchall()]
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return {"paths": paths, "generators": generators}


def passrate_judge(store_at, rollouts_ref: str, prompts_ref: str, name: str, config,
                   resources: dict[str, Any], index: int, count: int, out: str,
                   given: dict[str, Any]) -> dict[str, Any]:
    """Phase 2 on a worker: the local step over the prompts with ``hash(id) % count ==
    index``, whose counts are the files ``given["counts"]``."""
    from .base import Resources
    from .passrate import run_passrate

    store_cls, root = store_at
    store = store_cls(root)
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here()
    partition = Partition(count=count, index=index, keys={prompts_ref: "id"},
                          out=Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}", given=given)
    with running(partition):
        return run_passrate(store, store.resolve(rollouts_ref), store.resolve(prompts_ref),
                            name, config, resources=res)


def run_passrate_phased(ph: Phases):
    """The driver: counts per run of rollouts, the step per prompt id hash, the merge."""
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
                       ph.resources, str(ph.out), i, ph.count) for i in range(ph.count)])
    generators = sorted({g for c in counted for g in c["generators"]})[:50]
    futures = ph.submit("judge", passrate_judge,
                        [(ph.store_at, rollouts.ref, prompts.ref, ph.name, config, ph.resources,
                          i, ph.count, str(ph.out),
                          {"generators": generators, "counts": [c["paths"][i] for c in counted]})
                         for i in range(ph.count)])
    opened = merge_connection(ph.store, ph.resources)  # while the judge tasks run
    try:
        parts = ph.client.gather(futures)
    except BaseException:
        close_connection(opened)
        raise
    return merge_partitions(ph.store, parts, ph.resources, opened)


PHASED["passrate"] = run_passrate_phased
