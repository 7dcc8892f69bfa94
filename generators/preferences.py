"""Preference pairs: K samples per prompt from a policy, best vs worst -> a ``preferences`` version.

Sampling is the rollouts machinery (resumable checkpoints, one backend per model, the
prompt the pass rates use: ``detailed thinking on|off`` + the prompt).  Each sample gets a
score from the **scorer**:

- ``verifier`` (default): ``reward_correct * correct + reward_format * format_ok``, exactly
  the rollouts' reward (the prompt's verifier, math-verify / code tests);
- ``reward-model:PATH``: the score of a reward model trained with
  ``thinkforge train reward`` on the conversation (prompt turns + the answer).

The pair of a prompt and mode is (highest score, lowest score).  Groups that cannot make a
pair are rejected with a reason, never silently dropped: ``all_equal_scores`` (best ties
worst: every sample scored the same), ``identical_texts`` (best and worst answers are the
same text), ``too_few_scored`` (fewer than two samples with a decided score).  The
manifest's provenance records the scorer and the reasoning mode, which DPO and the reward
trainer use for the system turn.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Literal

from pydantic import Field, field_validator
from thinkforge.manifests.manifest import Manifest
from thinkforge.manifests.steps import Role, StepDescriptor, register_step

from .config import RolloutConfig
from .engine import Plan, RunResult
from .reasoning import shape_output
from .steps import generation_plan, run_generation_step, verify_answer
from .verifiers import VerifierRegistry

__all__ = ["PreferenceConfig", "generate_preferences"]


class PreferenceConfig(RolloutConfig):
    """K samples per prompt from the policy (``teacher.model``), scored, best vs worst."""

    k: int = Field(4, ge=2, description="samples per prompt and mode (at least 2 for a pair)")
    modes: list[Literal["on", "off"]] = Field(default_factory=lambda: ["on"],
                                              description="modes to sample (one pair per mode)")
    scorer: str = Field("verifier", description="verifier, or reward-model:PATH (a model saved "
                        "by `thinkforge train reward`)")
    reward_format: float = Field(0.1, description="verifier scorer: added when the format is right")

    @field_validator("scorer")
    @classmethod
    def _scorer(cls, value: str) -> str:
        if value != "verifier" and not (value.startswith("reward-model:") and len(value) > 13):
            raise ValueError("scorer must be `verifier` or `reward-model:PATH`")
        return value


def generate_preferences(store, prompts: Manifest, name: str, config: PreferenceConfig, *,
                         run_id: str | None = None, progress: bool = True) -> Manifest:
    manifest = run_generation_step(
        store, prompts, name, kind="preferences", step_type="generate_preferences", config=config,
        modes=list(config.modes), samples=config.k,
        build_rows=lambda *a: _build_rows(config, *a), run_id=run_id, progress=progress)
    return manifest


def _build_rows(config: PreferenceConfig, plans: list[Plan], result: RunResult,
                verifiers: VerifierRegistry, verifier_errors: Counter):
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    order: list[tuple[str, str]] = []
    for plan in plans:
        done = result.completions.get(plan.key)
        if done is None:
            continue
        shaped = shape_output(done["text"], plan.mode, config.reasoning_format,
                              config.teacher_for(plan.model).think_prefilled)
        key = (plan.prompt["id"], plan.mode)
        if key not in groups:
            order.append(key)
        groups[key].append({"plan": plan, "output": shaped.output, "shaped": shaped})
    if config.scorer == "verifier":
        for samples in groups.values():
            for s in samples:
                correct, _ = verify_answer(verifiers, s["plan"], s["shaped"], verifier_errors)
                s["score"] = None if correct is None else (
                    config.reward_correct * correct + config.reward_format * s["shaped"].format_ok)
    else:
        _score_with_reward_model(config.scorer.split(":", 1)[1], groups, config)
    rows, rejected = [], []
    for key in order:
        samples = groups[key]
        plan = samples[0]["plan"]
        scored = [s for s in samples if s["score"] is not None]
        reason = None
        if len(scored) < 2:
            reason = "too_few_scored"
        else:
            # stable: the earliest sample wins a tie for best (and for worst)
            best = max(scored, key=lambda s: s["score"])
            worst = min(scored, key=lambda s: s["score"])
            if best["score"] == worst["score"]:
                reason = "all_equal_scores"
            elif best["output"] == worst["output"]:
                reason = "identical_texts"
        if reason:
            rejected.append({"reason": reason, "prompt_id": plan.prompt["id"], "mode": plan.mode,
                             "scores": str([s["score"] for s in samples]),
                             "output": samples[0]["output"]})
            continue
        rows.append({"prompt_id": plan.prompt["id"], "input": plan.prompt["input"],
                     "chosen": best["output"], "rejected": worst["output"],
                     "chosen_score": float(best["score"]), "rejected_score": float(worst["score"])})
    return rows, rejected


def _score_with_reward_model(path: str, groups: dict, config=None) -> None:
    from .backends.model_cache import resolve_model

    teacher = getattr(config, "teacher", None)  # the policy's placement scores its samples
    where = {k: getattr(teacher, k) for k in ("device", "dtype", "attn_implementation")
             if hasattr(teacher, k)}
    model, tokenizer = load_reward_model(str(resolve_model(path)), **where)
    samples = [s for group in groups.values() for s in group]
    conversations = [[*s["plan"].messages, {"role": "assistant", "content": s["output"]}]
                     for s in samples]
    for s, score in zip(samples, score_conversations(model, tokenizer, conversations), strict=True):
        s["score"] = score


def load_reward_model(path: str, device: str = "auto", dtype: str = "auto",
                      attn_implementation: str = "sdpa"):
    """(model, tokenizer) of a reward model saved by `thinkforge train reward`, loaded with an
    explicit dtype (a model trained in bf16 on a GPU is scored in float32 on a CPU)."""
    from thinkforge.manifests.errors import require

    from .backends.placement import resolve

    transformers = require("transformers", "gen")
    where = resolve(device, dtype, attn_implementation)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, **where.model_kwargs()).to(where.device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def score_conversations(model, tokenizer, conversations: list[list[dict]], batch_size: int = 8
                        ) -> list[float]:
    """One reward-model score per conversation (prompt turns + the assistant answer)."""
    import torch

    scores: list[float] = []
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          truncation=True, max_length=2048).to(model.device)
        with torch.no_grad():
            logits = model(**batch).logits
        scores.extend(float(v) for v in logits[:, 0])
    return scores



def _run_step(ctx, inputs, name, config):
    return {name: generate_preferences(ctx.store, inputs["prompts"], name, config,
                                       run_id=ctx.run_id, progress=not ctx.quiet)}


STEP = register_step(StepDescriptor(
    type="generate_preferences", command="preferences", group="generate",
    output_kind="preferences", dump_mode="python", config=PreferenceConfig, run=_run_step,
    roles=(Role("prompts", ("prompts",), flag=True, help="prompts version (name, name@v1...)"),),
    plan=generation_plan(lambda c: len(c.modes) * c.k), derive_cli=False, fan_out=True,
    help="K samples per prompt from a policy, best vs worst by verifier or reward model "
         "-> preferences"))
