"""RL rollouts: K sampled completions per prompt and mode -> a ``rollouts`` version.

Each sample gets ``correct`` (the prompt's verifier; None when it cannot be decided),
``format_ok`` (ON: one non-empty think block then an answer; OFF: no think tags; with
the prompted format, whether the teacher followed the requested reasoning + "Final
answer:" structure) and ``reward = reward_correct * correct + reward_format * format_ok``
(None when correctness is undecided, so an unparseable gold never earns a reward).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from thinkforge.manifests.manifest import Manifest
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

from .config import RolloutConfig
from .engine import Plan, RunResult
from .reasoning import shape_output
from .steps import generation_plan, run_generation_step, verify_verdict
from .verifiers import VerifierRegistry

__all__ = ["RolloutConfig", "generate_rollouts"]


def generate_rollouts(store, prompts: Manifest, name: str, config: RolloutConfig, *,
                      run_id: str | None = None, progress: bool = True) -> Manifest:
    """Sample ``config.k`` completions per prompt and mode, score them, publish ``name``."""
    return run_generation_step(store, prompts, name, kind="rollouts",
                               step_type="generate_rollouts", config=config,
                               modes=list(config.modes), samples=config.k,
                               build_rows=lambda *a: _build_rows(config, *a), run_id=run_id,
                               progress=progress)


def _build_rows(config: RolloutConfig, plans: list[Plan], result: RunResult,
                verifiers: VerifierRegistry, verifier_errors: Counter):
    rows: list[dict[str, Any]] = []
    for plan in plans:
        done = result.completions.get(plan.key)
        if done is None:
            continue
        shaped = shape_output(done["text"], plan.mode, config.reasoning_format,
                              config.teacher_for(plan.model).think_prefilled)
        verdict = verify_verdict(verifiers, plan, shaped, verifier_errors)
        correct, answer = verdict.correct, verdict.answer
        reward = None if correct is None else (
            config.reward_correct * correct + config.reward_format * shaped.format_ok)
        rows.append({
            "prompt_id": plan.prompt["id"], "sample": plan.sample, "generator": plan.model,
            "reasoning": plan.mode, "output": shaped.output,
            "answer": answer,
            "correct": correct, "format_ok": shaped.format_ok, "reward": reward,
            "verdict": verdict.reason,
            "output_tokens": done["completion_tokens"], "finish_reason": done["finish_reason"],
        })
    return rows, []


def _run_step(ctx, inputs, name, config):
    return {name: generate_rollouts(ctx.store, inputs["prompts"], name, config,
                                    run_id=ctx.run_id, progress=not ctx.quiet)}


STEP = register_step(StepDescriptor(
    type="generate_rollouts", command="rollouts", group="generate", output_kind="rollouts",
    dump_mode="python", config=RolloutConfig, run=_run_step,
    roles=(Role("prompts", ("prompts",), flag=True, help="prompts version (name, name@v1...)"),),
    plan=generation_plan(lambda c: len(c.modes) * c.k), derive_cli=False, fan_out=True,
    help="K sampled answers per prompt, scored -> rollouts"))
