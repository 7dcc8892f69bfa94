"""The generation loop shared by SFT and rollouts: plan -> resume -> batches -> checkpoints.

A step plans one request per (prompt, mode, sample) with a deterministic key, and
``run_plans`` generates the ones the run's checkpoint does not have yet, one backend per
teacher model, in batches of requests that share a sampling setting (so a transformers
batch is one ``generate`` call).  Within a group requests are sorted by prompt length,
which keeps left padding small.  Each finished batch is checkpointed before the next
starts, so a crash loses at most one batch.  Under ``--executor dask`` the pending
requests go to the cluster's workers in partitions instead (generators/fanout.py), into
the same checkpoint.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from thinkforge.manifests.errors import GenerationFailedError, InputDataError

from .backends import ChatRequest, Sampling, make_backend
from .batch import batch_mode
from .forcing import FORCED, FORCED_AFTER_LENGTH, Forcing, force_answers, forcing_for
from .progress import GenerationProgress
from .reasoning import teacher_messages, wire_seen
from .runs import RunCheckpoint, checkpoint_row, request_key, size_of, stable_hash

PROMPT_TEMPLATE_VERSION = 1  # bump when teacher_messages changes what is sent


@dataclass
class Plan:
    key: str
    prompt: dict[str, Any]
    mode: str
    sample: int
    model: str
    messages: list[dict[str, str]]
    sampling: Sampling
    copy_of: str | None = None   # greedy decoding: samples > 0 reuse sample 0's answer
    forcing: Forcing | None = None  # answer forcing of a prompted ON request (forcing.py)


@dataclass
class RunResult:
    completions: dict[str, dict[str, Any]]          # key -> checkpoint row (successes)
    failures: dict[str, dict[str, Any]]             # key -> checkpoint row (after the last try)
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempt: int = 1
    generated_now: int = 0
    tokens_now: int = 0
    generation_seconds: float = 0.0
    wall_seconds: float = 0.0
    fan_out: dict[str, Any] = field(default_factory=dict)  # --executor dask: partitions...
    pacing: dict[str, Any] = field(default_factory=dict)   # model -> rate/concurrency facts
    forcing: Counter = field(default_factory=Counter)      # forced / failed:<kind>, this attempt


def load_prompts(store, manifest, limit: int | None) -> list[dict[str, Any]]:
    if manifest.kind != "prompts":
        raise InputDataError(f"{manifest.ref} is a {manifest.kind!r} version, not prompts",
                             hint="pass a prompts version, e.g. --prompts gsm8k@v1")
    store.verify(manifest)  # sha256 (cached per file) before prompts feed a new version
    if manifest.selection is None:
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = []
        for path in store.shard_paths(manifest):
            rows.extend(pq.read_table(path).to_pylist())
            if limit is not None and len(rows) >= limit:
                break
        return rows[:limit] if limit is not None else rows
    from thinkforge.manifests.duck import connect
    from thinkforge.manifests.selection import row_relation

    con = connect()  # a selection (e.g. decontaminated prompts): its rows resolved, in order
    try:
        cut = f" LIMIT {int(limit)}" if limit is not None else ""
        return con.sql(f"SELECT * FROM {row_relation(store, manifest)}{cut}").to_arrow_table().to_pylist()
    finally:
        con.close()


def plan_requests(prompts: list[dict[str, Any]], config, modes: list[str],
                  samples: int) -> list[Plan]:
    """One request per (prompt, mode, sample); the key changes with whatever shapes the text."""
    plans = []
    for prompt in prompts:
        for mode in modes:
            model = config.model_for(mode, prompt["category"])
            sampling = config.sampling_for(mode)
            forcing = forcing_for(config, mode)
            config_hash = stable_hash({
                "backend": config.teacher.backend, "model": model, "sampling": sampling.model_dump(),
                "reasoning_format": config.reasoning_format, "seed": config.seed,
                "template": PROMPT_TEMPLATE_VERSION, **wire_key(config.teacher_for(model)),
                **instructions_key(config), **forcing_key(forcing)})
            messages = teacher_messages(prompt["input"], mode, config.reasoning_format,
                                        config.instructions)
            first_key = None
            for sample in range(samples):
                key = request_key(prompt["id"], mode, sample, config_hash)
                seed = int(stable_hash([config.seed, key], 8), 16) % (2 ** 31)
                # greedy decoding gives every sample the same text: ask once, copy the rest
                # (n candidates per mode keep ON/OFF pairs aligned by sample index)
                copy_of = first_key if sampling.temperature == 0 and sample > 0 else None
                plans.append(Plan(key, prompt, mode, sample, model, messages, Sampling(
                    sampling.temperature, sampling.top_p, sampling.max_new_tokens, seed), copy_of,
                    forcing))
                first_key = first_key or key
    return plans


def instructions_key(config) -> dict[str, Any]:
    """The step's own per-mode instructions, for request keys (only when set, so the keys of
    steps on the default instructions never changed)."""
    return {"instructions": config.instructions.model_dump()} if config.instructions else {}


def forcing_key(forcing: Forcing | None) -> dict[str, Any]:
    """Answer forcing, for the keys of the requests it applies to (prompted ON) and only when
    set: OFF requests and steps without it keep their keys."""
    return {"answer_forcing": [forcing.tokens, forcing.after_length]} if forcing else {}


def wire_key(teacher) -> dict[str, Any]:
    """The wire settings that change what is sent or how a reply is read, for request keys
    (only those off their defaults, so keys of plain teachers never changed)."""
    fields = {name: getattr(teacher, name) for name, default in WIRE_DEFAULTS.items()
              if getattr(teacher, name) != default}
    if fields.get("thinking_key") and teacher.thinking_switch != "chat_template_kwargs":
        del fields["thinking_key"]  # the key name matters only when the switch is sent
    return {"wire": fields} if fields else {}


WIRE_DEFAULTS = {"reasoning_field": "auto", "think_prefilled": "auto",
                 "thinking_switch": "system_prompt", "thinking_key": "enable_thinking"}


def run_plans(plans: list[Plan], config, checkpoint: RunCheckpoint, *, label: str,
              show_progress: bool = True) -> RunResult:
    started = time.monotonic()
    wanted = {p.key for p in plans}
    # a run dir reused with --run-id may hold keys of another config: only ours count
    done = {k: v for k, v in checkpoint.load_successes().items() if k in wanted}
    asked = [p for p in plans if p.copy_of is None]
    pending = [p for p in asked if p.key not in done]
    result = RunResult(completions=done, failures={}, attempt=checkpoint.attempt)
    groups: dict[tuple[str, str], list[Plan]] = defaultdict(list)
    for plan in pending:
        groups[(plan.model, plan.mode)].append(plan)
    from thinkforge.manifests.executor import fan_out_spec

    spec = fan_out_spec()
    with GenerationProgress(label, total=len(asked), done=len(asked) - len(pending),
                            enabled=show_progress) as progress:
        if pending and batch_mode(config.teacher):  # --batch*: Batch API files, not calls
            refuse_forcing_in_batches(label, pending)
            from .batch import run_batched

            run_batched(pending, config, checkpoint, result, progress, label)
            groups.clear()
        if spec is not None and groups:  # --executor dask: partitions on the workers
            from .fanout import run_fanned_out

            progress.describe(f"{label} [dask]")
            run_fanned_out(spec, pending, config, checkpoint, result, progress)
            groups.clear()
        for model in dict.fromkeys(m for m, _ in groups):
            teacher = config.teacher_for(model)
            backend = make_backend(teacher, model)
            try:
                result.identities[model] = backend.identity
                for (group_model, mode), group in groups.items():
                    if group_model == model:
                        progress.describe(f"{label} [{mode}]")
                        _run_group(backend, group, checkpoint, result, progress,
                                   price_of(teacher))
                        stop_if_dead(backend, label, plans, result, checkpoint)
                if hasattr(backend, "pacing"):
                    result.pacing[model] = backend.pacing()
            finally:
                backend.close()
    for plan in plans:  # greedy samples > 0: sample 0's answer (or failure) under their own key
        if plan.copy_of is not None:
            for table in (result.completions, result.failures):
                if plan.copy_of in table:
                    table[plan.key] = {**table[plan.copy_of], "key": plan.key,
                                       "sample": plan.sample, "copy_of": plan.copy_of}
    result.wall_seconds = time.monotonic() - started
    return result


def _run_group(backend, group: list[Plan], checkpoint: RunCheckpoint, result: RunResult,
               progress: GenerationProgress, price: tuple[float, float] | None) -> None:
    group = sorted(group, key=size_of)
    size = max(1, backend.preferred_batch_size)
    reported: set[str] = set()

    def report(completion) -> None:  # per request, as answers come (HTTP teachers)
        reported.add(completion.key)
        progress.request_done(completion, cost_of(completion, price))

    if hasattr(backend, "on_completion"):
        backend.on_completion = report
    for start in range(0, len(group), size):
        batch = group[start:start + size]
        requests = [ChatRequest(p.key, p.messages, p.sampling, p.mode) for p in batch]
        began = time.monotonic()
        completions = force_answers(backend, batch, backend.generate(requests), result.forcing)
        seconds = time.monotonic() - began
        rows = [checkpoint_row(p, c, seconds / len(batch)) for p, c in zip(batch, completions, strict=True)]
        checkpoint.append(rows)
        tokens = sum(c.completion_tokens for c in completions if c.ok)
        for row in rows:
            (result.completions if row["error_kind"] is None else result.failures)[row["key"]] = row
        result.generated_now += sum(1 for c in completions if c.ok)
        result.tokens_now += tokens
        result.generation_seconds += seconds
        for completion in completions:  # batch backends report the whole batch at its end
            if completion.key not in reported:
                progress.request_done(completion, cost_of(completion, price))
        reported.clear()
        if getattr(backend, "dead", None):
            return  # the rest of the group would only meet the same dead server


def refuse_forcing_in_batches(label: str, pending: list[Plan]) -> None:
    """A Batch API job answers each request once: there is no second round to force in."""
    if any(p.forcing for p in pending):
        from thinkforge.manifests.errors import ConfigError

        raise ConfigError(f"{label}: answer_forcing needs a second round of requests, which "
                          "--batch / --batch-file-only / --batch-results do not run",
                          hint="drop answer_forcing from the step, or run without --batch")


def price_of(teacher) -> tuple[float, float] | None:
    """(input, output) price per 1M tokens of a teacher, None when it has none."""
    if teacher.price_input_per_m is None and teacher.price_output_per_m is None:
        return None
    return (teacher.price_input_per_m or 0.0, teacher.price_output_per_m or 0.0)


def cost_of(completion, price: tuple[float, float] | None) -> float:
    if price is None or not completion.ok:
        return 0.0
    return (completion.prompt_tokens * price[0] + completion.completion_tokens * price[1]) / 1e6


def stop_if_dead(backend, label: str, plans: list[Plan], result: RunResult,
                 checkpoint: RunCheckpoint) -> None:
    """A teacher that stopped answering stops the run at once (exit 10), the checkpoint
    kept, with the endpoint and the command that resumes it."""
    dead = getattr(backend, "dead", None)
    if not dead:
        return
    asked = sum(1 for p in plans if p.copy_of is None)
    raise GenerationFailedError(
        f"{label}: the teacher at {dead['endpoint']} is not answering ({dead['reason']}; last "
        f"error: {' '.join(str(dead['error']).split())[:200]}); stopped with "
        f"{len(result.completions)} of {asked} requests answered, nothing was published",
        hint=f"the answers are kept in {checkpoint.dir}; start the server (or point --base-url "
             f"at a live one) and resume: {resume_command()}")


def resume_command() -> str:
    """The command line that resumes this run: the same command again."""
    import shlex
    import sys
    from pathlib import Path

    if sys.argv and Path(sys.argv[0]).name == "thinkforge":
        return "thinkforge " + shlex.join(sys.argv[1:])
    return "run the same command again (same config and prompts: same run id)"


def provenance(result: RunResult, config, run_id: str, verifier_versions: dict[str, str],
               verifier_errors: Counter) -> dict[str, Any]:
    """Token accounting, timing, errors and teacher identity for the manifest."""
    rows = [r for r in result.completions.values() if not r.get("copy_of")]  # asked, not copied
    errors = Counter(r["error_kind"] for r in result.failures.values() if not r.get("copy_of"))
    return {
        "run_id": run_id, "run_attempt": result.attempt, "backend": config.teacher.backend,
        "teachers": result.identities or {m: {"model": m} for m in {r["model"] for r in rows}},
        "requests": len(rows) + sum(1 for r in result.failures.values() if not r.get("copy_of")),
        "greedy_copies": sum(1 for r in result.completions.values() if r.get("copy_of")),
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rows),
        "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
        "generated_this_attempt": result.generated_now,
        "resumed_from_checkpoint": len(rows) - result.generated_now,
        "wall_time_s": round(result.wall_seconds, 3),
        "generation_time_s": round(result.generation_seconds, 3),
        "tokens_per_s": round(result.tokens_now / result.generation_seconds, 2)
        if result.generation_seconds else None,
        "errors_by_kind": dict(errors), "verifier_errors_by_kind": dict(verifier_errors),
        **forcing_facts(rows, config, result),
        "verifiers": verifier_versions,
        **usage_facts(rows, config),
        "run_control": run_control(config, result),
        **({"fan_out": result.fan_out} if result.fan_out else {}),
    }


def forcing_facts(rows: list[dict[str, Any]], config, result: RunResult) -> dict[str, Any]:
    """Answer forcing's settings and counts (rows of the whole run; failures: this attempt)."""
    if getattr(config, "answer_forcing", None) is None:
        return {}
    reasons = Counter(r["finish_reason"] for r in rows)
    return {"answer_forcing": {
        **config.answer_forcing.model_dump(), "forced": reasons[FORCED],
        "forced_after_length": reasons[FORCED_AFTER_LENGTH],
        "failed_this_attempt": {k.split(":", 1)[1]: v for k, v in result.forcing.items()
                                if k.startswith("failed:")}}}


def usage_facts(rows: list[dict[str, Any]], config) -> dict[str, Any]:
    """Tokens and the estimated cost per teacher (prices per 1M tokens from the teacher
    settings), and how each teacher's ON replies carried their reasoning."""
    usage: dict[str, dict[str, Any]] = {}
    wire: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        u = usage.setdefault(row["model"], {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
        u["requests"] += 1
        u["prompt_tokens"] += row["prompt_tokens"] or 0
        u["completion_tokens"] += row["completion_tokens"] or 0
        if row["mode"] == "on":
            wire[row["model"]][wire_seen(row["text"], row.get("wire"))] += 1
    total = None
    for model, u in usage.items():
        price = price_of(config.teacher_for(model))
        if price is not None:
            u["cost_usd"] = round((u["prompt_tokens"] * price[0]
                                   + u["completion_tokens"] * price[1]) / 1e6, 6)
            total = round((total or 0.0) + u["cost_usd"], 6)
    return {"usage_by_teacher": usage, "cost_usd": total,
            "reasoning_wire": {m: dict(c) for m, c in wire.items()}}


RUN_CONTROL = ("batch_size", "concurrency", "max_retries", "request_timeout_s",
               "requests_per_minute", "tokens_per_minute", "dead_after_failures", "dead_after_s")


def run_control(config, result: RunResult | None = None) -> dict[str, Any]:
    """How this attempt was driven: recorded, never keyed (docs/teachers.md)."""
    teacher = config.teacher
    facts: dict[str, Any] = {name: getattr(teacher, name) for name in RUN_CONTROL
                             if getattr(teacher, name, None) is not None}
    if result is not None:
        facts["executor"] = "dask" if result.fan_out else "local"
    if teacher.backend == "openai":
        facts["endpoints"] = teacher.endpoint_urls()
    if result is not None and result.pacing:
        facts["pacing"] = result.pacing
    return facts
