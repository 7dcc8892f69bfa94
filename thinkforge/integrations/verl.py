"""thinkforge's verifiers as verl's custom reward function.

verl picks a scorer by ``data_source`` (``verl.utils.reward_score.default_compute_score``)
and raises ``NotImplementedError`` for a source it does not know; its string scorers also
give 0 for golds such as ``57 (goldfish)`` or ``25.0``.  This module scores with the same
verifiers the rollouts were scored with, dispatching on ``extra_info["verifier"]`` (the
``verl`` export writes it) through :func:`thinkforge.verify`: ``math`` (golds and answers
parsed whole, the declared answer only when the prompt asked for one), ``code`` (the
sandboxed test runner); anything else scores 0.0.

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

UNDECIDED: Counter = Counter()  # reason -> rows scored 0.0 because nothing was decided


def compute_score(data_source: str | None, solution_str: str, ground_truth: str | None,
                  extra_info: dict[str, Any] | None = None, **kwargs: Any) -> float:
    """verl's reward entry point: 1.0 when ``solution_str`` answers ``ground_truth``.

    Scores with :func:`thinkforge.verify`, reading from ``extra_info`` what the export wrote:
    ``verifier``, ``answer_marker_required``, ``reasoning`` (on/off) and ``reasoning_format``
    (native/prompted), so a stored ``output`` re-scored here gets its stored label.
    """
    from thinkforge.generators.verifiers.api import verify

    info = extra_info or {}
    verifier = info.get("verifier") or "math"
    verdict = verify(solution_str or "", ground_truth, verifier,
                     marker_required=bool(info.get("answer_marker_required")),
                     mode=info.get("reasoning"), reasoning_format=info.get("reasoning_format"),
                     metadata=info.get("prompt_metadata"))
    if verdict.correct is None:
        UNDECIDED[verdict.reason or "undecided"] += 1
        return 0.0
    return 1.0 if verdict.correct else 0.0
