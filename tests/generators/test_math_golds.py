"""The math verifier on real-world golds (issue 16 item 1) and declared answers (issue 9 item 4).

The table in ``math_gold_table.py`` is labelled by hand; the test prints the agreement and
requires all of it.  A second test holds our verdicts against TRL's ``accuracy_reward``.
"""

from __future__ import annotations

import pytest
from thinkforge.generators.verifiers.math_answers import normalize_answer, prediction, verify_math

from .math_gold_table import CASES, TRL_CASES


def test_the_table_has_enough_hand_labelled_pairs():
    assert len(CASES) >= 40
    assert {label for *_, label in CASES} == {True, False, None}


def test_verifier_agrees_with_every_hand_label(capsys):
    misses = []
    for gold, reply, label in CASES:
        got = verify_math(reply, gold, {}, marker_required=True).correct
        if got is not label:
            misses.append((gold, reply, label, got))
    with capsys.disabled():
        print(f"\nmath verifier vs hand labels: {len(CASES) - len(misses)}/{len(CASES)} agree")
    assert not misses, misses


@pytest.mark.parametrize("gold,normalized", [
    ("9 (apples)", "9"), ("$63 (children)$", "63"), ("1,000", "1000"), ("$5", "5"),
    ("\\$18.50", "18.50"), ("10\\text{ cm}", "10"), ("x = 5", "5"), ("18 dollars", "18"),
    ("36 cm^2", "36"), ("2, 3", "2, 3"), ("(1, 3]", "(1, 3]"), ("x=2 \\text{ or } x=3",
                                                                  "x=2 \\text{ or } x=3"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"), ("25\\%", "25\\%"),
])
def test_normalize_answer(gold, normalized):
    assert normalize_answer(gold) == normalized


def test_a_unit_gold_is_never_a_silent_false():
    """The bug: `9 (apples)` parsed as 9*a*p*p*l*e*s, a valid gold no answer matched."""
    assert verify_math("Final answer: 9", "9 (apples)", {}).correct is True
    result = verify_math("Final answer: 9", "nine apples and a pear", {})
    assert result.correct is None and result.error_kind == "gold_not_math"


def test_stored_answer_is_exactly_what_was_verified():
    result = verify_math("work\nFinal answer: $1,200 dollars.", "1200", {}, marker_required=True)
    assert (result.correct, result.answer, result.answer_source) == (True, "1200", "final_answer")
    boxed = verify_math("\\boxed{7} Final answer: 8", "7", {}, marker_required=True)
    assert (boxed.correct, boxed.answer) == (True, "7")


def test_no_last_number_fallback_when_a_marker_was_asked_for():
    restated = "Tom has 12 eggs and gives away 9. How many are left? 3"
    asked = verify_math(restated, "3", {}, marker_required=True)
    assert (asked.correct, asked.answer, asked.answer_source) == (False, None, "no_answer")
    # a request that asked for no marker may still be read for its last number
    free = verify_math(restated, "3", {}, marker_required=False)
    assert (free.correct, free.answer, free.answer_source) == (True, "3", "last_number")
    assert prediction("no numbers here", False) == (None, "no_answer")


def test_agrees_with_trl_accuracy_reward_where_both_decide(capsys):
    trl_rewards = pytest.importorskip("trl.rewards")
    both = disagree = 0
    for trl_gold, gold, reply in TRL_CASES:
        theirs = trl_rewards.accuracy_reward([[{"role": "assistant", "content": reply}]],
                                             [trl_gold])[0]
        ours = verify_math(reply, gold, {}, marker_required=True).correct
        if theirs is None or ours is None:
            continue
        both += 1
        disagree += float(ours) != theirs
    with capsys.disabled():
        print(f"\nagreement with trl.rewards.accuracy_reward: {both - disagree}/{both} "
              f"pairs where both decide (of {len(TRL_CASES)})")
    assert both >= 25 and disagree == 0
