"""Paired reasoning ON/OFF SFT generation (docs/concepts.md) -> an ``sft`` version.

For each prompt, mode and sample the teacher sees the system prompt ``detailed thinking
on|off`` first, then the prompt.  The ON and OFF answers of sample i of a prompt share a
``pair_id``.  Stored rows keep the prompt's messages in ``input`` and the system prompt in
``system_prompt`` (as the public Llama-Nemotron dataset does).  ON rows whose teacher broke
the think-tag format (native), OFF rows with a think block, and empty outputs are
rejected with a reason; the rest are verified where the prompt has a ground truth.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from thinkforge.manifests.manifest import Manifest
from thinkforge.manifests.schemas import SYSTEM_PROMPTS
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

from .config import SftConfig
from .engine import Plan, RunResult
from .reasoning import shape_output
from .runs import stable_hash
from .steps import generation_plan, rejected_row, run_generation_step, verify_verdict
from .verifiers import VerifierRegistry

__all__ = ["SftConfig", "generate_sft"]


def generate_sft(store, prompts: Manifest, name: str, config: SftConfig, *,
                 run_id: str | None = None, progress: bool = True) -> Manifest:
    """Generate paired ON/OFF answers for ``prompts`` and publish them as ``name``.

    Reuses an identical earlier version; resumes an interrupted run (same config, or the
    same ``run_id``); returns the published (or reused) manifest.
    """
    return run_generation_step(store, prompts, name, kind="sft", step_type="generate_sft",
                               config=config, modes=list(config.modes), samples=config.n,
                               build_rows=lambda *a: _build_rows(config, *a), run_id=run_id,
                               progress=progress)


def _build_rows(config: SftConfig, plans: list[Plan], result: RunResult,
                verifiers: VerifierRegistry, verifier_errors: Counter):
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for plan in plans:
        done = result.completions.get(plan.key)
        if done is None:
            continue
        shaped = shape_output(done["text"], plan.mode, config.reasoning_format,
                              config.teacher_for(plan.model).think_prefilled)
        reason = _reject_reason(plan.mode, config.reasoning_format, shaped)
        if reason:
            rejected.append(rejected_row(plan, reason, None, done["text"]))
            continue
        prompt = plan.prompt
        verdict = verify_verdict(verifiers, plan, shaped, verifier_errors)
        verified, answer = verdict.correct, verdict.answer
        rows.append({
            "id": plan.key, "prompt_id": prompt["id"],
            "pair_id": stable_hash([prompt["id"], plan.sample], 16),
            "category": prompt["category"], "reasoning": plan.mode,
            "system_prompt": SYSTEM_PROMPTS[plan.mode], "input": prompt["input"],
            "output": shaped.output, "generator": plan.model, "license": prompt.get("license"),
            "ground_truth": prompt.get("ground_truth"),
            "verified": verified, "answer": answer, "verdict": verdict.reason,
            "output_tokens": done["completion_tokens"], "finish_reason": done["finish_reason"],
        })
    return rows, rejected


def _reject_reason(mode: str, reasoning_format: str, shaped) -> str | None:
    if shaped.unclosed:  # the budget ran out inside the reasoning: there is no answer
        return "truncated:reasoning_not_closed"
    if mode == "off" and not shaped.format_ok:
        return "format:think_tags_in_off_mode"
    if mode == "on" and reasoning_format == "native" and not shaped.format_ok:
        return "format:missing_or_malformed_think_block"
    if mode == "on" and reasoning_format == "prompted" and not shaped.answer_text.strip():
        # no "Final answer:" line: storing the reasoning as the answer would teach
        # <think>X</think>X
        return "format:no_final_answer"
    if not shaped.answer_text.strip():
        return "empty_output"
    return None


def _run_step(ctx, inputs, name, config):
    return {name: generate_sft(ctx.store, inputs["prompts"], name, config, run_id=ctx.run_id,
                               progress=not ctx.quiet)}


STEP = register_step(StepDescriptor(
    type="generate_sft", command="sft", group="generate", output_kind="sft", dump_mode="python",
    roles=(Role("prompts", ("prompts",), flag=True, help="prompts version (name, name@v1...)"),),
    config=SftConfig, run=_run_step, plan=generation_plan(lambda c: len(c.modes) * c.n),
    derive_cli=False, fan_out=True, help="paired reasoning ON/OFF answers from the teacher(s) -> sft"))
