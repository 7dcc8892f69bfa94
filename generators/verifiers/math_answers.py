"""Math answers with math-verify: the gold ``ground_truth`` against the model's final answer.

The gold is parsed on its own (plain text first, then as LaTeX); a gold that math-verify
cannot parse is an error record (``gold_unparseable``), never a reward.  The prediction is
the extracted final answer (boxed, "Final answer:", last number), falling back to the
whole answer text.
"""

from __future__ import annotations

from typing import Any

from manifests.errors import require

from ..reasoning import FINAL_ANSWER_RE, extract_answer, last_boxed
from . import VerifyResult


def version() -> str:
    from importlib.metadata import version as pkg_version

    return f"math-verify {pkg_version('math-verify')}"


def verify_math(answer_text: str, ground_truth: str, prompt: dict[str, Any]) -> VerifyResult:
    math_verify = require("math_verify", "gen")
    gold = _parse_gold(math_verify, ground_truth)
    if not gold:
        return VerifyResult(None, "gold_unparseable", f"math-verify cannot parse {ground_truth!r}")
    extracted = extract_answer(answer_text)
    # a boxed answer or a "Final answer:" line is the model's declared answer: read it first;
    # else math-verify's own extraction over the text, then the last number as a fallback
    declared = extracted if extracted and (last_boxed(answer_text) is not None
                                           or FINAL_ANSWER_RE.search(answer_text)) else None
    candidates = [f"${declared}$", declared] if declared else []
    candidates.append(answer_text)
    if extracted and not declared:
        candidates.append(f"${extracted}$")
    for text in candidates:
        predicted = math_verify.parse(text)
        if predicted:
            try:
                return VerifyResult(bool(math_verify.verify(gold, predicted)))
            except Exception as exc:  # sympy can fail on odd expressions: undecided, counted
                return VerifyResult(None, "verify_failed", str(exc)[:200])
    return VerifyResult(False, None, "no answer found in the output")


def _parse_gold(math_verify, ground_truth: str):
    text = ground_truth.strip().replace(",", "") if _is_plain_number(ground_truth) else ground_truth
    for candidate in (f"${text}$", text, f"\\boxed{{{text}}}"):
        parsed = math_verify.parse(candidate)
        # only the raw string back means math-verify understood nothing: not a usable gold
        if parsed and any(not isinstance(p, str) for p in parsed):
            return parsed
    return []


def _is_plain_number(text: str) -> bool:
    return text.strip().replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
