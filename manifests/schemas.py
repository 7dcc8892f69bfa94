"""Arrow schemas of every record kind (docs/concepts.md), in one place.

Column names follow the public Llama-Nemotron post-training dataset and TRL where they can.
Every writer conforms its rows to these schemas, so readers (DuckDB, ``datasets``, TRL) see
the same columns and types in every version of a kind.
"""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

CATEGORIES = ("math", "code", "science", "chat", "instruction_following", "safety")
VERIFIERS = ("math", "code", "ifeval", "judge", "none")
REASONING_MODES = ("on", "off")
SYSTEM_PROMPTS = {"on": "detailed thinking on", "off": "detailed thinking off"}


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


PROMPT_FIELDS = [
    _f("id", pa.string(), False),
    _f("source", pa.string(), False),
    _f("category", pa.string(), False),
    _f("input", MESSAGES, False),
    _f("ground_truth", pa.string()),
    _f("verifier", pa.string(), False),
    _f("license", pa.string()),
    _f("metadata", pa.string()),  # JSON object as text: free-form provenance of the source row
]

SCHEMAS: dict[str, pa.Schema] = {
    "prompts": pa.schema(PROMPT_FIELDS),
    "sft": pa.schema([
        _f("id", pa.string(), False),
        _f("prompt_id", pa.string(), False),
        _f("pair_id", pa.string(), False),
        _f("category", pa.string(), False),
        _f("reasoning", pa.string(), False),
        _f("system_prompt", pa.string(), False),
        _f("input", MESSAGES, False),
        _f("output", pa.string(), False),
        _f("generator", pa.string(), False),
        _f("license", pa.string()),
        _f("ground_truth", pa.string()),
        _f("verified", pa.bool_()),
        _f("answer", pa.string()),
        _f("output_tokens", pa.int64()),
        _f("finish_reason", pa.string()),
        _f("used_in_training", pa.string()),
        _f("version", pa.string()),
        # the verifier's rule behind `verified` (thinkforge.verify's Verdict.reason: number,
        # symbolic, no_answer, gold_not_math...); NULL in versions written before it
        _f("verdict", pa.string()),
    ]),
    "rollouts": pa.schema([
        _f("prompt_id", pa.string(), False),
        _f("sample", pa.int64(), False),
        _f("generator", pa.string(), False),
        _f("reasoning", pa.string(), False),
        _f("output", pa.string(), False),
        _f("answer", pa.string()),
        _f("correct", pa.bool_()),
        _f("format_ok", pa.bool_()),
        _f("reward", pa.float64()),
        _f("output_tokens", pa.int64()),
        _f("finish_reason", pa.string()),
        _f("verdict", pa.string()),  # the rule behind `correct` (as in sft)
    ]),
    "rl_pool": pa.schema(PROMPT_FIELDS + [
        _f("n_samples", pa.int64(), False),
        _f("n_correct", pa.int64(), False),
        _f("pass_rate", pa.float64(), False),
        _f("bucket", pa.string()),
        _f("curriculum_batch", pa.int64()),
        _f("curriculum_position", pa.int64()),
    ]),
    "preferences": pa.schema([
        _f("prompt_id", pa.string(), False),
        _f("input", MESSAGES, False),
        _f("chosen", pa.string(), False),
        _f("rejected", pa.string(), False),
        _f("chosen_score", pa.float64()),
        _f("rejected_score", pa.float64()),
    ]),
}

KINDS = tuple(SCHEMAS)

# The columns that identify a row of each kind: `diff` matches rows on them and writers
# refuse duplicates of them.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "prompts": ("id",),
    "sft": ("id",),
    "rollouts": ("prompt_id", "reasoning", "sample", "generator"),
    "rl_pool": ("id",),
    "preferences": ("prompt_id", "chosen", "rejected"),
}

# Allowed values of enumerated string columns (checked on import and on publish).
ENUMS: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "verifier": VERIFIERS,
    "reasoning": REASONING_MODES,
    "system_prompt": tuple(SYSTEM_PROMPTS.values()),
}


def schema_for(kind: str) -> pa.Schema:
    from .errors import ConfigError

    try:
        return SCHEMAS[kind]
    except KeyError:
        raise ConfigError(f"unknown record kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}") from None
