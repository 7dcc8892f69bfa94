"""Pass rate on Dask: the workers count the rollouts, the driver judges the prompts.

1. **counts** (one task per run of the rollouts' rows, ``row_group_ranges``: each reads
   only its row groups): rollouts, known and correct answers per prompt id in those rows
   (narrow: one row per prompt id, two for a prompt whose rollouts straddle two runs),
   one file per task, and the distinct generators it saw.  This is the O(rollouts) part;
2. the driver runs the local step itself (``passrate.run_passrate``) once, with the
   rollouts' counts summed from those files (``passrate.Counted``) instead of its scan of
   the rollouts: the same statements write the same files, so the local bytes and
   provenance by construction, published as the local step publishes.

The driver's part is O(prompts), as the merge of per-partition files it replaces was
(its sorted COPY of every prompt): before, a second phase of tasks ran the step per
prompt id hash (each task read every prompt id to keep its half) and the driver merged
their files, ~50% more work than one task in all (bench/README.md, "Round: pass rate,
the driver judges").  The driver's DuckDB uses every core of its machine.

Rows never pass through the scheduler (paths and refs only).  A rollouts selection, or
the LLM judge (it reads each undecided rollout), falls back to the split by prompt id
hash of the rollouts.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from thinkforge.manifests.partitions import PHASED, Phases, threads_here


def passrate_counts(store_at, rollouts_ref: str, reasoning: str | None, ranges: dict,
                    resources: dict[str, Any], out: str, index: int) -> dict[str, Any]:
    """Phase 1 on a worker: partial counts of one run of rows (one Arrow file: per run of
    equal prompt ids in row order, ``rollout_runs``; where those do not apply, per prompt
    id in any order) and the generators seen."""
    import pyarrow as pa

    from .base import Resources
    from .rollout_runs import counts_by_runs, first_generators

    store_cls, root = store_at
    store = store_cls(root)
    rollouts = store.resolve(rollouts_ref)
    store.verify(rollouts)
    res = Resources(**{"progress": False, **resources})
    if res.threads is None:
        res.threads = threads_here()
    path = str(Path(out) / f"counts-p{index:04d}-{uuid.uuid4().hex[:8]}.arrow")
    runs = counts_by_runs([str(p) for p in store.shard_paths(rollouts)],
                          rows=ranges[rollouts_ref], reasoning=reasoning, generators=True,
                          threads=res.threads)
    if runs is not None:
        table, generators = runs.table, first_generators(runs.generators)
    else:
        table, generators = _counts_sql(store, rollouts, reasoning, ranges, res)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return {"path": path, "generators": generators}


def _counts_sql(store, rollouts, reasoning: str | None, ranges: dict, res):
    """Counts per prompt id of the rows at ``ranges`` by DuckDB's aggregate (rollouts not
    grouped by prompt), and the first 50 distinct generators."""
    import pyarrow as pa
    from thinkforge.manifests.duck import quote_literal
    from thinkforge.manifests.selection import row_relation

    from .base import open_connection

    rows = row_relation(store, rollouts, ordered=False, rows=ranges[rollouts.ref],
                        columns=["prompt_id", "correct", "generator", "reasoning"])
    where = f"WHERE reasoning = {quote_literal(reasoning)}" if reasoning else ""
    con, spill = open_connection(store, res)
    try:
        con.execute(f"CREATE TEMP VIEW mine AS SELECT * FROM {rows}")
        table = con.execute(f"SELECT prompt_id, count(*) AS n_rollouts, "
                            f"count(correct)::BIGINT AS n_samples, "
                            f"(count(*) FILTER (WHERE correct))::BIGINT AS n_correct "
                            f"FROM mine {where} GROUP BY prompt_id").to_arrow_table()
        generators = [r[0] for r in con.execute(
            "SELECT DISTINCT generator FROM mine ORDER BY 1 LIMIT 50").fetchall()]
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
    return table.cast(pa.schema([("prompt_id", pa.string()), ("n_rollouts", pa.int64()),
                                 ("n_samples", pa.int64()), ("n_correct", pa.int64())])), generators


def run_passrate_phased(ph: Phases):
    """The driver: counts per run of rollouts on the workers, then the step here."""
    import pyarrow as pa
    from thinkforge.manifests.partitions import row_group_ranges

    from .base import Resources
    from .passrate import Counted, prompts_of, run_passrate
    from .rollout_runs import first_generators, merge_in_order

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
    # the local step's generators: the first 50 distinct, sorted (each task's first 50)
    generators = first_generators({g for c in counted for g in c["generators"]})
    runs = merge_in_order([pa.ipc.open_file(pa.memory_map(c["path"])).read_all()
                           for c in counted])
    return run_passrate(ph.store, rollouts, prompts, ph.name, config,
                        resources=Resources(**{"progress": False, **ph.resources}),
                        counted=Counted(runs=runs, generators=generators))


PHASED["passrate"] = run_passrate_phased
