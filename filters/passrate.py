"""Pass rate per prompt from RL rollouts, the paper's >= 0.75 pre-filter, difficulty buckets.

Llama-Nemotron (arXiv 2505.00949, RL stage) samples K = 8 answers per prompt from the
policy's predecessor, keeps prompts whose pass rate is below 0.75 and orders the rest by
difficulty.  This step computes, per prompt, ``n_samples`` (rollouts whose correctness is
known), ``n_correct`` and ``pass_rate = n_correct / n_samples``, labels a difficulty
``bucket`` and writes an ``rl_pool`` version (the prompt columns plus those).

Bucket labels (edges ``e0 < e1 < ... < en``, default 0, .25, .5, .75, 1): ``"e_i-e_i+1"``
with two decimals, each interval closed on the left and open on the right except the last,
which is closed (``"0.75-1.00"`` holds 1.0).  With ``label_unsolved`` (default) a pass rate
of exactly 0 is labelled ``"unsolved"`` instead.

Nothing vanishes: every prompt and every rollout group that is not in the pool is in
``rejected/`` with one reason: ``too_easy`` (pass rate >= ``drop_at_or_above``),
``unsolved`` (only with ``drop_unsolved``), ``too_few_samples``, ``unverified`` (no rollout
has a known ``correct``), ``no_rollouts`` (a prompt the run sampled whose every request
failed: its rollouts version rejected them) or ``unknown_prompt`` (rollouts whose prompt is
not in the prompts version).  A prompt the rollouts never asked for (outside the run's
``--limit``) is ``not_sampled``: not a rejection, so it is not in ``rejected/``; the
manifest's provenance counts them (``not_sampled``) so the numbers still add up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator
from thinkforge.generators.judge_config import JudgeConfig, JudgedStep
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.duck import connection_threads
from thinkforge.manifests.errors import InputDataError
from thinkforge.manifests.partitions import current as current_partition
from thinkforge.manifests.steps import Flag, Role, StepDescriptor, register_step

from .base import Resources, StepConfig, StepContext, filter_resources, make_step, require_kind, run_step, source

PROMPT_COLUMNS = ("id", "source", "category", "input", "ground_truth", "verifier", "license",
                  "metadata")
# rollouts provenance keys the generators may use for the same fact, first match wins
PROVENANCE_ALIASES = {
    "policy_models": ("models", "model", "policy_model", "teacher", "generator"),
    "K": ("K", "k", "samples", "n_samples", "samples_per_prompt"),  # generators: step.config.k
    "verifier": ("verifier", "verifier_name"),
    "verifier_version": ("verifier_version", "verifier_versions"),
    "seed": ("seed",),
}


class PassRateConfig(StepConfig, JudgedStep):
    drop_at_or_above: float | None = Field(
        0.75, ge=0, le=1, description="drop prompts whose pass rate is >= this (the paper's "
                                      "pre-filter: 0.75); None keeps every pass rate")
    drop_unsolved: bool = Field(False, description="also drop prompts no rollout solved "
                                                   "(pass rate 0); kept by default")
    buckets: list[float] = Field([0.0, 0.25, 0.5, 0.75, 1.0],
                                 description="bucket edges, increasing, from 0 to 1")
    label_unsolved: bool = Field(True, description="label pass rate 0 as bucket 'unsolved'")
    min_samples: int = Field(1, ge=1, description="prompts with fewer rollouts of known "
                                                  "correctness are dropped as too_few_samples")
    reasoning: Literal["on", "off"] | None = Field(
        None, description="count only rollouts of this reasoning mode (default: all)")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM judge of the "
                               "rollouts whose correct is NULL (docs/verifier.md)")

    @field_validator("buckets")
    @classmethod
    def _edges(cls, edges: list[float]) -> list[float]:
        if len(edges) < 2 or edges[0] != 0 or edges[-1] != 1 or any(
                b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"bucket edges {edges} must increase strictly from 0 to 1, "
                             "e.g. 0,0.25,0.5,0.75,1")
        return edges


def bucket_labels(edges: list[float]) -> list[str]:
    return [f"{lo:.2f}-{hi:.2f}" for lo, hi in itertools.pairwise(edges)]


def bucket_sql(config: PassRateConfig) -> tuple[str, list[Any]]:
    """A CASE expression over ``pass_rate`` and the values of its ``?`` placeholders."""
    parts, params = [], []

    def knob(value: Any) -> str:
        params.append(value)
        return "?"

    if config.label_unsolved:
        parts.append(f"WHEN pass_rate = 0 THEN {knob('unsolved')}")
    edges, labels = config.buckets, bucket_labels(config.buckets)
    for i, label in enumerate(labels):
        last = i == len(labels) - 1
        parts.append(f"WHEN pass_rate >= {knob(float(edges[i]))} AND pass_rate "
                     f"{'<=' if last else '<'} {knob(float(edges[i + 1]))} THEN {knob(label)}")
    return "CASE " + " ".join(parts) + " END", params


def prompts_of(store: DatasetStore, rollouts: Manifest) -> Manifest:
    """The prompts version a rollouts version was generated from (its `prompts` parent)."""
    for parent in rollouts.parents:
        m = store.resolve(f"{parent.name}@{parent.version}")
        if m.kind == "prompts":
            return m
    raise InputDataError(f"{rollouts.ref} names no prompts version among its parents",
                         hint="pass the prompts explicitly: --prompts NAME@VERSION")


@dataclass(frozen=True)
class Counted:
    """Rollouts already counted (``filters/rollout_runs.py``): per run of equal prompt ids
    in row order (``prompt_id`` and the counts: several rows of a prompt whose rollouts are
    not together; the Dask counts tasks' tables, merged in task order) and the first 50
    distinct generators.  The step then reads no rollout row."""

    runs: Any  # pyarrow.Table
    generators: list[str] | None  # None: not seen (the step asks DuckDB)


def collect_provenance(ctx: StepContext, rollouts: Manifest, prompts: Manifest,
                       generators: list[str] | None = None) -> dict[str, Any]:
    """Who produced the rollouts and how, from their manifest (tolerant of missing facts).

    The generators record K and the seed in the step config, the teachers and the verifier
    versions in the provenance; other producers may use the aliases above.  What the data
    shows (samples per prompt, generator names) fills what the manifest does not say;
    ``generators``: the rollouts' distinct generators, already seen by whoever counted them.
    """
    given = rollouts.provenance or {}
    step = rollouts.step.config or {}
    out: dict[str, Any] = {"rollouts": rollouts.ref, "rollouts_fingerprint": rollouts.fingerprint,
                           "prompts": prompts.ref}
    for key, aliases in PROVENANCE_ALIASES.items():
        out[key] = next((source_[a] for source_ in (given, step) for a in aliases
                         if source_.get(a) is not None), None)
    if isinstance(given.get("teachers"), dict) and given["teachers"]:
        out["policy_models"] = sorted(given["teachers"])
        out["teachers"] = given["teachers"]
    if isinstance(given.get("verifiers"), dict) and given["verifiers"]:
        out["verifier"] = sorted(given["verifiers"])
        out["verifier_version"] = given["verifiers"]
    # rollouts per prompt as a histogram (a few rows): its min/max/mode, and what a Dask
    # partition hands the merge so the whole step's figures are exact (filters/partitioned.py)
    histogram = ctx.con.execute("SELECT n_rollouts, count(*) FROM scored GROUP BY 1").fetchall()
    observed = samples_observed(histogram)
    out["samples_per_prompt_observed"] = observed
    partition = current_partition()
    if partition is not None:
        partition.partials.update(n_rollouts=[list(r) for r in histogram],
                                  k_from_mode=out["K"] is None)
    if out["K"] is None:
        out["K"] = observed["mode"]
    if generators is None:
        generators = [r[0] for r in ctx.con.execute(
            "SELECT DISTINCT generator FROM rollouts_src ORDER BY 1 LIMIT 50").fetchall()]
    out["generators_observed"] = generators
    if out["policy_models"] is None:
        out["policy_models"] = generators
    out["rollouts_step"] = {"type": rollouts.step.type, "config": step}
    return out


def partial_counts_sql(relation: str) -> str:
    """Rollouts per prompt summed over partial counts (``Counted.runs``, registered as
    ``relation``); the types of the local counts (``count(*)`` is BIGINT, so are the sums)."""
    return ("SELECT prompt_id, sum(n_rollouts)::BIGINT AS n_rollouts, "
            "sum(n_samples)::BIGINT AS n_samples, sum(n_correct)::BIGINT AS n_correct "
            f"FROM {relation} GROUP BY prompt_id")


def _counted_here(store: DatasetStore, rollouts: Manifest, config: PassRateConfig,
                  threads: int) -> Counted | None:
    """The rollouts counted per run of prompt ids (a read and a ``reduceat``: no aggregate
    of the rows in DuckDB), or None where that does not apply (a selection of rollouts, a
    column of another type, a NULL prompt id)."""
    from .rollout_runs import counts_by_runs

    if rollouts.selection is not None or not rollouts.files:
        return None
    # the generators not read here: DuckDB's DISTINCT over that dictionary column is cheaper
    runs = counts_by_runs([str(p) for p in store.shard_paths(rollouts)],
                          reasoning=config.reasoning, threads=threads)
    return None if runs is None else Counted(runs.table, None)


def _beside_prompts(store: DatasetStore, prompts: Manifest, counted: Counted):
    """``counted``'s runs as one row per prompt row with its position (``rollout_runs.
    beside_prompts``): the prompts of a plain version each counted by one run, in order."""
    from .rollout_runs import beside_prompts

    if prompts.selection is not None or not prompts.files:
        return None
    return beside_prompts(counted.runs, [str(p) for p in store.shard_paths(prompts)],
                          [f.rows for f in prompts.files])


def samples_observed(histogram) -> dict[str, Any]:
    """min, max and mode of rollouts per prompt from (n_rollouts, prompts) pairs; the mode is
    the most common count, the smallest on a tie (DuckDB's ``mode`` takes the first value
    it meets: not the same under another scan order)."""
    counts: dict[int, int] = {}
    for n, prompts in histogram:
        counts[n] = counts.get(n, 0) + prompts
    if not counts:
        return {"min": None, "max": None, "mode": None}
    return {"min": min(counts), "max": max(counts),
            "mode": min(counts, key=lambda n: (-counts[n], n))}


def _attempted_prompts(ctx: StepContext, store: DatasetStore, rollouts: Manifest,
                       reasoning: str | None) -> None:
    """Table ``attempted``: prompts the rollouts run asked for whose requests failed.

    The generators put every request that failed after its retries into the rollouts
    version's ``rejected/`` with its ``prompt_id`` (and ``mode``): a prompt there and not in
    the data was sampled and got nothing (``no_rollouts``); a prompt in neither was outside
    the run's selection (``not_sampled``).
    """
    from thinkforge.manifests.selection import any_rejected_relation

    con = ctx.con
    select = "SELECT NULL::VARCHAR AS id WHERE false"
    relation = any_rejected_relation(store, rollouts)
    if relation is not None:
        columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        if "prompt_id" in columns:
            where = " WHERE mode = ?" if reasoning and "mode" in columns else ""
            select = f"SELECT DISTINCT prompt_id AS id FROM {relation}{where}"
            con.execute(f"CREATE TEMP TABLE attempted AS {select}", [reasoning] if where else [])
            return
    con.execute(f"CREATE TEMP TABLE attempted AS {select}")


def run_passrate(store: DatasetStore, rollouts: Manifest, prompts: Manifest | None, name: str,
                 config: PassRateConfig | None = None,
                 resources: Resources | None = None, counted: Counted | None = None) -> Manifest:
    """Aggregate ``rollouts`` per prompt into an ``rl_pool`` version named ``name``.

    ``prompts`` defaults to the rollouts version's prompts parent.  ``counted``: the
    rollouts' counts per prompt, already made (by Dask tasks; not with the LLM judge, which
    reads the rollouts): the same version, without a scan of the rollouts.
    """
    config = config or PassRateConfig()
    require_kind(rollouts, "rollouts", role="--rollouts")
    prompts = prompts or prompts_of(store, rollouts)
    require_kind(prompts, "prompts", role="--prompts")

    def body(ctx: StepContext) -> None:
        con = ctx.con
        con.execute(f"CREATE TEMP VIEW prompts_src AS SELECT * FROM {source(store, prompts)}")
        if config.judge.on:  # undecided rollouts take the judge's verdict (filters/judged.py)
            _judge_rollouts(ctx, store, source(store, rollouts), config)
        else:
            con.execute(f"CREATE TEMP VIEW rollouts_src AS SELECT * FROM {source(store, rollouts)}")
        # everything decided per prompt (counts, bucket, reason) is one narrow row per prompt:
        # materialise it once, then the wide prompt rows only meet it in a join (values are
        # bound parameters, in the order their ? appear)
        bucket, params = bucket_sql(config)
        params.append(config.min_samples)
        easy = unsolved = mode_filter = ""
        if config.drop_at_or_above is not None:
            easy = "WHEN pass_rate >= ? THEN 'too_easy'"
            params.append(float(config.drop_at_or_above))
        if config.drop_unsolved:
            unsolved = "WHEN pass_rate = 0 THEN 'unsolved'"
        partition = current_partition()
        # locally the narrow table holds only the rows written (not_sampled counted from the
        # prompts' row count), so keep_reject reads it in place; a Dask partition reads a
        # share of the prompts whose count no manifest states: it keeps the flag column
        local = partition is None
        # a local selection: the counts per prompt go straight into the join below (one
        # table of 1M narrow rows less to write), and `scored` is a view of the joined rows
        fused = local and ctx.selects(prompts)
        ctx.progress.phase("pass rate per prompt")
        have = counted  # the counts given, or made here (below)
        generators = counted.generators if counted is not None else None
        if fused and have is None and not config.judge.on:
            # counted per run of the rollouts' rows: when the runs are the prompts in order
            # (below), the counts need neither DuckDB's aggregate of every rollout nor a join
            have = _counted_here(store, rollouts, config, connection_threads(con))
        beside = _beside_prompts(store, prompts, have) if fused and have else None
        aligned = beside is not None
        if config.reasoning and have is None:  # the runs kept only that mode
            mode_filter = "WHERE reasoning = ?"
            params.append(config.reasoning)
        _attempted_prompts(ctx, store, rollouts, config.reasoning)
        counts = (f"SELECT prompt_id, count(*) AS n_rollouts, count(correct)::BIGINT AS n_samples, "
                  f"(count(*) FILTER (WHERE correct))::BIGINT AS n_correct "
                  f"FROM rollouts_src {mode_filter} GROUP BY prompt_id")
        if aligned:  # one row per prompt row, its position beside it
            con.register("__beside", beside)
            counts = ("SELECT id AS prompt_id, n_rollouts, n_samples, n_correct, __shard, __row "
                      "FROM __beside")
        elif have is not None:
            con.register("__runs", have.runs)
            counts = partial_counts_sql("__runs")
        scored = f"""
            SELECT *, {bucket} AS bucket,
              CASE WHEN n_samples = 0 THEN 'unverified'
                   WHEN n_samples < ? THEN 'too_few_samples'
                   {easy} {unsolved} END AS reason
            FROM (SELECT prompt_id AS id, * EXCLUDE (prompt_id),
                         (CASE WHEN n_samples > 0 THEN n_correct / n_samples END)::DOUBLE
                           AS pass_rate
                  FROM ({counts}))"""
        if aligned:
            # every prompt row has its counts (no unknown id, none unsampled): `decided` as
            # the FULL JOIN below would make it, without the join
            con.execute(
                "CREATE TEMP TABLE decided AS SELECT id, __shard, __row, n_samples, n_correct, "
                "pass_rate, bucket, NULL::BIGINT AS curriculum_batch, "
                f"NULL::BIGINT AS curriculum_position, reason, n_rollouts FROM ({scored})", params)
            con.unregister("__beside")  # the Arrow rows are in `decided` now: free them
            have = beside = None
        elif not fused:
            con.execute(f"CREATE TEMP TABLE scored AS {scored}", params)
        # one FULL JOIN finds the kept prompts, the prompts nobody sampled and the rollouts
        # of unknown prompts (their prompt columns are NULL): the prompts are scanned once
        narrow = "decided" if aligned else None
        if ctx.selects(prompts) and not aligned:
            # a selection: only the prompt ids and where they live are read (decoded once);
            # the decision per prompt and its position in one narrow table
            con.execute(
                "CREATE TEMP TABLE decided AS SELECT coalesce(p.id, s.id) AS id, p.__shard, "
                "p.__row, coalesce(s.n_samples, 0) AS n_samples, "
                "coalesce(s.n_correct, 0) AS n_correct, s.pass_rate, s.bucket, "
                "NULL::BIGINT AS curriculum_batch, NULL::BIGINT AS curriculum_position, "
                "CASE WHEN p.id IS NULL THEN 'unknown_prompt' WHEN s.id IS NULL THEN "
                "'no_rollouts' ELSE s.reason END AS reason"
                + (", s.n_rollouts" if fused else ", (s.id IS NULL AND a.id IS NULL) AS not_sampled")
                + f" FROM (SELECT id, __shard, __row FROM {source(store, prompts, positions=True)}) p "
                f"FULL JOIN {f'({scored})' if fused else 'scored'} s ON s.id = p.id "
                "LEFT JOIN attempted a ON a.id = p.id"
                + (" WHERE s.id IS NOT NULL OR a.id IS NOT NULL" if local else ""),
                params if fused else [])
            narrow = "decided" if local else "(SELECT * FROM decided WHERE NOT not_sampled)"
        if fused:
            # every counted prompt is a row of `decided` (the rows with rollouts); its reason
            # is the prompt's decision, which its readers below take for a known prompt
            con.execute("CREATE TEMP VIEW scored AS SELECT id, n_rollouts, n_samples, n_correct, "
                        "pass_rate, bucket, reason FROM decided WHERE n_rollouts IS NOT NULL")
        ctx.con.execute(
            f"CREATE TEMP VIEW judged AS SELECT coalesce(p.id, s.id) AS id, "
            f"{', '.join(f'p.{c}' for c in PROMPT_COLUMNS[1:])}, "
            "coalesce(s.n_samples, 0) AS n_samples, coalesce(s.n_correct, 0) AS n_correct, "
            "s.pass_rate, s.bucket, NULL::BIGINT AS curriculum_batch, "
            "NULL::BIGINT AS curriculum_position, CASE WHEN p.id IS NULL THEN 'unknown_prompt' "
            "WHEN s.id IS NULL THEN 'no_rollouts' ELSE s.reason END AS reason "
            "FROM prompts_src p FULL JOIN scored s ON s.id = p.id "
            "LEFT JOIN attempted a ON a.id = p.id "
            # a prompt outside the run's selection (never attempted) is neither kept nor
            # rejected: not_sampled, counted below
            "WHERE s.id IS NOT NULL OR a.id IS NOT NULL")
        # kept rows through an inner join: the prompt columns keep their NOT NULL (the FULL
        # JOIN makes them nullable, a different Parquet schema for the same rows)
        ctx.con.execute(
            "CREATE TEMP VIEW scored_prompts AS SELECT p.*, s.n_samples, s.n_correct, "
            "s.pass_rate, s.bucket, NULL::BIGINT AS curriculum_batch, "
            "NULL::BIGINT AS curriculum_position, s.reason "
            "FROM prompts_src p JOIN scored s ON s.id = p.id")
        pool = [*PROMPT_COLUMNS, "n_samples", "n_correct", "pass_rate", "bucket"]
        ctx.keep_reject("judged", [*pool, "curriculum_batch", "curriculum_position"],
                        kept="scored_prompts", rejected_columns=pool, order=("id", "id"),
                        size_of=[prompts], rows_from=prompts, narrow=narrow,
                        positioned=narrow is not None, in_place=narrow == "decided")
        ctx.provenance.update(collect_provenance(
            ctx, rollouts, prompts, generators))
        if narrow == "decided":  # every prompt row is in `decided` once unless not_sampled
            ctx.provenance["not_sampled"] = prompts.rows - con.execute(
                "SELECT count(__shard) FROM decided").fetchone()[0]
        else:
            ctx.provenance["not_sampled"] = con.execute(
                "SELECT count(*) FILTER (WHERE not_sampled) FROM decided" if narrow else
                "SELECT count(*) FROM (SELECT id FROM prompts_src) p "
                "WHERE NOT EXISTS (SELECT 1 FROM scored s WHERE s.id = p.id) "
                "AND NOT EXISTS (SELECT 1 FROM attempted a WHERE a.id = p.id)").fetchone()[0]

    return run_step(store, name=name, kind="rl_pool", step_type="filter.passrate", config=config,
                    inputs=[rollouts, prompts], body=body, resources=resources)


def _judge_rollouts(ctx: StepContext, store: DatasetStore, rollouts: str,
                    config: PassRateConfig) -> None:
    """View ``rollouts_src``: the rollouts, NULL ``correct`` settled by the judge where it
    could (the gold and the problem come from the prompts)."""
    from thinkforge.manifests.duck import quote_literal

    from .judged import judge_verdicts

    con = ctx.con
    con.execute(f"CREATE TEMP VIEW rollouts_raw AS SELECT * FROM {rollouts}")
    mode = f" WHERE r.reasoning = {quote_literal(config.reasoning)}" if config.reasoning else ""
    keys = ["prompt_id", "reasoning", "sample", "generator"]
    ctx.provenance["judge"] = judge_verdicts(
        ctx, store, config.judge,
        "SELECT r.prompt_id, r.reasoning, r.sample, r.generator, p.input, r.output, "
        "p.ground_truth AS gold, r.correct AS rule, p.verifier FROM rollouts_raw r "
        f"JOIN prompts_src p ON p.id = r.prompt_id{mode}", keys)
    on = " AND ".join(f"j.{k} = r.{k}" for k in keys)
    con.execute("CREATE TEMP VIEW rollouts_src AS SELECT r.* REPLACE (coalesce(r.correct, "
                f"j.verdict) AS correct) FROM rollouts_raw r LEFT JOIN judge_verdicts j ON {on}")


def _run_step(ctx, inputs, name, config):
    return {name: run_passrate(ctx.store, inputs["rollouts"], inputs.get("prompts"), name, config,
                               resources=filter_resources(ctx))}


def _records(store, inputs, name, config):
    require_kind(inputs["rollouts"], "rollouts", role="--rollouts")  # before its prompts parent
    prompts = inputs.get("prompts") or prompts_of(store, inputs["rollouts"])
    return [(name, make_step("filter.passrate", config), [inputs["rollouts"], prompts])]


STEP = register_step(StepDescriptor(
    type="passrate", record_type="filter.passrate", group="filter", output_kind="rl_pool",
    roles=(Role("rollouts", ("rollouts",), flag=True, help="rollouts version (K samples per "
                                                           "prompt)"),
           Role("prompts", ("prompts",), optional=True, flag=True,
                help="prompts version (default: the rollouts' prompts parent)")),
    config=PassRateConfig, run=_run_step, records=_records, resources=True,
    flags=(Flag("--keep-all", {"drop_at_or_above": None},
                "drop no pass rate (turns the 0.75 filter off)"),),
    help="Pass rate per prompt from rollouts -> an rl_pool version with difficulty buckets. "
         "Rejected prompts (too_easy, unsolved, no_rollouts, ...) are kept in rejected/.",
    examples=("thinkforge filter passrate --rollouts gsm8k-rollouts --name gsm8k-pool",
              "thinkforge filter passrate --rollouts r@v2 --prompts gsm8k --drop-unsolved "
              "--name pool")))
