"""Quality rules for generated answers (``sft`` and ``rollouts`` versions), in DuckDB SQL.

Each rule either passes a row or names why it fails; a row failing several rules is
rejected with the first reason in this order:

==============  =====================  ======================================================
rule            reason(s)              a row fails when
==============  =====================  ======================================================
empty           ``empty_output``       the output is empty or only whitespace
truncated       ``truncated``          ``finish_reason`` is ``length`` (generation hit the cap)
                                       or ``forced_after_length`` (then answer-forced)
think_format    ``think_missing``      ON: no ``<think>`` block
                ``think_malformed``    ON: not exactly one ``<think>`` and one ``</think>``,
                                       in that order, at the start of the output
                ``think_empty``        ON: the think block holds only whitespace
                ``answer_missing``     ON: nothing after ``</think>``
                ``answer_repeats_      ON: the answer is the think block again
                reasoning``            (``<think>X</think>X``: a teacher that wrote no
                                       final answer line)
                ``think_in_off``       OFF: any ``<think>`` or ``</think>`` tag
boxed           ``boxed_missing``      the input *instructs* ``\\boxed`` ("put your final
                                       answer within \\boxed{}") and the answer lacks it
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
from thinkforge.generators.reasoning import BOXED_INSTRUCTION
from thinkforge.manifests import DatasetStore, Manifest
from thinkforge.manifests.errors import require
from thinkforge.manifests.schemas import ROW_KEYS, schema_for

from .base import Resources, StepConfig, StepContext, declare_filter, require_kind, row_order, run_step, source
from .pairs import PAIRS_FIELD_HELP, PairPolicy, apply_pair_policy, pair_facts, resolve_policy

Rule = Literal["empty", "truncated", "think_format", "boxed", "length", "language"]
DEFAULT_RULES: list[str] = ["empty", "truncated", "think_format", "boxed", "length"]

# DuckDB trim() strips spaces only; answers end in newlines and tabs too.  Only ltrim() with a
# character set is cheap on long texts (rtrim/trim walk the whole string codepoint by codepoint:
# ~50 us per 4 KB output here), so "blank" is ltrim(x) = '' and a full trim() runs only on the
# rows a cheap guard cannot settle.
WS = "chr(32) || chr(9) || chr(10) || chr(13)"
# positions are computed once per row in the inner projection (p_open, p_close); the answer
# and the think block are taken only in the CASE branches that need them, so a row that
# fails or passes early never copies its text
ANSWER = ("(CASE WHEN reasoning = 'on' AND p_close > 0 THEN substr(output, p_close + 8) "
          "ELSE output END)")
THINK = "substr(output, p_open + 7, p_close - p_open - 7)"


def _count(needle: str) -> str:
    return f"((strlen(output) - strlen(replace(output, '{needle}', ''))) // {len(needle)})"


def _blank(text: str) -> str:
    return f"(ltrim({text}, {WS}) = '')"


# answer == think block once both are trimmed.  The guard (their first 64 characters, ltrimmed
# then rtrimmed) is necessary for equality and costs nothing on long texts; the full trims
# run only where it holds.
_REPEATS = (f"(rtrim(left(ltrim({ANSWER}, {WS}), 64), {WS}) = rtrim(left(ltrim({THINK}, {WS}), 64), "
            f"{WS}) AND trim({ANSWER}, {WS}) = trim({THINK}, {WS}))")
THINK_FORMAT = f"""
  WHEN reasoning = 'on' AND p_open = 0 AND p_close = 0 THEN 'think_missing'
  WHEN reasoning = 'on' AND (p_open = 0 OR p_close = 0 OR p_close < p_open
        OR NOT starts_with(ltrim(output, {WS}), '<think>')
        OR {_count('<think>')} <> 1 OR {_count('</think>')} <> 1) THEN 'think_malformed'
  WHEN reasoning = 'on' AND {_blank(THINK)} THEN 'think_empty'
  WHEN reasoning = 'on' AND {_blank(ANSWER)} THEN 'answer_missing'
  WHEN reasoning = 'on' AND {_REPEATS} THEN 'answer_repeats_reasoning'
  WHEN reasoning = 'off' AND (p_open > 0 OR p_close > 0) THEN 'think_in_off'"""


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
                checks.append(f"WHEN {_blank('output')} THEN 'empty_output'")
            elif rule == "truncated":
                # a reply cut at the cap then answer-forced (generators/forcing.py) still
                # has a cut reasoning
                checks.append("WHEN finish_reason IN ('length', 'forced_after_length') "
                              "THEN 'truncated'")
            elif rule == "think_format":
                checks.append(THINK_FORMAT)
            elif rule == "boxed" and has_input:
                # the request's own instruction to box (thinkforge.generators.reasoning), not
                # a \boxed the problem quotes from a worked solution
                asks = BOXED_INSTRUCTION.replace("'", "''")
                checks.append("WHEN regexp_matches(array_to_string(list_transform(input, lambda m: "
                              f"m.content), chr(10)), '{asks}') AND strpos({ANSWER}, '\\boxed') = 0 "
                              "THEN 'boxed_missing'")
            elif rule == "length":
                tokens = (f"coalesce(output_tokens, ceil(len(string_split_regex(trim(output, {WS}), "
                          "'\\s+')) * 4 / 3))")
                checks.append(
                    f"WHEN (reasoning = 'on' AND cap_on > 0 AND {tokens} > cap_on) OR "
                    f"(reasoning = 'off' AND cap_off > 0 AND {tokens} > cap_off) THEN 'too_long'")
            elif rule == "language":
                _register_language_udf(con)
                checks.append(f"WHEN NOT {_blank(ANSWER)} AND NOT list_contains(languages, "
                              f"detect_language({ANSWER})) THEN 'wrong_language'")
        reason = ("CASE " + " ".join(checks) + " END") if checks else "NULL::VARCHAR"
        keys = list(ROW_KEYS[data.kind])
        inherited = list(data.selection.columns) if data.selection is not None else []
        narrow = list(dict.fromkeys([*keys, *(c for c in ("pair_id", "reasoning") if c in columns),
                                     *inherited]))  # a selection input's stored columns too
        policy = resolve_policy(config.pairs, columns)
        # the rules run once, over the text columns only, into a narrow table of (row key,
        # pair, mode, reason); the pair policy, the kept / rejected split and the provenance
        # all read that table (the text is never judged twice nor carried through a window)
        ctx.progress.phase("judging rows")
        con.execute(f"""
            CREATE TEMP TABLE __quality AS
            SELECT {', '.join(narrow)}, {reason} AS reason FROM (
              SELECT *, strpos(output, '<think>') AS p_open, strpos(output, '</think>') AS p_close
              FROM {source(store, data)}), knobs""")
        con.execute("CREATE TEMP TABLE __decided AS "
                    + apply_pair_policy("__quality", narrow, policy))
        # the full rows with their decision: read only when the kept rows are copied
        con.execute(f"CREATE TEMP VIEW decided AS SELECT s.*, d.reason, d.pair_failed_id "
                    f"FROM {source(store, data)} s JOIN __decided d ON "
                    + " AND ".join(f"s.{k} = d.{k}" for k in keys))
        ctx.keep_reject("decided", columns, order=row_order(data), narrow="__decided",
                        extra=("pair_failed_id",) if policy != "independent" else ())
        ctx.provenance.update({"data": data.ref, "rules": list(config.rules),
                               "skipped_rules": [] if has_input else ["boxed"]})
        ctx.provenance.update(pair_facts(con, "__quality", "SELECT * FROM __decided", narrow,
                                         policy))

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
