"""Pass rate split across Dask workers by row position (issue 27 item 5).

Split by key hash, every partition read (and hashed) every rollout to find its prompts'.
Here each task reads only the row groups of its own run of rows:

1. **counts** (one task per run of the rollouts' rows): rollouts, known and correct
   answers per prompt id in those rows (a narrow file: one row per prompt id, two for the
   prompt whose rollouts straddle two runs) and the distinct generators it saw;
   Each count is routed to the phase-2 task whose run of prompts rows holds its prompt
   (a join with the prompt ids' positions; an unknown prompt id goes to task 0);
2. **judge** (one task per run of the prompts' rows): the local step itself
   (``passrate.run_passrate``) over its prompts, whose per-prompt counts are the sums of
   the partial counts routed to it (``passrate.partial_counts_sql``; the first task also
   reports the rollouts of unknown prompts), writing partition files;
3. the merge (``partitioned.merge_partitions``): ONE version, the local bytes.

Rows never pass through the scheduler (paths and refs only).  A rollouts or prompts
selection, or the LLM judge, falls back to the split by prompt id hash.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from thinkforge.manifests.partitions import PHASED, Partition, Phases, running, threads_here

from .partitioned import merge_partitions


def passrate_counts(store_at, rollouts_ref: str, reasoning: str | None, ranges: dict,
                    resources: dict[str, Any], out: str, index: int, prompts_ref: str,
                    prompt_runs: list[dict]) -> dict[str, Any]:
    """Phase 1 on a worker: partial counts per prompt id of one run of rows, routed by
    ``prompt_runs`` (the prompts' runs of phase 2): one file per phase-2 task, holding the
    prompt ids of its run (and, for task 0, the ids no prompt has), so a judge task sums
    its own files and never looks up which prompts are its."""
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
    tag = f"counts-p{index:04d}-{uuid.uuid4().hex[:8]}"
    rows = row_relation(store, rollouts, ordered=False, rows=ranges[rollouts_ref],
                        columns=["prompt_id", "correct", "generator", "reasoning"])
    where = f"WHERE reasoning = {quote_literal(reasoning)}" if reasoning else ""
    con, spill = open_connection(store, res)
    try:
        con.execute(f"CREATE TEMP VIEW mine AS SELECT * FROM {rows}")
        counts = (f"SELECT prompt_id, count(*) AS n_rollouts, count(correct)::BIGINT "
                  f"AS n_samples, (count(*) FILTER (WHERE correct))::BIGINT AS n_correct "
                  f"FROM mine {where} GROUP BY prompt_id")
        # which phase-2 task has each prompt: by the position of its prompt row
        ids = row_relation(store, store.resolve(prompts_ref), ordered=False, positions=True,
                           columns=["id"])
        con.execute(f"CREATE TEMP TABLE routed AS SELECT c.*, {_run_of(prompts_ref, prompt_runs)}"
                    f" AS __task FROM ({counts}) c LEFT JOIN {ids} p ON p.id = c.prompt_id")
        paths = [str(Path(out) / f"{tag}-to{task:04d}.parquet") for task in range(len(prompt_runs))]
        for task, path in enumerate(paths):
            con.execute(f"COPY (SELECT * EXCLUDE (__task) FROM routed WHERE __task = {task}) "
                        f"TO {quote_literal(path)} (FORMAT parquet)")
        generators = [r[0] for r in con.execute(
            "SELECT DISTINCT generator FROM mine ORDER BY 1 LIMIT 50").fetchall()]
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return {"paths": paths, "generators": generators}


def _run_of(ref: str, runs: list[dict]) -> str:
    """SQL: the phase-2 task whose run of rows holds position ``p.__shard, p.__row`` (0 for
    a prompt id that is no prompt's: task 0 reports the unknown prompts)."""
    cases = " ".join(f"WHEN p.__shard = {int(shard)} AND p.__row >= {int(lo)} AND p.__row < "
                     f"{int(hi)} THEN {task}" for task, run in enumerate(runs)
                     for shard, lo, hi in run[ref])
    return f"CASE {cases} ELSE 0 END"


def passrate_judge(store_at, rollouts_ref: str, prompts_ref: str, name: str, config,
                   resources: dict[str, Any], index: int, count: int, out: str, ranges: dict,
                   given: dict[str, Any]) -> dict[str, Any]:
    """Phase 2 on a worker: the local step over one run of the prompts' rows."""
    from .base import Resources
    from .passrate import run_passrate

    store_cls, root = store_at
    store = store_cls(root)
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here()
    partition = Partition(count=count, index=index, keys={prompts_ref: "id"},
                          out=Path(out) / f"p{index:04d}-{uuid.uuid4().hex[:8]}",
                          ranges=ranges, given=given)
    with running(partition):
        return run_passrate(store, store.resolve(rollouts_ref), store.resolve(prompts_ref),
                            name, config, resources=res)


def run_passrate_phased(ph: Phases):
    """The driver: counts per run of rollouts, the step per run of prompts, the merge."""
    from thinkforge.manifests.partitions import row_group_ranges

    from .passrate import prompts_of

    rollouts, config = ph.inputs["rollouts"], ph.config
    prompts = ph.inputs.get("prompts") or prompts_of(ph.store, rollouts)
    if config.judge.on or rollouts.ref == prompts.ref:
        return None  # the judge asks a model per undecided rollout: the hash split
    by_rollouts = row_group_ranges(ph.store, rollouts, ph.count)
    by_prompts = row_group_ranges(ph.store, prompts, ph.count)
    if by_rollouts is None or by_prompts is None:
        return None  # a selection (or nothing to split): by prompt id hash
    counted = ph.map("counts", passrate_counts,
                     [(ph.store_at, rollouts.ref, config.reasoning, by_rollouts[i],
                       ph.resources, str(ph.out), i, prompts.ref, by_prompts)
                      for i in range(ph.count)])
    generators = sorted({g for c in counted for g in c["generators"]})[:50]
    parts = ph.map("judge", passrate_judge,
                   [(ph.store_at, rollouts.ref, prompts.ref, ph.name, config, ph.resources, i,
                     ph.count, str(ph.out), by_prompts[i],
                     {"generators": generators, "counts": [c["paths"][i] for c in counted]})
                    for i in range(ph.count)])
    return merge_partitions(ph.store, parts, ph.resources)


PHASED["passrate"] = run_passrate_phased
