"""Row shapes of every export format: one small function per format, row in -> row out.

Each format names the record kinds it accepts, the file type it writes and the function
that turns one stored row into one exported row.  The column conventions are the
consumers' own, so the files load unchanged:

- ``trl-sft``: TRL conversational language modelling, ``messages`` with the system turn
  (``detailed thinking on|off``) first, then the prompt turns, then the assistant answer.
- ``trl-prompt-completion``: TRL conversational prompt-completion: ``prompt`` (system +
  prompt turns) and ``completion`` (the assistant turn).
- ``trl-grpo``: TRL prompt-only: conversational ``prompt`` plus the columns GRPO reward
  functions receive as keyword arguments (``solution`` is what ``trl.rewards.accuracy_reward``
  reads; ``ground_truth``, ``pass_rate``, ``curriculum_batch``... for custom rewards).
- ``trl-dpo``: TRL conversational preference: ``prompt``, ``chosen``, ``rejected``.
- ``verl``: verl's RL Parquet (``data_source``, ``prompt``, ``ability``,
  ``reward_model{style, ground_truth}``, ``extra_info{...}``).
- ``openrlhf``: JSONL whose keys OpenRLHF's dataset flags name (see ``OPENRLHF_ARGS``).
- ``nemotron``: the public Llama-Nemotron post-training JSONL schema.
- ``hf``: every column as stored, as a ``datasets.save_to_disk`` folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from thinkforge.generators.reasoning import apply_prompt_template, marker_required
from thinkforge.manifests.schemas import MESSAGES, SYSTEM_PROMPTS

Row = dict[str, Any]


@dataclass(frozen=True)
class ExportContext:
    """Facts about the exported version that rows need (not per-row data)."""

    ref: str
    fingerprint: str
    kind: str
    split: str
    reasoning: str | None          # system prompt mode for prompt-only rows: on, off or None
    data_source: str | None        # verl: overrides the row's `source`
    policy_model: str | None       # verl extra_info: the model whose rollouts gave pass rates
    prompt_template: dict | None = None  # the rollouts' template (thinkforge.generators.reasoning)
    release: str | None = None           # nemotron `version`: a short release tag (v1)
    used_in_training: tuple[str, ...] = ()  # nemotron: models trained on this version
    license: str | None = None           # nemotron: licence for rows that have none


@dataclass(frozen=True)
class ExportJob:
    """One export as a format's hooks see it: what was exported and where, and the two
    services that need the store (given by ``export_version``)."""

    kind: str
    out: str
    ctx: ExportContext
    curriculum: bool                               # the rows are in curriculum order
    stages: int | None                             # openrlhf: --stages
    write_stages: Callable[[int], list[dict]]      # -> the stage files written
    licence_warnings: Callable[[], list[str]]      # rows without a licence


@dataclass(frozen=True)
class ExportFormat:
    """An export format, found through the ``thinkforge.exports`` entry points (or
    ``register_export``).  It owns everything format-specific: its row shape, its extra
    facts in the export manifest (``describe``) and what a trainer must be told (``notes``)."""

    name: str
    kinds: tuple[str, ...]
    file_type: str                 # parquet | jsonl | hf
    convert: Callable[[Row, int, ExportContext], Row] | None
    ordered_by_curriculum: bool = False
    schema: pa.Schema | None = None   # explicit Parquet schema where inference could vary
    suggested_for: tuple[str, ...] = ()   # kinds whose dataset card suggests this format
    records_prompt_template: bool = True  # prompt-only exports record the rollouts' template
    describe: Callable[[ExportJob], dict[str, Any]] | None = None  # extra export-manifest keys
    notes: Callable[[ExportJob, dict[str, Any]], list[str]] | None = None  # printed to the user


def system_turn(reasoning: str | None) -> list[Row]:
    return [{"role": "system", "content": SYSTEM_PROMPTS[reasoning]}] if reasoning else []


def assistant(text: str) -> list[Row]:
    return [{"role": "assistant", "content": text}]


def _sft_prompt(row: Row) -> list[Row]:
    # the stored system_prompt is authoritative: it is what the teacher saw
    return [{"role": "system", "content": row["system_prompt"]}, *row["input"]]


def rl_prompt(row: Row, ctx: ExportContext) -> list[Row]:
    """The prompt an RL trainer gets: exactly the messages the pool's rollouts were sampled
    from (the rollouts' template in the exported mode: system turn + instruction suffix),
    or, without a recorded template, the reasoning system turn and the bare prompt."""
    template = ctx.prompt_template
    mode = ctx.reasoning
    if template and mode in template.get("modes", {}):
        return apply_prompt_template(row["input"], template, mode)
    if template and mode is None and len(template.get("modes", {})) == 1:
        only = next(iter(template["modes"]))
        return apply_prompt_template(row["input"], template, only, system=False)
    return system_turn(mode) + row["input"]


def trl_sft(row: Row, index: int, ctx: ExportContext) -> Row:
    return {"messages": _sft_prompt(row) + assistant(row["output"])}


def trl_prompt_completion(row: Row, index: int, ctx: ExportContext) -> Row:
    return {"prompt": _sft_prompt(row), "completion": assistant(row["output"])}


def trl_grpo(row: Row, index: int, ctx: ExportContext) -> Row:
    return {
        "prompt": rl_prompt(row, ctx),
        "solution": row.get("ground_truth"),
        "ground_truth": row.get("ground_truth"),
        "id": row["id"],
        "category": row["category"],
        "verifier": row["verifier"],
        "source": row["source"],
        "pass_rate": row.get("pass_rate"),
        "n_samples": row.get("n_samples"),
        "n_correct": row.get("n_correct"),
        "bucket": row.get("bucket"),
        "curriculum_batch": row.get("curriculum_batch"),
        "curriculum_position": row.get("curriculum_position"),
    }


def dpo_system_turn(row: Row, ctx: ExportContext) -> list[Row]:
    """``auto``: the mode the chosen answer is in (a think block: on, else off), so the
    chat template never injects its own default system prompt."""
    if ctx.reasoning == "auto":
        return system_turn("on" if row["chosen"].lstrip().startswith("<think>") else "off")
    return system_turn(ctx.reasoning)


def trl_dpo(row: Row, index: int, ctx: ExportContext) -> Row:
    return {"prompt": dpo_system_turn(row, ctx) + row["input"],
            "chosen": assistant(row["chosen"]), "rejected": assistant(row["rejected"]),
            "prompt_id": row["prompt_id"], "chosen_score": row.get("chosen_score"),
            "rejected_score": row.get("rejected_score")}


# verl picks a reward function by `data_source` (verl.utils.reward_score.default_compute_score);
# the bundled sources map to the names its built-in scorers know.
VERL_DATA_SOURCES = {"gsm8k": "openai/gsm8k", "math500": "HuggingFaceH4/MATH-500"}


def verl(row: Row, index: int, ctx: ExportContext) -> Row:
    verifier = row["verifier"]
    prompt = rl_prompt(row, ctx)
    return {
        "data_source": ctx.data_source or VERL_DATA_SOURCES.get(row["source"], row["source"]),
        "prompt": prompt,
        "ability": row["category"],
        "reward_model": {"style": "model" if verifier == "judge" else "rule",
                         "ground_truth": row.get("ground_truth") or ""},
        "extra_info": {
            "index": index, "id": row["id"], "split": ctx.split,
            "pass_rate": row.get("pass_rate"), "n_samples": row.get("n_samples"),
            "difficulty_bucket": row.get("bucket"), "curriculum_batch": row.get("curriculum_batch"),
            "verifier": verifier, "policy_model": ctx.policy_model,
            "dataset_version": ctx.ref, "dataset_fingerprint": ctx.fingerprint,
            # read by thinkforge.integrations.verl.compute_score
            "answer_marker_required": marker_required(prompt),
            "prompt_metadata": row.get("metadata"),
            # how compute_score reads a reply's answer part (as the rollouts were read)
            "reasoning": _exported_mode(ctx),
            "reasoning_format": (ctx.prompt_template or {}).get("reasoning_format"),
        },
    }


def _exported_mode(ctx: ExportContext) -> str | None:
    """The reasoning mode of the exported prompts: the one asked for, or the template's only one."""
    modes = (ctx.prompt_template or {}).get("modes", {})
    return ctx.reasoning or (next(iter(modes)) if len(modes) == 1 else None)


# verl 0.9: score with thinkforge's verifiers (thinkforge/integrations/verl.py), keep order
VERL_REWARD_OVERRIDES = ("reward.custom_reward_function.path=pkg://thinkforge.integrations.verl "
                         "reward.custom_reward_function.name=compute_score data.shuffle=False")

VERL_SCHEMA = pa.schema([
    ("data_source", pa.string()), ("prompt", MESSAGES), ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([
        ("index", pa.int64()), ("id", pa.string()), ("split", pa.string()),
        ("pass_rate", pa.float64()), ("n_samples", pa.int64()),
        ("difficulty_bucket", pa.string()), ("curriculum_batch", pa.int64()),
        ("verifier", pa.string()), ("policy_model", pa.string()),
        ("dataset_version", pa.string()), ("dataset_fingerprint", pa.string()),
        ("answer_marker_required", pa.bool_()), ("prompt_metadata", pa.string()),
        ("reasoning", pa.string()), ("reasoning_format", pa.string())])),
])

GRPO_SCHEMA = pa.schema([
    ("prompt", MESSAGES), ("solution", pa.string()), ("ground_truth", pa.string()),
    ("id", pa.string()), ("category", pa.string()), ("verifier", pa.string()),
    ("source", pa.string()), ("pass_rate", pa.float64()), ("n_samples", pa.int64()),
    ("n_correct", pa.int64()), ("bucket", pa.string()), ("curriculum_batch", pa.int64()),
    ("curriculum_position", pa.int64()),
])

# The flags to pass to OpenRLHF's trainers for each kind this export writes: OpenRLHF 0.11
# (0.10 renamed every flag into groups: --prompt_data -> --data.prompt_dataset, ...).
# The file flag comes first: --data.prompt_dataset for PPO prompts, --data.dataset for
# SFT and DPO (openrlhf.cli.train_ppo_ray / train_sft / train_dpo).
OPENRLHF_RELEASE = "0.11"
OPENRLHF_DATA_FLAG = {"sft": "--data.dataset", "rl_pool": "--data.prompt_dataset",
                      "prompts": "--data.prompt_dataset", "preferences": "--data.dataset"}
OPENRLHF_TRAINER = {"sft": "openrlhf.cli.train_sft", "rl_pool": "openrlhf.cli.train_ppo_ray",
                    "prompts": "openrlhf.cli.train_ppo_ray", "preferences": "openrlhf.cli.train_dpo"}
OPENRLHF_ARGS = {
    "sft": "--data.input_key input --data.output_key output --data.apply_chat_template",
    "rl_pool": "--data.input_key prompt --data.label_key label --data.apply_chat_template",
    "prompts": "--data.input_key prompt --data.label_key label --data.apply_chat_template",
    "preferences": "--data.prompt_key prompt --data.chosen_key chosen "
                   "--data.rejected_key rejected --data.apply_chat_template",
}


def openrlhf(row: Row, index: int, ctx: ExportContext) -> Row:
    """OpenRLHF applies the chat template to the message lists itself (--apply_chat_template)."""
    if ctx.kind == "sft":
        return {"input": _sft_prompt(row), "output": assistant(row["output"]), "id": row["id"],
                "reasoning": row["reasoning"], "category": row["category"]}
    if ctx.kind == "preferences":
        return trl_dpo(row, index, ctx)
    return {"prompt": rl_prompt(row, ctx), "label": row.get("ground_truth"),
            "id": row["id"], "category": row["category"], "verifier": row["verifier"],
            "pass_rate": row.get("pass_rate"), "curriculum_batch": row.get("curriculum_batch")}


NEMOTRON_COLUMNS = ("input", "output", "category", "license", "reasoning", "generator",
                    "used_in_training", "version", "system_prompt")


def nemotron(row: Row, index: int, ctx: ExportContext) -> Row:
    """The public Llama-Nemotron post-training JSONL row (as NeMo Curator's tutorial reads it):
    ``used_in_training`` a list of model names (["Ultra", "Nano"]; empty when unknown),
    ``version`` a short release tag (v1), ``license`` the row's licence (``unknown``, with
    a warning from the export, when neither the row nor ``--license`` gives one)."""
    out = {k: row.get(k) for k in NEMOTRON_COLUMNS}
    stored = out["used_in_training"]
    names = list(ctx.used_in_training) or (
        [n.strip() for n in stored.split(",") if n.strip()]
        if stored and stored.lower() not in ("yes", "no") else [])
    out["used_in_training"] = names
    out["version"] = ctx.release or out["version"] or ctx.ref.rsplit("@", 1)[-1]
    out["license"] = out["license"] or ctx.license or "unknown"
    return out


# -- what each format adds to the export manifest and tells the user ----------------------------
def _grpo_notes(job: ExportJob, record: dict[str, Any]) -> list[str]:
    return ["TRL GRPO: pass GRPOConfig(shuffle_dataset=False)"
            + (" to keep the curriculum order (GRPO shuffles by default)" if job.curriculum
               else " to keep the stored order")]


def _sft_notes(job: ExportJob, record: dict[str, Any]) -> list[str]:
    return ["TRL SFT: chat templates without generation markers (SmolLM2, Llama) cannot use "
            "assistant_only_loss; export trl-prompt-completion for completion-only loss with "
            "any template"]


def _verl_describe(job: ExportJob) -> dict[str, Any]:
    return {"verl_overrides": f"data.train_files={job.out}/{job.ctx.split}.parquet "
                              f"data.prompt_key=prompt {VERL_REWARD_OVERRIDES}"}


def _verl_notes(job: ExportJob, record: dict[str, Any]) -> list[str]:
    return [f"verl: {record['verl_overrides']}",
            "verl: data.shuffle=False keeps the curriculum order; the custom reward scores with "
            "thinkforge's verifiers (extra_info.verifier)"]


def _openrlhf_describe(job: ExportJob) -> dict[str, Any]:
    out = {"openrlhf_release": OPENRLHF_RELEASE, "openrlhf_trainer": OPENRLHF_TRAINER[job.kind],
           "openrlhf_args": f"{OPENRLHF_DATA_FLAG[job.kind]} {job.out}/{job.ctx.split}.jsonl "
                            f"{OPENRLHF_ARGS[job.kind]}"}
    if job.stages and job.kind in ("rl_pool", "prompts"):
        out["openrlhf_stages"] = job.write_stages(job.stages)
    return out


def _openrlhf_notes(job: ExportJob, record: dict[str, Any]) -> list[str]:
    notes = [f"OpenRLHF {OPENRLHF_RELEASE} ({record['openrlhf_trainer']}): {record['openrlhf_args']}"]
    if job.kind in ("rl_pool", "prompts"):
        notes.append("OpenRLHF: PPO shuffles the prompts and has no flag to stop it"
                     + ("; to keep the curriculum train stage by stage on the files in stages/ "
                        "(each run resuming the last: --ckpt.load_enable)"
                        if record.get("openrlhf_stages") else
                        "; export with --stages N for one file per curriculum stage"
                        if job.curriculum else ""))
    return notes


def _nemotron_describe(job: ExportJob) -> dict[str, Any]:
    return {"options": {"release": job.ctx.release, "used_in_training": list(job.ctx.used_in_training),
                        "license": job.ctx.license},
            "warnings": job.licence_warnings()}


# the built-in formats; each is named by a `thinkforge.exports` entry point (pyproject.toml)
TRL_SFT = ExportFormat("trl-sft", ("sft",), "parquet", trl_sft, suggested_for=("sft",), notes=_sft_notes)
TRL_PROMPT_COMPLETION = ExportFormat("trl-prompt-completion", ("sft",), "parquet", trl_prompt_completion)
TRL_GRPO = ExportFormat("trl-grpo", ("rl_pool", "prompts"), "parquet", trl_grpo, ordered_by_curriculum=True,
                        schema=GRPO_SCHEMA, suggested_for=("prompts",), notes=_grpo_notes)
TRL_DPO = ExportFormat("trl-dpo", ("preferences",), "parquet", trl_dpo, suggested_for=("preferences",))
VERL = ExportFormat("verl", ("rl_pool", "prompts"), "parquet", verl, ordered_by_curriculum=True,
                    schema=VERL_SCHEMA, suggested_for=("rl_pool",), describe=_verl_describe,
                    notes=_verl_notes)
OPENRLHF = ExportFormat("openrlhf", tuple(OPENRLHF_ARGS), "jsonl", openrlhf, ordered_by_curriculum=True,
                        describe=_openrlhf_describe, notes=_openrlhf_notes)
NEMOTRON = ExportFormat("nemotron", ("sft",), "jsonl", nemotron, describe=_nemotron_describe)
HF = ExportFormat("hf", ("prompts", "sft", "rollouts", "rl_pool", "preferences"), "hf", None,
                  ordered_by_curriculum=True, suggested_for=("rollouts",), records_prompt_template=False)

_REGISTERED: dict[str, ExportFormat] = {}  # register_export(): this process only


def formats() -> dict[str, ExportFormat]:
    """Every export format: the ``thinkforge.exports`` entry points, then the registered."""
    from thinkforge.manifests import plugins

    found = {name: plugins.load("exports", name) for name in plugins.discovered("exports")}
    return {**found, **_REGISTERED}


def format_names() -> list[str]:
    return list(formats())


def register_export(spec: ExportFormat) -> ExportFormat:
    """Add an export format in this process: `thinkforge export --format <name>` and the API
    take it (a package adds one for good with a `thinkforge.exports` entry point)."""
    _REGISTERED[spec.name] = spec
    return spec


def suggested_format(kind: str) -> str:
    """The format a dataset card suggests for a kind (the first that names it)."""
    table = formats().values()
    return next((f.name for f in table if kind in f.suggested_for),
                next(f.name for f in table if kind in f.kinds))


def jsonl_line(row: Row) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"
