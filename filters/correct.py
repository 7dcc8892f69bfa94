"""``filter correct``: rejection sampling for SFT, as Llama-Nemotron built its SFT data.

The paper sampled several answers per prompt and mode and kept correct ones.  With
``generate sft --n N`` each (prompt, mode) has N candidates; this step keeps the ones whose
answer verified, then picks one (or all) per prompt and mode:

1. **verdict per row**: ``verified`` true passes; false is ``incorrect``; NULL (no ground
   truth, no verifier, or a gold the verifier could not read) follows ``unverifiable``:
   ``keep`` (the default: chat or safety prompts have nothing to check), ``drop`` (reason
   ``unverifiable``) or ``judge`` (set aside for a judge later: reason ``awaiting_judge``,
   so ``"<name>/rejected"`` holds exactly the rows a judge has to read).  With ``--judge``
   (``judge.mode``) an LLM judge is asked first about the NULL rows that have a gold; its
   yes / no becomes their ``verified`` (filters/judged.py), what it leaves undecided
   follows ``unverifiable``;
2. **pairs** (the shared policy of ``thinkforge.filters.pairs``): ``drop-whole`` (the default) keeps a
   pair only if both its answers pass (the twin of a failing answer is rejected as
   ``pair_partner:<mode>:<reason>``), ``keep-whole`` keeps it if either does,
   ``independent`` judges rows alone;
3. **pick** among what passed, per prompt and mode (per prompt when pairs are kept whole,
   choosing a whole pair): ``best`` (a verified answer before an unverifiable one, then not
   truncated, then the answer most candidates agree on — self-consistency —, then the
   lowest sample), ``first`` (the lowest sample index: the first correct answer a
   generate-until-correct loop would stop at), ``shortest`` (fewest output tokens) or
   ``all`` (every passing candidate).  Candidates not picked are ``not_picked``.

Every dropped row is in ``rejected/`` with its reason; the provenance has the counts and
the verified rate before and after.  The sample index is not an ``sft`` column: it is
recovered from ``pair_id`` (the generators' ``stable_hash([prompt_id, sample])``); rows of
another origin have none and sort after, by id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from thinkforge.generators.judge_config import JudgeConfig, JudgedStep
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.schemas import schema_for

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, row_order, run_step, source
from .pairs import PAIRS_FIELD_HELP, PairPolicy, apply_pair_policy, pair_facts, resolve_policy

Pick = Literal["best", "first", "shortest", "all"]


class CorrectConfig(StepConfig, JudgedStep):
    unverifiable: Literal["keep", "drop", "judge"] = Field(
        "keep", description="rows whose answer could not be verified (verified NULL): keep, "
                            "drop as 'unverifiable', or judge later (set aside as "
                            "'awaiting_judge' in rejected/)")
    pairs: PairPolicy | None = Field(None, description=PAIRS_FIELD_HELP)
    pick: Pick = Field(
        "best", description="per prompt and mode among the answers that pass: best, first "
                            "(lowest sample), shortest (fewest tokens) or all")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM judge of the "
                               "rows whose verified is NULL (docs/verifier.md)")


_ORDER = {
    "best": "n_unverified, n_truncated, votes DESC, sample_key, unit",
    "first": "sample_key, unit",
    "shortest": "tokens, sample_key, unit",
}


def run_correct(store: DatasetStore, data: Manifest, name: str,
                config: CorrectConfig | None = None,
                resources: Resources | None = None) -> Manifest:
    """Keep the verified answers of an sft version (one per prompt and mode unless pick=all)."""
    config = config or CorrectConfig()
    require_kind(data, "sft", role="data")
    columns = schema_for("sft").names
    policy = resolve_policy(config.pairs, columns)
    whole = policy != "independent"

    def body(ctx: StepContext) -> None:
        con = ctx.con
        if config.judge.on:  # undecided rows take the judge's verdict (filters/judged.py)
            from .judged import judge_verdicts

            con.execute(f"CREATE TEMP VIEW unjudged AS SELECT * FROM {source(store, data)}")
            ctx.provenance["judge"] = judge_verdicts(
                ctx, store, config.judge,
                "SELECT id, input, output, ground_truth AS gold, verified AS rule, CASE WHEN "
                "category = 'code' THEN 'code' END AS verifier FROM unjudged", ["id"])
            con.execute("CREATE TEMP VIEW src AS SELECT u.* REPLACE (coalesce(u.verified, "
                        "j.verdict) AS verified) FROM unjudged u "
                        "LEFT JOIN judge_verdicts j ON j.id = u.id")
        else:
            con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM {source(store, data)}")
        ctx.progress.phase("verdicts")
        # the narrow facts of every candidate; wide rows only meet them in the final join
        con.execute("""
            CREATE TEMP TABLE cand AS
            SELECT id, pair_id, prompt_id, reasoning, verified,
                   CASE WHEN verified THEN NULL
                        WHEN verified IS NULL THEN CASE ? WHEN 'drop' THEN 'unverifiable'
                                                          WHEN 'judge' THEN 'awaiting_judge' END
                        ELSE 'incorrect' END AS reason,
                   coalesce(output_tokens, ceil(length(output) / 4))::BIGINT AS tokens,
                   (finish_reason IN ('length', 'forced_after_length')) AS truncated,
                   CASE WHEN answer IS NULL OR trim(answer) = '' THEN 0 ELSE
                     count(*) OVER (PARTITION BY prompt_id, reasoning, answer) END AS agree
            FROM src""", [config.unverifiable])
        _recover_samples(con)
        narrow = ["id", "pair_id", "prompt_id", "reasoning", "verified", "tokens", "truncated",
                  "agree"]
        con.execute(f"CREATE TEMP TABLE paired AS {apply_pair_policy('cand', narrow, policy)}")
        ctx.progress.phase("pick")
        # the unit picked: a whole pair per prompt, or one answer per prompt and mode
        group, unit = ("prompt_id", "coalesce(pair_id, id)") if whole else \
            ("prompt_id, reasoning", "id")
        con.execute(f"CREATE TEMP VIEW units_of AS SELECT id, {unit} AS unit FROM cand")
        # whole pairs: a complete pair before an orphan (an answer whose twin was never
        # stored, e.g. an ON reply rejected at generation), or the orphan of sample 0 would
        # outrank the verified pair of sample 2 and the prompt would yield no pair
        first = "n_rows DESC, " if whole else ""
        if config.pick == "all":
            picked = "SELECT id, reason, pair_failed_id FROM paired"
        else:
            picked = f"""
              WITH live AS (
                SELECT c.*, u.unit, s.sample FROM cand c JOIN paired p USING (id)
                JOIN units_of u USING (id) LEFT JOIN samples s ON s.pair_id = c.pair_id
                WHERE p.reason IS NULL),
              units AS (
                SELECT {group}, unit, count(*) AS n_rows,
                       count(*) FILTER (WHERE verified IS NULL) AS n_unverified,
                       count(*) FILTER (WHERE truncated) AS n_truncated,
                       sum(CASE WHEN agree > 1 THEN agree ELSE 0 END) AS votes,
                       sum(tokens) AS tokens, coalesce(min(sample), 2147483647) AS sample_key
                FROM live GROUP BY {group}, unit),
              ranked AS (
                SELECT unit, row_number() OVER (PARTITION BY {group} ORDER BY
                         {first}{_ORDER[config.pick]}) AS rank FROM units)
              SELECT p.id, coalesce(p.reason, CASE WHEN r.rank > 1 THEN 'not_picked' END) AS reason,
                     p.pair_failed_id
              FROM paired p JOIN units_of u USING (id) LEFT JOIN ranked r ON r.unit = u.unit"""
        con.execute(f"CREATE TEMP TABLE decided AS {picked}")
        con.execute("CREATE TEMP VIEW judged AS SELECT s.*, d.reason, d.pair_failed_id "
                    "FROM src s JOIN decided d USING (id)")
        ctx.keep_reject("judged", columns, order=row_order(data),
                        extra=("pair_failed_id",) if whole else (),
                        changed=("verified",) if config.judge.on else ())
        ctx.provenance.update(_facts(con, data, policy, config))
        ctx.provenance.update(pair_facts(
            con, "cand", "SELECT c.id, c.pair_id, d.reason FROM cand c JOIN decided d USING (id)",
            columns, policy))

    return run_step(store, name=name, kind="sft", step_type="filter.correct", config=config,
                    inputs=[data], body=body, resources=resources)


def _recover_samples(con) -> None:
    """Table ``samples(pair_id, sample)``: the sample index behind each generator pair_id."""
    con.execute("""
        CREATE TEMP TABLE samples AS
        WITH pairs AS (SELECT DISTINCT prompt_id, pair_id FROM cand),
             most AS (SELECT coalesce(max(n), 0) AS n FROM
                      (SELECT count(*) AS n FROM cand GROUP BY prompt_id, reasoning))
        SELECT p.pair_id, min(r.i) AS sample
        FROM pairs p, most, range(0, most.n) r(i)
        WHERE left(sha256('["' || p.prompt_id || '",' || r.i::VARCHAR || ']'), 16) = p.pair_id
        GROUP BY p.pair_id""")


def _facts(con, data: Manifest, policy: str, config: CorrectConfig) -> dict:
    rows = con.execute("""
        SELECT c.reasoning, count(*) AS candidates, count(*) FILTER (WHERE c.verified) AS verified,
               count(c.verified) AS checked, count(*) FILTER (WHERE d.reason IS NULL) AS kept,
               count(*) FILTER (WHERE d.reason IS NULL AND c.verified) AS kept_verified,
               count(*) FILTER (WHERE d.reason IS NULL AND c.verified IS NOT NULL) AS kept_checked,
               count(DISTINCT c.prompt_id) AS prompts,
               count(DISTINCT c.prompt_id) FILTER (WHERE d.reason IS NULL) AS prompts_kept
        FROM cand c JOIN decided d USING (id) GROUP BY ALL ORDER BY 1""").fetchall()
    by_mode = {}
    for mode, cands, verified, checked, kept, kept_verified, kept_checked, prompts, kept_p in rows:
        by_mode[mode] = {"candidates": cands, "verified": verified,
                         "verified_rate_before": verified / checked if checked else None,
                         "kept": kept, "verified_rate_after": kept_verified / kept_checked
                         if kept_checked else None, "prompts": prompts, "prompts_kept": kept_p}
    return {"data": data.ref, "pair_policy": policy, "pick": config.pick,
            "unverifiable": config.unverifiable, "by_mode": by_mode}


STEP = declare_filter(
    "correct", run_correct, config=CorrectConfig, kinds=("sft",),
    help="Rejection sampling: keep the verified answers of an sft version, one (or all) per "
         "prompt and mode.",
    examples=("thinkforge generate sft --prompts gsm8k --name gsm8k-sft --n 4 --limit 16",
              "thinkforge filter correct gsm8k-sft --name gsm8k-sft-correct --unverifiable drop",
              "thinkforge filter correct gsm8k-sft --pairs independent --pick shortest --name s"))
