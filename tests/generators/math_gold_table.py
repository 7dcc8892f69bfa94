"""Hand-labelled gold/answer pairs in the shapes of GSM8K, MATH and elementary word-problem
sets (ASDiv, SVAMP, MAWPS style golds with units), for the math verifier's table test.

Each case: (gold, model reply, label).  The label is what a careful human grader says:
True (the reply's declared answer equals the gold), False (it does not, or the reply
declares no answer where one was asked for), None (the gold is neither one complete math
answer nor a short text answer, so no rule can decide: an error, never False).  Replies end like our prompted teachers'
("Final answer: ..."), like R1-style teachers (``\\boxed{}``) or GSM8K (``#### x``).
"""

from __future__ import annotations

import re

CASES: list[tuple[str, str, bool | None]] = [
    # elementary word problems: golds with a unit in parentheses or words (ASDiv / MAWPS)
    ("9 (apples)", "She has 4 + 5 = 9 apples.\nFinal answer: 9", True),
    ("9 (apples)", "Final answer: 8", False),
    ("$63 (children)$", "There are 63 children.\nFinal answer: 63", True),
    ("$63 (children)$", "Final answer: 36", False),
    ("57 (goldfish)", "So \\boxed{57}", True),
    ("18 dollars", "Final answer: $18", True),
    ("5 apples", "Final answer: 5 apples", True),
    ("2.5 hours", "Final answer: 2.5", True),
    ("36 cm^2", "The area is \\boxed{36}", True),
    ("12 (marbles)", "Final answer: 13 marbles", False),
    # thousands separators and currency (GSM8K)
    ("1,000", "Final answer: 1000", True),
    ("1000", "Final answer: 1,000", True),
    ("1,250,000", "The total is \\boxed{1250000}", True),
    ("$5", "Final answer: 5", True),
    ("\\$18.50", "Final answer: $18.50", True),
    ("18.5", "Final answer: $18.50 dollars.", True),
    ("$1,200", "Final answer: 1200", True),
    ("72", "Natalia sold 48/2 = 24 clips in May.\n#### 72", True),
    ("72", "#### 70", False),
    # floats and integers
    ("25.0", "Final answer: 25", True),
    ("25", "\\boxed{25.0}", True),
    ("0.5", "Final answer: 1/2", True),
    ("-3", "Final answer: -3", True),
    ("-3", "Final answer: 3", False),
    # percentages
    ("25%", "Final answer: 25", True),
    ("25\\%", "Final answer: 25%", True),
    ("40%", "Final answer: 4", False),
    # units in LaTeX (MATH)
    ("10\\text{ cm}", "\\boxed{10}", True),
    ("10\\text{ cm}", "\\boxed{10\\text{ cm}}", True),
    ("90^\\circ", "\\boxed{90}", True),
    # leading variable
    ("x = 5", "Final answer: 5", True),
    ("x=5", "\\boxed{x = 5}", True),
    ("y = 7", "Final answer: 6", False),
    # fractions and radicals
    ("\\frac{1}{2}", "Final answer: 0.5", True),
    ("\\frac{3}{4}", "\\boxed{\\dfrac{3}{4}}", True),
    ("\\frac{3}{4}", "\\boxed{\\frac{4}{3}}", False),
    ("2\\sqrt{3}", "\\boxed{\\sqrt{12}}", True),
    ("\\frac{\\pi}{2}", "\\boxed{\\pi/2}", True),
    # intervals and multiple answers
    ("(1, 3]", "\\boxed{(1,3]}", True),
    ("(1, 3]", "\\boxed{[1,3]}", False),
    ("2, 3", "\\boxed{3, 2}", True),
    ("2, 3", "\\boxed{2}", False),
    ("x=2 \\text{ or } x=3", "\\boxed{2, 3}", True),
    # expressions
    ("2x+1", "\\boxed{1+2x}", True),
    ("x^2-1", "\\boxed{(x-1)(x+1)}", True),
    # text golds are compared as text (issue 21 item 2); words mixed with math: no verdict
    ("yes", "Final answer: yes", True),
    ("Monday", "Final answer: Tuesday", False),
    ("3:00 pm", "Final answer: 3", None),
    # replies that declare no answer when one was asked for (issue 9 item 4)
    ("12", "There are 12 eggs and 3 baskets in the question.", False),
    ("3", "If Tom has 12 eggs and gives away 9, how many are left? 12 - 9", False),
    ("42", "I am not sure.", False),
]

# pairs for the agreement with TRL's accuracy_reward, which reads \boxed{} answers: the gold
# as a TRL user writes the `solution` column (LaTeX in $...$, plain text as it is), ours
# as the dataset carries it
def _trl_gold(gold: str) -> str:
    plain = re.fullmatch(r"\\?\$?-?[\d.,]+%?( \(?[A-Za-z ]+\)?| [a-z]+(\^2)?)?", gold)
    return gold if plain or gold.startswith("$") else f"${gold}$"


TRL_CASES: list[tuple[str, str, str]] = [
    (_trl_gold(gold), gold, reply) for gold, reply, label in CASES
    if "\\boxed" in reply and label is not None
] + [
    (gold, gold, reply) for gold, reply in [
        ("9 (apples)", "\\boxed{9}"), ("18 dollars", "\\boxed{18}"), ("1,000", "\\boxed{1000}"),
        ("25.0", "\\boxed{25}"), ("x = 5", "\\boxed{5}"), ("0.5", "\\boxed{\\frac{1}{2}}"),
        ("42", "\\boxed{41}"), ("2.5 hours", "\\boxed{2.5}"), ("57 (goldfish)", "\\boxed{57}"),
        ("36 cm^2", "\\boxed{36}"), ("1,250,000", "\\boxed{1250001}")]
]
