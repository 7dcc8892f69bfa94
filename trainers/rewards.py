"""GRPO / RLOO reward functions: accuracy through our own verifiers, and the think-tag format.

Accuracy uses the very code that scored the rollouts behind the pool's pass rates
(``thinkforge.verify`` keyed by the row's ``verifier`` column, reading the answer part the
way generation read it), so what training rewards is what filtering counted as correct.  A completion whose correctness
cannot be decided (no ground truth, unparseable gold) gets 0, never 1.

Both rewards read a completion in the rollouts' ``reasoning_format`` (docs/training.md):
the reply the generation prompt asks for (prompted: reasoning, then a ``Final answer:``
line) and the text the step stored (``<think>reasoning</think>`` then the answer: what a
model trained on our data writes) score as the generation step scored them.

Format: ON (system prompt "detailed thinking on") rewards what the step accepted: native,
exactly one well-formed, non-empty ``<think>`` block followed by an answer; prompted,
reasoning and a declared answer (either shape above); OFF rewards the absence of think tags.

TRL passes every dataset column as a keyword argument, so the functions read
``ground_truth``, ``verifier``, ``reasoning`` and ``id`` from there.  ``SampledOrder``
wraps a reward function and remembers the prompt ids in the order the trainer asked for
them: the run record keeps it, and the tests check it against ``curriculum_position``.
"""

from __future__ import annotations

from typing import Any

from thinkforge.generators.reasoning import shape_reply


def completion_text(completion: Any) -> str:
    """TRL gives conversational completions as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    return str(completion)


class AccuracyReward:
    """1.0 when our verifier says the completion's answer is correct, else 0.0."""

    __name__ = "accuracy"

    def __init__(self, reasoning_format: str = "native", code_timeout_s: float = 10.0,
                 code_memory_mb: int = 1024):
        self.reasoning_format = reasoning_format
        self.code_limits = {"code_timeout_s": code_timeout_s, "code_memory_mb": code_memory_mb}

    def __call__(self, prompts, completions, **columns) -> list[float]:
        # thinkforge.verify, as the rollouts and verl's compute_score score: the answer part
        # of the completion read the way generation read it, the marker rule from the prompt
        from thinkforge.generators.verifiers.api import verify

        out = []
        modes = columns.get("reasoning") or ["on"] * len(completions)
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) > i}
            messages = prompts[i] if prompts and isinstance(prompts[i], list) else []
            verdict = verify(completion_text(completion), row.get("ground_truth"),
                             row.get("verifier") or "none", messages=messages,
                             mode=modes[i] or "on", reasoning_format=self.reasoning_format,
                             metadata=row.get("metadata"), **self.code_limits)
            out.append(1.0 if verdict.correct else 0.0)
        return out


class FormatReward:
    """1.0 when the completion has the shape the generation step accepted in its mode."""

    __name__ = "format"

    def __init__(self, reasoning_format: str = "native"):
        self.reasoning_format = reasoning_format

    def __call__(self, prompts, completions, **columns) -> list[float]:
        modes = columns.get("reasoning") or ["on"] * len(completions)
        return [1.0 if shape_reply(completion_text(c), modes[i] or "on",
                                   self.reasoning_format).format_ok else 0.0
                for i, c in enumerate(completions)]


# the native format's reward, for callers that predate FormatReward
format_reward = FormatReward("native")


def reward_functions(reasoning_format: str) -> tuple[AccuracyReward, FormatReward]:
    """The accuracy and format rewards of GRPO and RLOO for rollouts of ``reasoning_format``."""
    return AccuracyReward(reasoning_format), FormatReward(reasoning_format)


class SampledOrder:
    """Wraps a reward function; records prompt ids in the order the trainer scored them.

    GRPO repeats each prompt ``num_generations`` times in a row; consecutive repeats are
    collapsed, so ``ids`` is the order in which prompts were drawn."""

    def __init__(self, inner):
        self.inner = inner
        self.__name__ = getattr(inner, "__name__", "reward")
        self.ids: list[str] = []

    def __call__(self, prompts, completions, **columns):
        for prompt_id in columns.get("id") or []:
            if not self.ids or self.ids[-1] != prompt_id:
                self.ids.append(prompt_id)
        return self.inner(prompts, completions, **columns)


def collapse_repeats(ids: list[str], group: int) -> list[str]:
    """Every ``group``-th id: the prompt order of a list with each prompt repeated."""
    return ids[::group] if group > 1 else list(ids)
