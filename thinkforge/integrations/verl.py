"""thinkforge's verifiers as verl's custom reward function.

verl picks a scorer by ``data_source`` (``verl.utils.reward_score.default_compute_score``)
and raises ``NotImplementedError`` for a source it does not know; its string scorers also
give 0 for golds such as ``57 (goldfish)`` or ``25.0``.  This module scores with the same
verifiers the rollouts were scored with, dispatching on ``extra_info["verifier"]`` (the
``verl`` export writes it): ``math`` -> ``thinkforge.generators.verifiers.math_answers`` (golds
normalised, the declared answer only when the prompt asked for one), ``code`` -> the
sandboxed test runner; anything else scores 0.0.

Pass to verl 0.9 (``thinkforge export ... --format verl`` prints these)::

    reward.custom_reward_function.path=pkg://thinkforge.integrations.verl \\
    reward.custom_reward_function.name=compute_score data.shuffle=False

(verl < 0.6 used the top-level ``custom_reward_function.path=<file>`` and ``.name``; the
file is ``thinkforge/integrations/verl.py``.)  The score is 1.0 for a correct answer, 0.0
otherwise; an undecidable row (no ground truth, a gold that is not math) also gets 0.0,
since verl needs a number, and is counted in :data:`UNDECIDED`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

UNDECIDED: Counter = Counter()  # error kind -> rows scored 0.0 because nothing was decided
_CODE_VERIFIER = None


def _answer_part(solution_str: str) -> tuple[str, bool]:
    """(the text after the reasoning, whether a "Final answer:" line was cut off)."""
    from thinkforge.generators.reasoning import FINAL_ANSWER_RE

    text = solution_str
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text, bool(FINAL_ANSWER_RE.search(text))


def compute_score(data_source: str | None, solution_str: str, ground_truth: str | None,
                  extra_info: dict[str, Any] | None = None, **kwargs: Any) -> float:
    """verl's reward entry point: 1.0 when ``solution_str`` answers ``ground_truth``."""
    global _CODE_VERIFIER
    info = extra_info or {}
    verifier = info.get("verifier") or "math"
    if not ground_truth or not str(ground_truth).strip():
        UNDECIDED["no_ground_truth"] += 1
        return 0.0
    answer_text, _ = _answer_part(solution_str or "")
    if verifier == "math":
        from thinkforge.generators.verifiers.math_answers import verify_math

        result = verify_math(answer_text, str(ground_truth), {},
                             marker_required=bool(info.get("answer_marker_required")))
    elif verifier == "code":
        from thinkforge.generators.verifiers.code_tests import CodeVerifier

        if _CODE_VERIFIER is None:
            _CODE_VERIFIER = CodeVerifier()
        metadata = info.get("prompt_metadata")
        result = _CODE_VERIFIER(answer_text, str(ground_truth),
                                {"metadata": metadata} if metadata else {})
    else:
        UNDECIDED[f"no_verifier:{verifier}"] += 1
        return 0.0
    if result.correct is None:
        UNDECIDED[result.error_kind or "undecided"] += 1
        return 0.0
    return 1.0 if result.correct else 0.0

