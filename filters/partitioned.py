"""Filters partitioned across Dask workers, merged into one exact version (issue 12 item 3).

Which steps split, and by what (``split_keys``):

* **per prompt**: passrate (rollouts by ``prompt_id``, prompts by ``id``; only where its
  phased split by row position, ``partitioned_passrate``, does not apply), quality and
  decontam (``prompt_id`` for sft/rollouts, ``id`` for prompts/rl_pool): a row's fate
  depends only on its prompt's rows (ON/OFF pairs share a prompt id, so the pair policy
  sees whole pairs); decontam's benchmark index is built on every worker.  Over one plain
  prompts / rl_pool version (``id`` unique) the executor splits by row position instead
  (``partitions.position_ranges``): each task reads only its own row groups;
* **exact dedup**: by the *dedup key* (md5 of the normalised text), so all copies of a
  text meet in one partition; the representative is the lowest id either way.  Not when
  a pair policy spans rows of different keys (sft compared ``--on output`` with pairs);
* **in phases** (``thinkforge.manifests.partitions.PHASED``): curriculum (``partitioned_curriculum``:
  per-partition sort keys and counts, the plan on the driver, batch ranges placed per
  task); passrate (``partitioned_passrate``: partial counts per run of rollouts rows, the
  step per run of prompts rows);
* **global**: near dedup (LSH buckets cross any row partition: see docs/scale.md "near dedup on
  a cluster"), correct, mix, split: these run as one task on one worker, as before.

Each partition runs the filter's own code (``thinkforge.manifests.partitions``); the merge here
writes ONE version: the union of the partitions' narrow files sorted in the local order,
with the local COPY settings, so bytes and fingerprint equal the local executor's; the
provenance facts are merged key by key (counts add up, min/max, distinct lists unite).
"""

from __future__ import annotations

import shutil
from typing import Any

from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import quote_literal
from thinkforge.manifests.manifest import Step
from thinkforge.manifests.partitions import SPLITS, register_merge

from .base import Resources, StepContext, materialize_wanted, open_connection, row_group_bytes, size_in_bytes

_PROMPT_KEY = {"prompts": "id", "rl_pool": "id", "sft": "prompt_id", "rollouts": "prompt_id"}


def _passrate(store, inputs, config) -> dict[str, str] | None:
    from .passrate import prompts_of

    rollouts = inputs["rollouts"]
    prompts = inputs.get("prompts") or prompts_of(store, rollouts)
    if rollouts.ref == prompts.ref:
        return None
    return {rollouts.ref: "prompt_id", prompts.ref: "id"}


def _per_prompt(role: str):
    def split(store, inputs, config) -> dict[str, str] | None:
        data = inputs[role]
        # the versions of the other roles, by ref: the same version given as data and as a
        # benchmark (even the same object) must be read whole there, so it is not split
        others = {m.ref for r, v in inputs.items() if r != role
                  for m in (v if isinstance(v, list) else [v]) if isinstance(m, Manifest)}
        if data.kind not in _PROMPT_KEY or data.ref in others:
            return None
        return {data.ref: _PROMPT_KEY[data.kind]}
    return split


def _dedup(store, inputs, config) -> dict[str, str] | None:
    from thinkforge.manifests.schemas import schema_for

    from .pairs import resolve_policy
    from .text import normalized_expr, text_expr

    data = inputs["data"]
    if config.near or not config.exact:
        return None  # near duplicates: a global LSH (docs/scale.md: near dedup on a cluster)
    columns = schema_for(data.kind).names
    paired = "pair_id" in columns
    if paired and config.on == "output" and resolve_policy(config.pairs, columns) != "independent":
        return None  # a pair's two outputs have different keys: the policy needs both
    return {data.ref: f"md5({normalized_expr(text_expr(config.on, columns))})"}


SPLITS.update({"passrate": _passrate, "quality": _per_prompt("data"),
               "decontam": _per_prompt("data"), "dedup": _dedup})


# -- merge --------------------------------------------------------------------------------

def _files(paths: list[str]) -> str:
    return "read_parquet([" + ", ".join(quote_literal(p) for p in paths) + "])"


def _union(con, paths: list[str], nullable: set[str] = frozenset(),
           rows: str | None = None) -> str:
    """The rows of partition files as one relation whose columns DuckDB knows NOT NULL
    where every partition wrote them so: DuckDB writes a column as Parquet ``required``
    when its statistics prove it has no NULL (as the local run's table does), and a
    multi-file ``read_parquet`` forgets what each file's statistics said (other bytes,
    same rows).  Each file read alone keeps them and UNION ALL merges them, so the files
    are read as a UNION ALL of single-file reads (files without rows left out: DuckDB
    knows nothing of their columns); a temp table with NOT NULL columns where the files
    disagree on their types or all are empty (copying every row once more).  ``nullable``:
    columns a partition said the whole step writes ``optional`` (its own files may be
    empty: ``PartitionWriter.note_nullable``).  ``rows``: a relation of more rows with the
    files' columns, none NULL (the kept rows given as runs: ``partition_runs``)."""
    import uuid

    import pyarrow.parquet as pq
    from thinkforge.manifests.duck import quote_ident

    metas = [pq.ParquetFile(p).metadata for p in paths]
    schemas = [m.schema.to_arrow_schema() for m in metas]
    full = [f"SELECT * FROM read_parquet({quote_literal(p)})"
            for p, m in zip(paths, metas, strict=True) if m.num_rows]
    if rows is not None:
        full.append(f"SELECT * FROM {rows}")
        if not schemas:  # every partition gave its kept rows as runs
            return rows
    if full and all(s.names == schemas[0].names and s.types == schemas[0].types
                    for s in schemas):
        relation = "(" + " UNION ALL ".join(full) + ")"
    else:
        relation = f"__parts_{uuid.uuid4().hex[:8]}"
        con.execute(f"CREATE TEMP TABLE {relation} AS SELECT * FROM {_files(paths)} LIMIT 0")
        for column in schemas[0].names:
            if all(not s.field(column).nullable for s in schemas):
                con.execute(f"ALTER TABLE {relation} ALTER COLUMN {quote_ident(column)} "
                            "SET NOT NULL")
        con.execute(f"INSERT INTO {relation} SELECT * FROM {_files(paths)}")
        if rows is not None:
            con.execute(f"INSERT INTO {relation} SELECT * FROM {rows}")
    # the other way round: a column some partition wrote as ``optional`` (an expression the
    # local run cannot prove non-NULL either) is read through one that hides the proof.
    # Empty files count too: a file's schema is what its partition's plan said (NULLs in
    # that partition's judged rows), and the local run's rows are every partition's, so a
    # column is ``optional`` there when it is in any partition's file, even one without
    # rows (every row of one partition rejected: its rejected rows say ``required``, the
    # partition whose rows were all kept wrote an empty file that says ``optional``), and
    # an empty table proves every column non-NULL (every file empty)
    loose = [c for c in schemas[0].names
             if full and c in nullable or any(s.field(c).nullable for s in schemas)]
    if not loose:
        return relation
    hide = ", ".join(f"CASE WHEN {quote_ident(c)} IS NULL THEN NULL ELSE {quote_ident(c)} END "
                     f"AS {quote_ident(c)}" for c in loose)
    return f"(SELECT * REPLACE ({hide}) FROM {relation})"


def _ops(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every partition's writes, grouped by what they were for, in first-seen order (a
    partition with no rows of a kind may not have made that write at all)."""
    merged: dict[tuple, dict[str, Any]] = {}
    for part in parts:
        for op in part["ops"]:
            key = (op["op"], op.get("order_by"), str(op.get("kept_order")))
            entry = merged.setdefault(key, {**op, "paths": [], "rejected_paths": [],
                                            "nullable": set(), "kept_runs": []})
            entry["nullable"].update(op.get("nullable", ()))
            if op.get("kept_runs"):  # no kept file: its runs less its rejected rows
                entry["kept_runs"].append(op["kept_runs"])
            else:
                entry["paths"].append(op.get("kept") or op["path"])
            if op["op"] == "selection":
                entry["rejected_paths"].append(op["rejected"])
    return list(merged.values())


def merge_partitions(store: DatasetStore, parts: list[dict[str, Any]],
                     resources: dict[str, Any]) -> Manifest:
    """Publish the partitions of one step as one version (the local executor's bytes)."""
    parts = sorted(parts, key=lambda p: p["partition"])
    first = parts[0]
    parents = [store.resolve(ref) for ref in first["parents"]]
    provenance = merge_provenance([p["provenance"] for p in parts])
    finish = FINISH.get(first["step"]["type"])
    if finish is not None:
        finish(provenance, parts)
    res = Resources(**{"progress": False, **resources})
    con, own_spill = open_connection(store, res)
    try:
        with store.writer(first["name"], first["kind"], step=Step.model_validate(first["step"]),
                          parents=parents, provenance=provenance) as writer:
            writer.use_connection(con)  # the publish reuses the merge's connection, as a step's
            limit = res.memory_limit
            ctx = StepContext(store=store, con=con, writer=writer, provenance=writer.provenance,
                              row_group_bytes=row_group_bytes(res), inputs=parents,
                              sort_budget=size_in_bytes(limit) // 8 if limit else None,
                              materialize=materialize_wanted(res))
            for op in _ops(parts):
                if op["op"] == "selection":
                    kept, rejected = writer.select(op["info"], op["columns"],
                                                   op["rejected_columns"], op["rejected_extra"])
                    runs = None
                    if op["kept_runs"]:
                        from .partition_runs import kept_relation

                        runs = kept_relation(store, op["kept_runs"], op["rejected_paths"])
                    for paths, terms, path, rows in (
                            (op["paths"], op["kept_order"], kept, runs),
                            (op["rejected_paths"], op["rejected_order"], rejected, None)):
                        drop = ", ".join(t.split()[0] for t in terms)
                        union = _union(con, paths, op["nullable"], rows)
                        ctx._copy(f"SELECT * EXCLUDE ({drop}) FROM {union} "
                                  f"ORDER BY {', '.join(terms)}", [], path)
                else:
                    new_path = writer.new_shard_path if op["op"] == "kept" \
                        else writer.new_rejected_path
                    ctx._copy_sorted(f"SELECT * FROM {_union(con, op['paths'])}",
                                     op["order_by"], op["split_on"],
                                     [store.resolve(r) for r in op["size_of"]], None, new_path)
        return writer.manifest
    finally:
        con.close()
        if own_spill is not None:
            shutil.rmtree(own_spill, ignore_errors=True)


register_merge(merge_partitions)


def _finish_passrate(provenance: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    """Rollouts per prompt (min, max, mode) from the partitions' histograms: the mode of
    the whole is not the mode of one partition."""
    from .passrate import samples_observed

    partials = [p.get("partials") or {} for p in parts]
    observed = samples_observed([tuple(r) for q in partials for r in q.get("n_rollouts", [])])
    provenance["samples_per_prompt_observed"] = observed
    if any(q.get("k_from_mode") for q in partials):
        provenance["K"] = observed["mode"]


# record type -> fix(provenance, parts): the facts key-by-key merging cannot get exact
FINISH: dict[str, Any] = {"filter.passrate": _finish_passrate}


def merge_provenance(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """The provenance of the whole step from its partitions' (same keys, same order)."""
    return _merge_value(None, facts)


def _merge_value(key: str | None, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if key in _SAME:  # facts about the inputs or the config: every partition says the same
        return present[0]
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        if all(isinstance(x, (int, float)) and not isinstance(x, bool)
               for v in present for x in v.values()):
            keys = sorted(keys)  # a count per thing (hits_by_benchmark): sums per key
        return {k: _merge_value(k, [v.get(k) for v in present]) for k in keys}
    if all(v == present[0] for v in present) and not _is_count(present[0]):
        return present[0]
    if key == "min":
        return min(present)
    if key == "max":
        return max(present)
    if all(_is_count(v) for v in present):
        return sum(present)
    if all(isinstance(v, list) for v in present):  # distinct things seen (generators)
        return sorted({x for v in present for x in v})[:50]
    return present[0]


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# numbers that describe the inputs or the config, not counts of this partition's rows
_SAME = {"K", "seed", "ngram", "benchmark_items", "mode", "rollouts_step", "teachers",
         "verifier_version", "rollouts_fingerprint"}
