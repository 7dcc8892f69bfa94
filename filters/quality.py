"""Quality rules for generated answers (``sft`` and ``rollouts`` versions), in DuckDB SQL.

Each rule either passes a row or names why it fails; a row failing several rules is
rejected with the first reason in this order:

==============  =====================  ======================================================
rule            reason(s)              a row fails when
==============  =====================  ======================================================
empty           ``empty_output``       the output is empty or only whitespace
truncated       ``truncated``          ``finish_reason = 'length'`` (generation hit the cap)
think_format    ``think_missing``      ON: no ``<think>`` block
                ``think_malformed``    ON: not exactly one ``<think>`` and one ``</think>``,
                                       in that order, at the start of the output
                ``think_empty``        ON: the think block holds only whitespace
                ``answer_missing``     ON: nothing after ``</think>``
                ``answer_repeats_      ON: the answer is the think block again
                reasoning``            (``<think>X</think>X``: a teacher that wrote no
                                       final answer line)
                ``think_in_off``       OFF: any ``<think>`` or ``</think>`` tag
boxed           ``boxed_missing``      the input asks for ``\\boxed`` and the answer lacks it
                                       (sft only: rollouts carry no input)
length          ``too_long``           tokens > ``max_tokens_on`` / ``max_tokens_off``;
                                       tokens = ``output_tokens`` (the generator's own
                                       tokenizer count) or, where missing, 4/3 x words
language        ``wrong_language``     the answer's language (``langdetect``, extra
                                       ``lang``) is not in ``languages``; opt in
==============  =====================  ======================================================

Defaults: every rule except ``language``; caps 32768 tokens ON (the paper's reasoning
budget) and 8192 OFF.

``sft`` versions are judged by ON/OFF pair (``pairs``, see ``filters/pairs.py``): by default
a pair is kept only if both its rows pass, and the passing row of a broken pair is rejected
with ``pair_partner:<mode>:<reason>`` and the failed row's id in ``pair_failed_id``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from manifests import DatasetStore, Manifest
from manifests.errors import require
from manifests.schemas import schema_for

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, row_order, run_step, source
from .pairs import PAIRS_FIELD_HELP, PairPolicy, apply_pair_policy, pair_facts, resolve_policy

Rule = Literal["empty", "truncated", "think_format", "boxed", "length", "language"]
DEFAULT_RULES: list[str] = ["empty", "truncated", "think_format", "boxed", "length"]

# the answer part: after </think> in ON mode, the whole output otherwise
ANSWER = ("CASE WHEN reasoning = 'on' AND strpos(output, '</think>') > 0 "
          "THEN substr(output, strpos(output, '</think>') + 8) ELSE output END")
# DuckDB trim() strips spaces only; answers end in newlines and tabs too
WS = "chr(32) || chr(9) || chr(10) || chr(13)"
THINK_FORMAT = f"""
  WHEN reasoning = 'on' AND strpos(output, '<think>') = 0 AND strpos(output, '</think>') = 0
    THEN 'think_missing'
  WHEN reasoning = 'on' AND (n_open <> 1 OR n_close <> 1
        OR strpos(output, '</think>') < strpos(output, '<think>')
        OR NOT starts_with(ltrim(output, {WS}), '<think>')) THEN 'think_malformed'
  WHEN reasoning = 'on' AND trim(substr(output, strpos(output, '<think>') + 7,
        strpos(output, '</think>') - strpos(output, '<think>') - 7), {WS}) = ''
    THEN 'think_empty'
  WHEN reasoning = 'on' AND trim(answer_part, {WS}) = '' THEN 'answer_missing'
  WHEN reasoning = 'on' AND trim(answer_part, {WS}) = trim(substr(output,
        strpos(output, '<think>') + 7, strpos(output, '</think>') - strpos(output, '<think>') - 7),
        {WS}) THEN 'answer_repeats_reasoning'
  WHEN reasoning = 'off' AND (n_open > 0 OR n_close > 0) THEN 'think_in_off'"""


class QualityConfig(StepConfig):
    rules: list[Rule] = Field(default_factory=lambda: list(DEFAULT_RULES),
                              description="rules to apply, in this order of reasons")
    max_tokens_on: int | None = Field(32768, ge=1, description="token cap for reasoning ON "
                                                               "answers (None: no cap)")
    max_tokens_off: int | None = Field(8192, ge=1, description="token cap for reasoning OFF "
                                                               "answers (None: no cap)")
    languages: list[str] = Field(["en"], description="ISO 639-1 codes accepted by the "
                                                     "language rule")
    pairs: PairPolicy | None = Field(None, description=PAIRS_FIELD_HELP)


def _count(needle: str) -> str:
    return f"((length(output) - length(replace(output, '{needle}', ''))) // {len(needle)})"


def run_quality(store: DatasetStore, data: Manifest, name: str,
                config: QualityConfig | None = None,
                resources: Resources | None = None) -> Manifest:
    """Keep the rows of ``data`` that pass every rule; the rest go to rejected/ with a reason."""
    config = config or QualityConfig()
    require_kind(data, "sft", "rollouts", role="data")
    columns = schema_for(data.kind).names
    has_input = "input" in columns

    def body(ctx: StepContext) -> None:
        con = ctx.con
        ctx.bind(cap_on=config.max_tokens_on or -1, cap_off=config.max_tokens_off or -1,
                 languages=list(config.languages))
        checks = []
        for rule in config.rules:
            if rule == "empty":
                checks.append(f"WHEN trim(output, {WS}) = '' THEN 'empty_output'")
            elif rule == "truncated":
                checks.append("WHEN finish_reason = 'length' THEN 'truncated'")
            elif rule == "think_format":
                checks.append(THINK_FORMAT)
            elif rule == "boxed" and has_input:
                checks.append("WHEN strpos(input_text, '\\boxed') > 0 AND "
                              "strpos(answer_part, '\\boxed') = 0 THEN 'boxed_missing'")
            elif rule == "length":
                checks.append(
                    "WHEN (reasoning = 'on' AND (SELECT cap_on FROM knobs) > 0 AND tokens > "
                    "(SELECT cap_on FROM knobs)) OR (reasoning = 'off' AND (SELECT cap_off "
                    "FROM knobs) > 0 AND tokens > (SELECT cap_off FROM knobs)) THEN 'too_long'")
            elif rule == "language":
                _register_language_udf(con)
                checks.append(f"WHEN trim(answer_part, {WS}) <> '' AND NOT list_contains((SELECT languages "
                              "FROM knobs), detect_language(answer_part)) THEN 'wrong_language'")
        input_text = ("array_to_string(list_transform(input, lambda m: m.content), chr(10))"
                      if has_input else "''")
        reason = ("CASE " + " ".join(checks) + " END") if checks else "NULL::VARCHAR"
        con.execute(f"""
            CREATE TEMP VIEW judged AS
            SELECT *, {reason} AS reason FROM (
              SELECT *, {input_text} AS input_text, {ANSWER} AS answer_part,
                     {_count('<think>')} AS n_open, {_count('</think>')} AS n_close,
                     coalesce(output_tokens,
                              ceil(len(string_split_regex(trim(output, {WS}), '\\s+')) * 4 / 3))
                       AS tokens
              FROM {source(store, data)})""")
        policy = resolve_policy(config.pairs, columns)
        con.execute(f"CREATE TEMP VIEW decided AS {apply_pair_policy('judged', columns, policy)}")
        ctx.keep_reject("decided", columns, order=row_order(data),
                        extra=("pair_failed_id",) if policy != "independent" else ())
        ctx.provenance.update({"data": data.ref, "rules": list(config.rules),
                               "skipped_rules": [] if has_input else ["boxed"]})
        ctx.provenance.update(pair_facts(con, "judged", "SELECT * FROM decided", columns, policy))

    return run_step(store, name=name, kind=data.kind, step_type="filter.quality", config=config,
                    inputs=[data], body=body, resources=resources)


def _register_language_udf(con) -> None:
    langdetect = require("langdetect", "lang")
    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded

    def detect(text: str | None) -> str | None:
        try:
            return langdetect.detect(text) if text else None
        except langdetect.LangDetectException:
            return None

    con.create_function("detect_language", detect, ["VARCHAR"], "VARCHAR",
                        null_handling="special", side_effects=False)


STEP = declare_filter(
    "quality", run_quality, config=QualityConfig, kinds=("sft", "rollouts"),
    help="Drop answers that break format, length, truncation or language rules (sft, rollouts).",
    examples=("thinkforge filter quality gsm8k-sft --name gsm8k-sft-clean",
              "thinkforge filter quality gsm8k-sft --rules think_format,truncated --name sft-fmt",
              "thinkforge filter quality gsm8k-sft --pairs independent --name sft-rows"))
