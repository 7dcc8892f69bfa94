"""Which part of a reply is its answer (the "declared" answer), before any comparison.

In this order, the first that exists wins:

1. ``final_answer`` (declared): the caller says the text *is* the answer line (a prompted-format reply
   whose ``Final answer:`` marker was cut off when it was stored);
2. ``boxed``: the last ``\\boxed{...}`` (``\\fbox`` too), braces balanced;
3. ``final_answer``: the rest of the last line starting ``Final answer:``;
4. ``hash``: the rest of a ``#### x`` line (GSM8K);

and only when the request did not ask for a marker (``marker_required=False``):

5. ``answer_is``: ``the (final) answer is X`` (X up to the end of the sentence);
6. ``whole``: the whole reply is one line that is itself a math answer (``12.5``,
   ``\\frac{231}{50}``, ``$2:3$``);
7. ``math`` or ``last_number``: the last complete math expression of the reply (inline
   ``$...$`` / ``\\(...\\)`` or display ``$$...$$`` / ``\\[...\\]``), or the last number
   (``3.3e-10`` and ``6 \\times 10^{13}`` are one number), whichever ends later.  A math span
   that is an arithmetic chain (``$2+3=5$``, ``$a = b = 7$``) gives its last side.

A reply with none of these has ``no_answer``.
"""

from __future__ import annotations

import re

from ..reasoning import FINAL_ANSWER_RE, last_boxed

ANSWER_IS_RE = re.compile(
    r"\b(?:the\s+)?(?:final\s+)?answer\s+(?:is|=|:)\s*[:=]?\s*(?P<a>.+?)\s*(?:\.\s|\.?$|\n)",
    re.IGNORECASE)
MATH_SPAN_RE = re.compile(r"\$\$(?P<a>.+?)\$\$|\\\[(?P<b>.+?)\\\]|\\\((?P<c>.+?)\\\)"
                          r"|(?<![\\$])\$(?P<d>(?:\\\$|[^$])+?)\$", re.DOTALL)
# a number; scientific notation (3.3e-10, 6 x 10^13, 6\times10^{13}) counts as one
NUMBER_TOKEN_RE = re.compile(
    r"-?\d[\d,]*(?:\.\d+)?(?:\s*(?:[eE][-+]?\d+|(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*"
    r"(?:\{\s*-?\d+\s*\}|-?\d+)))?")
_EQUALS = re.compile(r"(?<![<>!\\])=")
_SEVERAL = re.compile(r"[,;]|\\text\s*\{\s*(?:or|and)\s*\}|\b(?:or|and)\b")


def declared_answer(text: str, marker_required: bool, declared: bool = False,
                    ) -> tuple[str | None, str]:
    """(the answer as written, where it came from); ``(None, "no_answer")`` when none."""
    if declared and text.strip():
        boxed = last_boxed(text)
        if boxed:
            return boxed, "boxed"
        first = text.strip().splitlines()[0].strip()
        return first, "final_answer"
    boxed = last_boxed(text) or _last_fbox(text)
    if boxed:
        return boxed.strip(), "boxed"
    markers = list(FINAL_ANSWER_RE.finditer(text))
    if markers:
        line = text[markers[-1].end():].strip().splitlines()
        if line and line[0].strip():
            return line[0].strip(), "final_answer"
    if "####" in text:
        after = text.rsplit("####", 1)[1].strip().splitlines()
        if after and after[0].strip():
            return after[0].strip(), "hash"
    if marker_required:
        return None, "no_answer"
    stripped = text.strip()
    phrases = list(ANSWER_IS_RE.finditer(stripped))
    if phrases:
        return phrases[-1].group("a").strip().rstrip("."), "answer_is"
    if stripped and "\n" not in stripped and _looks_like_one_answer(stripped):
        return stripped, "whole"
    return last_expression(stripped)


def last_expression(text: str) -> tuple[str | None, str]:
    """The last math span or the last number, whichever ends later."""
    span_end, span = -1, None
    for match in MATH_SPAN_RE.finditer(text):
        inner = next(g for g in match.groups() if g is not None).strip()
        if inner:
            span_end, span = match.end(), inner
    outside = MATH_SPAN_RE.sub(lambda m: " " * (m.end() - m.start()), text)
    numbers = list(NUMBER_TOKEN_RE.finditer(outside))
    if numbers and numbers[-1].end() > span_end:
        return numbers[-1].group(0), "last_number"
    if span is not None:
        return last_side(span), "math"
    return None, "no_answer"


def last_side(expression: str) -> str:
    """``2+3=5`` -> ``5``; ``a = b = 7`` -> ``7``; ``y = 2x+1`` and ``x^2+y^2=1`` stay whole
    (an equation with letters on the left is an answer in itself)."""
    parts = _EQUALS.split(expression)
    if len(parts) < 2 or _SEVERAL.search(expression):  # x = 2, x = 3: a multi-part answer
        return expression
    if len(parts) > 2 or not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", parts[0])):
        return parts[-1].strip() or expression
    return expression


def _looks_like_one_answer(text: str) -> bool:
    """A short reply with no sentence in it: ``12.5``, ``$\\frac{231}{50}$``, ``(B)``, ``Yes``."""
    if len(text) > 200 or "#" in text:
        return False
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", "", text))
    if re.fullmatch(r"\W*[A-Za-z]+\W*", text):
        return True  # one word: yes, north, (B)
    return bool(re.search(r"[\d\\$]", text)) and not words


def _last_fbox(text: str) -> str | None:
    if "\\fbox" not in text:
        return None
    return last_boxed(text.replace("\\fbox", "\\boxed"))


LEADING_NUMBER_RE = re.compile(r"^\s*\\?\$?\s*(-?\d[\d,]*(?:\.\d+)?)(?![\d/^])")


def extract_answer(answer_text: str, marker_required: bool = False) -> str | None:
    """The final answer of a reply as written: the last \\boxed{}, a "Final answer:" line,
    `####`, and (no marker asked for) "the answer is X", a one-line reply, the last complete
    math expression or number, as one normalised string; None when there is none."""
    answer, _ = declared_answer(answer_text, marker_required)
    if answer is None:
        return None
    # "$1,200 dollars." -> "1200": a leading number wins over the words after it
    number = LEADING_NUMBER_RE.match(answer)
    if number and not answer[number.end():].lstrip().startswith(("/", "\\", "e", "E", "^")):
        rest = answer[number.end():].strip()
        if not rest or re.match(r"^[A-Za-z][A-Za-z .]*$", rest):
            return number.group(1).replace(",", "")
    return answer.rstrip(".")
