"""The one result type of every verifier: ``Verdict(correct, answer, reason)``.

``correct`` is True, False or None (undecided: nothing a rule can settle; an LLM judge may
settle it later, never a reward of 1).  ``answer`` is exactly the string that was compared
(what the ``answer`` column stores).  ``reason`` is machine-readable and says which rule
decided, or why nothing was decided (the lists below are the whole vocabulary, so a judge
or a report can switch on it).  ``source`` says where the answer was read in the reply.
"""

from __future__ import annotations

from dataclasses import dataclass

# reasons of decided verdicts (correct is True or False): the rule that compared
DECIDED_REASONS = (
    "number",          # exact numeric equality (integers, decimals, fractions, percent)
    "number_sigfigs",  # the gold is in scientific notation: agree to its significant digits
    "number_rounded",  # a decimal gold with >= 3 significant digits equals the answer rounded
    "symbolic",        # math-verify over complete sympy parses (expressions, sets, intervals..)
    "text",            # normalised text answers (yes/no, words such as north)
    "choice",          # multiple-choice letters: (B), B, \text{(B)}
    "kind_mismatch",   # e.g. a text gold and a numeric answer: never equal
    "no_answer",       # the reply declares no answer where one was asked for (or has none)
    "code_tests",      # the code verifier ran the tests
)
# reasons of undecided verdicts (correct is None): what a judge is asked about
UNDECIDED_REASONS = (
    "no_ground_truth", "no_verifier", "gold_not_math", "gold_unparseable",
    "answer_unparseable", "answer_ambiguous", "text_partial", "choice_vs_value",
    "rounded_coarse", "rounded_answer", "needs_assumptions", "unit_mismatch",
    "verify_failed",
)


@dataclass(frozen=True)
class Verdict:
    correct: bool | None
    answer: str | None = None
    reason: str | None = None
    source: str | None = None   # boxed | final_answer | hash | answer_is | whole | math |
    #                             last_number | no_answer | code
    detail: str | None = None   # a human-readable line (never parsed)

    @property
    def decided(self) -> bool:
        return self.correct is not None

    # the names the generators used before Verdict (kept so callers read one vocabulary)
    @property
    def error_kind(self) -> str | None:
        return self.reason if self.correct is None else None

    @property
    def answer_source(self) -> str | None:
        return self.source
