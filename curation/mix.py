"""Mix: sample a version to target shares by category and by reasoning mode (docs/architecture.md).

The target share of a cell (category, mode) is ``w_category * w_mode`` normalised over the
cells present; a weight table left out keeps that axis's natural shares; a category or mode
missing from a given table gets weight 0.  ``rows`` is the target size (default: the largest
size the weights allow without replacement).  Without replacement a cell gives at most the
rows it has (the shortfall is recorded in the provenance); with replacement rows repeat and
each repeat gets the id ``<id>~r<k>`` (the row key stays unique).  Selection is
deterministic: rows are ranked by md5(seed, id).  Rows not selected go to ``rejected/`` with
reason ``not_selected`` (nothing vanishes silently).

``pairs: keep-whole`` (sft): rows of complete pairs rank first (before orphans, whose twin an
earlier step dropped), then by md5(seed, pair_id) instead, so the ON and OFF answers of a
pair rank alike in their cells: with equal reasoning weights every picked
pair is complete, and with unequal ones the rows of the smaller mode are the partners of
rows picked in the larger one (only the surplus of the larger mode is unpaired).
"""

from __future__ import annotations

import math
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connect, quote_ident, quote_literal
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.manifest import Step
from thinkforge.manifests.schemas import schema_for
from thinkforge.manifests.selection import base_of, row_relation, union_relation
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

MIXABLE = ("prompts", "sft", "rl_pool")


# a weight is a finite share >= 0 (nan or inf would make every quota undefined)
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class MixWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: dict[str, Weight] | None = Field(
        None, description="weight per category (math, code, ...); omitted: natural shares")
    reasoning: dict[str, Weight] | None = Field(
        None, description="weight per reasoning mode (on, off); omitted: natural shares; "
                          "only for sft versions")


class MixConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: MixWeights = Field(default_factory=MixWeights, description="target shares")
    rows: int | None = Field(None, ge=1, description="target row count (default: the most the "
                                                     "weights allow without replacement)")
    replace: bool = Field(False, description="sample with replacement (rows may repeat)")
    seed: int = Field(0, description="seed of the deterministic ranking md5(seed, id)")
    pairs: Literal["keep-whole", "independent"] = Field(
        "independent", description="sft: keep-whole ranks rows by pair_id so ON/OFF pairs "
                                   "are picked together")


def cell_quotas(counts: dict[tuple[str, str], int], config: MixConfig) -> dict[tuple[str, str], int]:
    """Rows to take from each (category, mode) cell."""
    w = config.weights
    cat_total: dict[str, int] = {}
    mode_total: dict[str, int] = {}
    for (c, m), n in counts.items():
        cat_total[c] = cat_total.get(c, 0) + n
        mode_total[m] = mode_total.get(m, 0) + n
    total = sum(counts.values()) or 1

    def share(cell: tuple[str, str]) -> float:
        c, m = cell
        if w.category is not None and w.reasoning is not None:
            return w.category.get(c, 0.0) * w.reasoning.get(m, 0.0)
        if w.category is not None:  # modes split their category's weight by natural shares
            return w.category.get(c, 0.0) * counts[cell] / cat_total[c]
        if w.reasoning is not None:  # categories split their mode's weight likewise
            return w.reasoning.get(m, 0.0) * counts[cell] / mode_total[m]
        return counts[cell] / total

    shares = {cell: share(cell) for cell in counts}
    norm = sum(shares.values())
    if norm <= 0:
        raise ConfigError("mix weights select nothing: no category / mode of the input has weight > 0",
                          hint=f"cells in the input: {sorted(counts)}")
    shares = {cell: s / norm for cell, s in shares.items()}
    rows = config.rows
    if rows is None:  # the largest total that no cell has to over-draw
        rows = int(min(counts[c] / s for c, s in shares.items() if s > 0))
    quotas = {cell: math.floor(rows * s) for cell, s in shares.items()}
    # hand out what rounding left, largest remainders first (deterministic)
    left = rows - sum(quotas.values())
    for cell in sorted(shares, key=lambda c: (-(rows * shares[c] - quotas[c]), c))[:left]:
        quotas[cell] += 1
    if not config.replace:
        quotas = {cell: min(q, counts[cell]) for cell, q in quotas.items()}
    return quotas


def run_mix(store: DatasetStore, data: Manifest | list[Manifest], name: str,
            config: MixConfig) -> Manifest:
    """Publish the mixed sample of ``data`` (one version, or several of one kind: their rows
    are pooled first) as ``name``, or reuse an identical earlier one."""
    sources = data if isinstance(data, list) else [data]
    kind = sources[0].kind
    for m in sources:
        if m.kind not in MIXABLE or m.kind != kind:
            raise ConfigError(f"mix needs {'/'.join(MIXABLE)} versions of one kind; {m.ref} is "
                              f"{m.kind}" + (f", {sources[0].ref} is {kind}" if m.kind != kind else ""))
    if config.weights.reasoning is not None and kind != "sft":
        raise ConfigError(f"mix weights.reasoning applies to sft versions, not {kind}",
                          hint="drop weights.reasoning for prompts and rl_pool versions")
    if config.pairs == "keep-whole" and kind != "sft":
        raise ConfigError(f"mix pairs: keep-whole applies to sft versions, not {kind}")
    step = Step(type="mix", config=config.model_dump(mode="json"))
    reusable = store.find_reusable(name, step, [m.as_parent() for m in sources])
    if reusable is not None:
        return reusable
    for m in sources:
        store.verify(m)  # sha256 (cached per file) before the rows feed a new version
    mode = "reasoning" if kind == "sft" else "'-'"
    rank_key = "pair_id" if config.pairs == "keep-whole" else "id"
    columns = schema_for(kind).names
    con = connect()
    try:
        # a view cannot take bound parameters: the seed travels through a one-row table
        con.execute("CREATE TEMP TABLE knobs AS SELECT ?::VARCHAR AS seed", [str(config.seed)])
        # without replacement from one version: a selection over its base (positions only)
        info = base_of(store, sources[0]) if not config.replace and len(sources) == 1 \
            and os.environ.get("THINKFORGE_MATERIALIZE", "") in ("", "0") else None
        rows = row_relation(store, sources[0], positions=True, ordered=False) if info \
            else union_relation(store, list(sources))
        # keep-whole: complete pairs rank before orphans (an answer whose twin an earlier step
        # dropped), or a surplus of orphans in one mode would crowd out the pairs' partners
        whole = ("count(*) OVER (PARTITION BY pair_id)" if config.pairs == "keep-whole"
                 else "1")
        con.execute(f"CREATE TEMP VIEW src AS SELECT *, {mode} AS mix_mode, {whole} AS mix_whole, "
                    f"md5((SELECT seed FROM knobs) || ':' || {rank_key}) AS mix_rank FROM {rows}")
        counts = {(c, m): n for c, m, n in con.execute(
            "SELECT category, mix_mode, count(*) FROM src GROUP BY ALL").fetchall()}
        quotas = cell_quotas(counts, config) if counts else {}
        con.execute("CREATE TEMP TABLE quotas (category VARCHAR, mix_mode VARCHAR, quota BIGINT, "
                    "reps BIGINT)")
        if quotas:  # an empty input makes an empty mix
            con.executemany("INSERT INTO quotas VALUES (?, ?, ?, ?)",
                            [[c, m, q, max(1, math.ceil(q / counts[(c, m)]))]
                             for (c, m), q in quotas.items()])
        con.execute("""CREATE TEMP TABLE picked AS SELECT * FROM (
              SELECT s.*, r.rep, row_number() OVER (PARTITION BY s.category, s.mix_mode
                                                   ORDER BY r.rep, s.mix_whole DESC,
                                                            s.mix_rank) AS rn, q.quota
              FROM src s JOIN quotas q USING (category, mix_mode),
                   range(q.reps) AS r(rep)) WHERE rn <= quota""")
        select = ", ".join("CASE WHEN rep = 0 THEN id ELSE id || '~r' || rep END AS id"
                           if c == "id" else quote_ident(c) for c in columns)
        facts: dict[str, Any] = {
            "input_rows": sum(counts.values()),
            "cells": [{"category": c, "mode": m, "available": counts[(c, m)], "taken": q,
                       "shortfall": max(0, _target(quotas, config, counts, (c, m)) - q)}
                      for (c, m), q in sorted(quotas.items())]}
        with store.writer(name, kind, step=step, parents=sources, provenance=facts) as w:
            if info is not None:
                kept_path, rejected_path = w.select(info, info["inherited"], columns, [])
                stored = "".join(f", {quote_ident(c)}" for c in info["inherited"])
                pos = "__shard::INTEGER AS _shard, __row::BIGINT AS _row"
                con.execute(f"COPY (SELECT {pos}{stored} FROM picked ORDER BY category, mix_mode, rn) "
                            f"TO {quote_literal(str(kept_path))} (FORMAT parquet, COMPRESSION zstd)")
                con.execute(f"COPY (SELECT {pos}{stored}, 'not_selected' AS reason FROM src s "
                            f"ANTI JOIN picked p USING (id) ORDER BY s.id) "
                            f"TO {quote_literal(str(rejected_path))} (FORMAT parquet, COMPRESSION zstd)")
            else:
                _write_copy(con, w, select, columns)
        return w.manifest
    finally:
        con.close()


def _write_copy(con, w, select: str, columns: list[str]) -> None:
    """The mix as a plain version: the picked rows (repeats renamed) and the others rejected."""
    con.execute(f"COPY (SELECT {select} FROM picked ORDER BY category, mix_mode, rn) "
                f"TO {quote_literal(str(w.new_shard_path()))} (FORMAT parquet, COMPRESSION zstd)")
    n = con.execute("SELECT count(*) FROM src s ANTI JOIN picked p USING (id)").fetchall()[0][0]
    if n:
        cols = ", ".join(f"s.{quote_ident(c)}" for c in columns)
        con.execute(f"COPY (SELECT {cols}, 'not_selected' AS reason FROM src s "
                    f"ANTI JOIN picked p USING (id) ORDER BY s.id) "
                    f"TO {quote_literal(str(w.new_rejected_path()))} "
                    "(FORMAT parquet, COMPRESSION zstd)")


def _target(quotas, config: MixConfig, counts, cell) -> int:
    """The quota before capping at what the cell has (for the shortfall report)."""
    if config.replace:
        return quotas[cell]
    uncapped = cell_quotas(counts, config.model_copy(update={"replace": True}))
    return uncapped.get(cell, 0)


STEP = register_step(StepDescriptor(
    type="mix", roles=(Role("data", MIXABLE, many=True, help="version(s) to pool and sample "
                                                             "(repeatable)"),),
    config=MixConfig, run=lambda ctx, inputs, name, config: {
        name: run_mix(ctx.store, inputs["data"], name, config)},
    help="Pool one or more versions, sample to weights by category and reasoning mode.",
    examples=("thinkforge mix gsm8k-sft --name sft-mix --rows 1000 --weights-reasoning on=0.5,off=0.5",
              "thinkforge mix a-sft b-sft --name sft-mix --config mix.yaml")))
