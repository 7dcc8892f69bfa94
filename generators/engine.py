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

from thinkforge.manifests.errors import InputDataError

from .backends import ChatRequest, Sampling, make_backend
from .batch import batch_mode
from .progress import GenerationProgress
from .reasoning import teacher_messages
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
            config_hash = stable_hash({
                "backend": config.teacher.backend, "model": model, "sampling": sampling.model_dump(),
                "reasoning_format": config.reasoning_format, "seed": config.seed,
                "template": PROMPT_TEMPLATE_VERSION})
            messages = teacher_messages(prompt["input"], mode, config.reasoning_format)
            first_key = None
            for sample in range(samples):
                key = request_key(prompt["id"], mode, sample, config_hash)
                seed = int(stable_hash([config.seed, key], 8), 16) % (2 ** 31)
                # greedy decoding gives every sample the same text: ask once, copy the rest
                # (n candidates per mode keep ON/OFF pairs aligned by sample index)
                copy_of = first_key if sampling.temperature == 0 and sample > 0 else None
                plans.append(Plan(key, prompt, mode, sample, model, messages, Sampling(
                    sampling.temperature, sampling.top_p, sampling.max_new_tokens, seed), copy_of))
                first_key = first_key or key
    return plans


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
            from .batch import run_batched

            run_batched(pending, config, checkpoint, result, progress, label)
            groups.clear()
        if spec is not None and groups:  # --executor dask: partitions on the workers
            from .fanout import run_fanned_out

            progress.describe(f"{label} [dask]")
            run_fanned_out(spec, pending, config, checkpoint, result, progress)
            groups.clear()
        for model in dict.fromkeys(m for m, _ in groups):
            backend = make_backend(config.teacher, model)
            try:
                result.identities[model] = backend.identity
                for (group_model, mode), group in groups.items():
                    if group_model == model:
                        progress.describe(f"{label} [{mode}]")
                        _run_group(backend, group, checkpoint, result, progress)
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
               progress: GenerationProgress) -> None:
    group = sorted(group, key=size_of)
    size = max(1, backend.preferred_batch_size)
    for start in range(0, len(group), size):
        batch = group[start:start + size]
        requests = [ChatRequest(p.key, p.messages, p.sampling) for p in batch]
        began = time.monotonic()
        completions = backend.generate(requests)
        seconds = time.monotonic() - began
        rows = [checkpoint_row(p, c, seconds / len(batch)) for p, c in zip(batch, completions, strict=True)]
        checkpoint.append(rows)
        tokens = sum(c.completion_tokens for c in completions if c.ok)
        for row in rows:
            (result.completions if row["error_kind"] is None else result.failures)[row["key"]] = row
        result.generated_now += sum(1 for c in completions if c.ok)
        result.tokens_now += tokens
        result.generation_seconds += seconds
        progress.advance(len(batch), tokens)


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
        "verifiers": verifier_versions,
        **({"fan_out": result.fan_out} if result.fan_out else {}),
    }
