"""What SFT generation and rollouts share: reuse check, run, verification, publish.

A step is reused (no teacher call at all) when a version of the same name was built by
the same full config from the same prompts version and had no generation errors; with
errors, the rerun resumes the run, retries only the failed requests, and publishes a new
version.  A run where more than ``max_error_rate`` of the requests failed (a dead teacher),
or that has no row left to publish, publishes nothing and raises ``GenerationFailedError``
with the first errors; its checkpoint stays, so the rerun resumes.  Failed requests,
malformed outputs and empty outputs go to ``rejected/`` with a reason, so nothing vanishes
silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from thinkforge.manifests.errors import GenerationFailedError
from thinkforge.manifests.manifest import Manifest, Step

from .engine import Plan, RunResult, load_prompts, plan_requests, provenance, run_control, run_plans
from .reasoning import ShapedOutput, marker_required, prompt_template
from .runs import RunCheckpoint, default_run_id
from .verifiers import VerifierRegistry
from .verifiers.code_tests import extract_code
from .verifiers.math_answers import prediction

# build_rows(plans, result, verifiers, verifier_errors) -> (rows, rejected rows)
RowBuilder = Callable[[list[Plan], RunResult, VerifierRegistry, Counter],
                      tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def run_generation_step(store, prompts: Manifest, name: str, *, kind: str, step_type: str,
                        config, modes: list[str], samples: int, build_rows: RowBuilder,
                        run_id: str | None, progress: bool) -> Manifest:
    if config.judge.on and kind not in ("sft", "rollouts"):
        from thinkforge.manifests.errors import ConfigError

        raise ConfigError(f"{name}: the LLM judge labels sft and rollouts rows; {step_type} "
                          "does not take --judge",
                          hint="drop --judge (judge the rollouts behind the pairs instead)")
    step = {"type": step_type, "config": config.model_dump()}
    reusable = store.find_reusable(name, Step.model_validate(step), [prompts.as_parent()])
    if reusable is not None and not reusable.provenance.get("errors_by_kind"):
        return reusable
    prompt_rows = load_prompts(store, prompts, config.limit)
    plans = plan_requests(prompt_rows, config, modes, samples)
    # the judge reads the answers after the run: with or without it, the same run (and
    # checkpoint) serves, so turning --judge on asks the teacher nothing again
    run_id = run_id or default_run_id(name, _without_judge(step), prompts.fingerprint)
    checkpoint = RunCheckpoint(store.runs_dir, run_id, {
        "name": name, "kind": kind, "step": step, "prompts": prompts.ref,
        "prompts_fingerprint": prompts.fingerprint, "requests": len(plans)})
    result = run_plans(plans, config, checkpoint, label=name, show_progress=progress)
    check_error_rate(name, plans, result, config.max_error_rate, checkpoint)
    verifiers = VerifierRegistry(config.verifier)
    verifier_errors: Counter = Counter()
    rows, rejected = build_rows(plans, result, verifiers, verifier_errors)
    rejected += failed_rows(plans, result)
    judged = judge_rows(store, config, kind, plans, rows) if config.judge.on else None
    if not rows:
        reasons = Counter(r["reason"] for r in rejected)
        raise GenerationFailedError(
            f"{name}: nothing to publish: " + (
                f"all {len(plans)} answers were rejected ({_counts(reasons)})" if plans
                else f"{prompts.ref} selects no prompts"),
            hint="an empty version is never published as a success; look at the answers in "
                 f"{checkpoint.dir} (or fix the prompts) and run the same command again")
    facts = provenance(result, config, run_id, verifiers.versions(), verifier_errors)
    # plain facts other steps read back (the pass-rate filter: models, K, verifier versions)
    facts["answers_by_source"] = dict(verifiers.answer_sources)
    # "true:number", "false:no_answer", "none:gold_not_math": which rule labelled the rows
    facts["verdicts_by_rule"] = dict(sorted(verifiers.reasons.items()))
    if judged is not None:
        facts["judge"] = judged
    if kind == "rollouts":
        # what exports of every version derived from these rollouts need (the writer carries
        # provenance.export down the lineage, so a pulled copy has it too)
        models = sorted({p.model for p in plans})
        facts["export"] = {"policy_model": ", ".join(models) or None,
                           "prompt_template": prompt_template(list(modes),
                                                              config.reasoning_format,
                                                              config.instructions)}
    facts.update(models=sorted({p.model for p in plans}), modes=list(modes),
                 samples_per_prompt=samples, seed=config.seed,
                 verifier_versions=facts["verifiers"])
    with store.writer(name, kind, step=step, parents=[prompts], provenance=facts) as writer:
        writer.write(rows)
        if rejected:
            writer.reject(rejected)
    checkpoint.mark_published(writer.manifest.ref)
    return writer.manifest


def _without_judge(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "config": {k: v for k, v in step["config"].items() if k != "judge"}}


def judge_rows(store, config, kind: str, plans: list[Plan], rows: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """Ask the LLM judge (``config.judge``) about the rows it is for; a row the rules left
    undecided takes the judge's yes/no (rollouts: and its reward).  Returns the manifest's
    ``provenance.judge``, with the keys of the rows the judge decided."""
    from .judge import Judge, JudgeItem, answer_part, problem_text, wants_judge

    label = "verified" if kind == "sft" else "correct"
    prompts = {p.prompt["id"]: p.prompt for p in plans}
    asked, items = [], []
    for row in rows:
        prompt = prompts[row["prompt_id"]]
        reply = answer_part(row["output"])
        if reply and wants_judge(config.judge.mode, row[label], prompt.get("ground_truth"),
                                 prompt.get("verifier")):
            asked.append(row)
            items.append(JudgeItem(problem_text(prompt["input"]), reply,
                                   prompt["ground_truth"], row[label]))
    judge = Judge(config.judge, store)
    decided = []
    for row, verdict in zip(asked, judge.ask(items), strict=True):
        if row[label] is None and verdict is not None:
            row[label] = verdict
            # the rules left it undecided (their reason kept): the judge decided
            row["verdict"] = f"judge:{row.get('verdict') or 'undecided'}"
            if kind == "rollouts":
                row["reward"] = (config.reward_correct * verdict
                                 + config.reward_format * row["format_ok"])
            decided.append(row["id"] if kind == "sft" else
                           [row["prompt_id"], row["reasoning"], row["sample"], row["generator"]])
    return {**judge.facts(), "decided_rows": decided}


def check_error_rate(name: str, plans: list[Plan], result: RunResult, max_error_rate: float,
                     checkpoint: RunCheckpoint) -> None:
    """A run whose failed share is above ``max_error_rate`` fails: nothing is published.

    The checkpoint keeps every finished answer, so the same command resumes and sends only
    the failed requests again (a dead teacher costs nothing twice).
    """
    failed = [row for key, row in result.failures.items() if key not in result.completions]
    if not plans or len(failed) / len(plans) <= max_error_rate:
        return
    kinds = Counter(row["error_kind"] for row in failed)
    first: dict[str, str] = {}
    for row in failed:
        first.setdefault(row["error_kind"], _one_line(row["error"]))
    summary = "\n".join(f"  {kind} x{count}: {first[kind]}" for kind, count in kinds.most_common(3))
    raise GenerationFailedError(
        f"{name}: {len(failed)} of {len(plans)} requests failed "
        f"({len(failed) / len(plans):.0%} > max error rate {max_error_rate:.0%}); nothing was "
        f"published. First errors:\n{summary}",
        hint=f"fix the teacher (is the server up? --base-url, --model) and run the same command "
             f"again: it resumes from {checkpoint.dir} ({len(result.completions)} answers kept); "
             "--max-error-rate 1 publishes what succeeded")


def _one_line(text: str | None, width: int = 160) -> str:
    text = " ".join((text or "no message").split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counter.most_common())


def failed_rows(plans: list[Plan], result: RunResult) -> list[dict[str, Any]]:
    """Requests that failed after the backend's last retry, as rejected rows."""
    out = []
    for plan in plans:
        row = result.failures.get(plan.key)
        if row is not None and plan.key not in result.completions:
            out.append(rejected_row(plan, f"generation_error:{row['error_kind']}",
                                    row["error"], row["text"]))
    return out


def rejected_row(plan: Plan, reason: str, detail: str | None, output: str | None) -> dict[str, Any]:
    return {"reason": reason, "key": plan.key, "prompt_id": plan.prompt["id"], "mode": plan.mode,
            "sample": plan.sample, "model": plan.model, "detail": detail, "output": output}


def verify_answer(verifiers: VerifierRegistry, plan: Plan, shaped: ShapedOutput,
                  verifier_errors: Counter) -> tuple[bool | None, str | None]:
    """(correct, the stored answer): the answer is exactly what the verifier checked.

    The verdict is :func:`thinkforge.verify`'s on the same answer part: a prompted reply's
    answer is what followed its ``Final answer:`` line (``declared``).  Code answers store
    the extracted program; rows nothing verifies store the declared answer read the same
    way the math verifier reads it.
    """
    verdict = verify_verdict(verifiers, plan, shaped, verifier_errors)
    return verdict.correct, verdict.answer


def verify_verdict(verifiers: VerifierRegistry, plan: Plan, shaped: ShapedOutput,
                   verifier_errors: Counter):
    """The full :class:`~thinkforge.generators.verifiers.verdict.Verdict` of one answer."""
    from dataclasses import replace

    prompt = plan.prompt
    asked = marker_required(plan.messages)
    outcome = verifiers.check(prompt["verifier"], shaped.answer_text, prompt.get("ground_truth"),
                              prompt, marker_required=asked, declared=bool(shaped.declared))
    if outcome.error_kind and outcome.error_kind not in ("no_ground_truth", "no_verifier"):
        verifier_errors[outcome.error_kind] += 1
    if prompt["verifier"] == "code":
        return replace(outcome, answer=extract_code(shaped.answer_text))
    if outcome.source is not None:
        return outcome
    return replace(outcome, answer=prediction(shaped.answer_text, asked, bool(shaped.declared))[0])


def generation_plan(requests_per_prompt: Callable[[Any], int]):
    """The `plan` hook of a generation step: how many requests a run would send."""
    def plan(store, inputs, name, config) -> dict[str, Any]:
        prompts = inputs["prompts"]
        rows = min(prompts.rows, config.limit or prompts.rows)
        return {"prompts": prompts.ref, "requests": rows * requests_per_prompt(config),
                "config": config.model_dump(), "run_control": run_control(config)}
    return plan
