"""``--judge`` on ``filter correct`` and ``filter passrate``: the LLM judge settles the rows
the rule verifier left undecided (docs/verifier.md#judge).

The filter hands a relation of candidate rows; the judge (``thinkforge.generators.judge``:
prompt, strict parsing, cache) is asked about the ones it is for, and its verdicts become
the temp table ``judge_verdicts(<keys>, verdict)`` holding only the rows whose label it
decided, which the filter folds in with ``coalesce(label, verdict)``.  Rules win wherever
they decided, also under ``--judge all`` (then the judge's agreement with them is counted).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def judge_verdicts(ctx, store, config, rows_sql: str, keys: list[str]) -> dict[str, Any]:
    """Ask ``config`` (a ``JudgeConfig``) about the rows of ``rows_sql`` (columns: ``keys``,
    ``input``, ``output``, ``gold``, ``rule``, ``verifier``); create ``judge_verdicts``;
    return the manifest's ``provenance.judge``."""
    from thinkforge.generators.judge import Judge, JudgeItem, answer_part, problem_text, wants_judge

    ctx.progress.phase("judge")
    undecided_only = "" if config.mode == "all" else " AND rule IS NULL"
    rows = ctx.con.sql(
        f"SELECT * FROM ({rows_sql}) WHERE gold IS NOT NULL AND trim(gold) <> '' "
        f"AND coalesce(verifier, '') <> 'code'{undecided_only}").to_arrow_table().to_pylist()
    asked, items = [], []
    for row in rows:
        reply = answer_part(row["output"] or "")
        if reply and wants_judge(config.mode, row["rule"], row["gold"], row["verifier"]):
            asked.append(row)
            items.append(JudgeItem(problem_text(row["input"]), reply, row["gold"], row["rule"]))
    judge = Judge(config, store)
    decided = [(row, verdict) for row, verdict in zip(asked, judge.ask(items), strict=True)
               if row["rule"] is None and verdict is not None]
    table = pa.table({**{k: pa.array([row[k] for row, _ in decided],
                                     type=pa.string() if k != "sample" else pa.int64())
                         for k in keys},
                      "verdict": pa.array([v for _, v in decided], type=pa.bool_())})
    ctx.con.register("judge_verdicts_arrow", table)
    ctx.con.execute("CREATE TEMP TABLE judge_verdicts AS SELECT * FROM judge_verdicts_arrow")
    ctx.con.unregister("judge_verdicts_arrow")
    facts = judge.facts()
    if len(keys) == 1:  # rows the version stores: which labels came from the judge
        facts["decided_rows"] = [row[keys[0]] for row, _ in decided]
    return facts
