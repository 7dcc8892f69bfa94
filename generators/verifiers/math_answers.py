"""Math answers with math-verify: the gold ``ground_truth`` against the model's final answer.

Real datasets carry golds such as ``9 (apples)``, ``$63 (children)$``, ``1,000``, ``$5``,
``25%``, ``25.0``, ``10\\text{ cm}`` or ``x = 5``.  Handed to math-verify as they are, some
of them parse as a product of symbols (``9*a*p*p*l*e*s``): a valid-looking gold that no
answer ever matches, so correct answers were stored as ``False``.  Both sides therefore go
through :func:`normalize_answer` first, which strips, in this order:

1. a wrapper: ``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\boxed{...}``;
2. a leading single-variable assignment ``x =`` (only when no other ``=`` follows);
3. a trailing parenthesised unit ``(apples)``, a trailing ``\\text{ cm}`` (``\\mbox``,
   ``\\mathrm``) unit, optionally squared/cubed;
4. currency: a leading ``$``, ``\\$``, ``USD``, ``€``, ``£``, ``¥``, ``₹``, ``Rs``;
5. trailing unit words after a number (``18 dollars``, ``2.5 hours``, ``36 cm^2``);
6. thousands separators ``1,000`` / ``1\\,000`` / ``1{,}000`` (only in groups of three,
   so ``2, 3`` stays a set of two answers) and a trailing period.

Percentages (``25%``, ``25\\%``) and ``25.0`` vs ``25`` are left to math-verify, which
treats ``25%`` = ``25`` = ``0.25`` and compares numbers numerically.

The normalised gold is parsed with math-verify as ``$g$``, then ``g``, then
``\\boxed{g}``; the first parse that yields a math object wins.  A gold that is still words
(``yes``, ``Monday``, ``9 red apples and 3 pears``) or parses to something no answer can
equal (complex infinity, NaN) is counted as ``gold_not_math`` and gives ``correct=None``:
an error, never ``False``.  A gold nothing parses is ``gold_unparseable`` (also None).

The prediction is the model's *declared* answer, in this order: the last ``\\boxed{}``,
the last ``Final answer:`` line, a ``#### x`` line; only when the request did not ask
for a marker (``marker_required=False``), the last number of the reply.  A reply without
a declared answer when one was asked for is ``correct=False`` with ``answer_source =
"no_answer"`` (restating the question's numbers earns nothing).  The declared answer is
normalised like the gold, and that normalised string is returned as ``answer``: the
stored ``answer`` column is exactly what was verified.
"""

from __future__ import annotations

import re
from typing import Any

from thinkforge.manifests.errors import require

from ..reasoning import FINAL_ANSWER_RE, NUMBER_RE, last_boxed
from . import VerifyResult


def version() -> str:
    from importlib.metadata import version as pkg_version

    return f"math-verify {pkg_version('math-verify')} + thinkforge normalize v1"


_NUMBER = r"-?(?:\d{1,3}(?:(?:,|\\,|\{,\})\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_WRAPPERS = [(r"^\$\$(.*)\$\$$", 1), (r"^\$(.*)\$$", 1), (r"^\\\((.*)\\\)$", 1),
             (r"^\\\[(.*)\\\]$", 1)]
_LEADING_VARIABLE = re.compile(r"^\s*[A-Za-z]\s*=\s*(?=[^=]+$)")
_PAREN_UNIT = re.compile(r"\s*\(\s*[A-Za-z][A-Za-z .'-]*\)\s*\.?$")
_POWER = r"(?:\s*\^\s*\{?\s*[23]\s*\}?|[²³])?"
_TEXT_UNIT = re.compile(
    r"(?<=[\d}\s])\s*\\(?:text|mbox|mathrm|textrm|textnormal)\s*\{\s*[A-Za-z][A-Za-z .'-]*\}"
    + _POWER + r"\s*\.?$")
_CURRENCY = re.compile(r"^(?:\\\$|\$|US\$|USD|€|£|¥|₹|Rs\.?)\s*(?=[-\d.])")
_UNIT_WORDS = re.compile(
    rf"^(?P<num>(?:{_NUMBER})(?:\s*/\s*\d+)?\s*(?:\\?%)?)\s*(?:[A-Za-z][A-Za-z .'-]*){_POWER}\s*\.?$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:(?:,|\\,|\{,\})\d{3})+(?:\.\d+)?$")
# words math-verify reads as a product of symbols; latex commands and function names are fine
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi",
               "inf", "infty", "infinity", "or", "and", "arcsin", "arccos", "arctan", "sinh",
               "cosh", "tanh", "lim", "max", "min", "mod", "gcd", "lcm", "deg"}
_WORD = re.compile(r"[A-Za-z]{2,}")


def normalize_answer(text: str) -> str:
    """A gold or a declared answer with units, currency and separators removed (see module)."""
    text = text.strip().rstrip(".").strip()
    for _ in range(3):  # wrappers can nest: $\boxed{...}$
        before = text
        for pattern, group in _WRAPPERS:
            match = re.match(pattern, text, re.DOTALL)
            if match and match.group(group).strip():
                text = match.group(group).strip()
        if text.startswith("\\boxed") and (inner := last_boxed(text)) is not None \
                and text.rstrip().endswith("}") and text.count("\\boxed") == 1:
            text = inner
        if text == before:
            break
    text = _LEADING_VARIABLE.sub("", text, count=1)
    text = _PAREN_UNIT.sub("", text)
    text = _TEXT_UNIT.sub("", text).strip()
    text = _CURRENCY.sub("", text)
    match = _UNIT_WORDS.match(text)
    if match:
        text = match.group("num").strip()
    text = text.rstrip(".").strip()
    if _THOUSANDS.match(text):
        text = text.replace("{,}", "").replace("\\,", "").replace(",", "")
    return text


def has_words(text: str) -> bool:
    """True when the text still holds a word (not a LaTeX command or a function name)."""
    stripped = _LATEX_COMMAND.sub(" ", text)
    return any(w.lower() not in _MATH_WORDS for w in _WORD.findall(stripped))


def _timeout(seconds: int) -> int | None:
    """math-verify's timeouts are SIGALRM, which only the main thread may set: elsewhere
    (a Dask worker's task thread, a caller's thread) it would fail every parse and turn
    each verdict into "undecided"; there the checks run without that limit instead, so a
    row gets the same verdict in every thread."""
    import threading

    if threading.current_thread() is threading.main_thread():
        return seconds
    _quiet_timeout_warning()
    return None


def _quiet_timeout_warning() -> None:
    """math-verify warns on every call made without a timeout: once is the docstring above."""
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoTimeoutWarning) for f in log.filters):
            log.addFilter(_NoTimeoutWarning())


class _NoTimeoutWarning:
    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


def parse_math(math_verify, text: str):
    """math-verify's parse of ``$t$``, ``t`` then ``\\boxed{t}``; [] when none is math."""
    for candidate in (f"${text}$", text, f"\\boxed{{{text}}}"):
        try:
            parsed = math_verify.parse(candidate, parsing_timeout=_timeout(5))
        except Exception:  # noqa: BLE001 - a parser crash means "not parsed", never a verdict
            parsed = []
        # only the raw string back means math-verify understood nothing
        if parsed and any(not isinstance(p, str) for p in parsed):
            return parsed
    return []


def parse_gold(math_verify, ground_truth: str) -> tuple[list, str | None]:
    """(parsed gold, error kind): the error kind is set when the gold cannot be used."""
    text = normalize_answer(ground_truth)
    if not text:
        return [], "gold_unparseable"
    if has_words(text):
        return [], "gold_not_math"
    parsed = parse_math(math_verify, text)
    if not parsed:
        return [], "gold_unparseable"
    rendered = str(parsed[0])
    if rendered in {"zoo", "nan", "EmptySet"}:
        return [], "gold_not_math"
    return parsed, None


def declared_answer(answer_text: str, marker_required: bool) -> tuple[str | None, str]:
    """(the model's declared answer, where it came from): boxed | final_answer | hash |
    last_number | no_answer."""
    boxed = last_boxed(answer_text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    markers = list(FINAL_ANSWER_RE.finditer(answer_text))
    if markers:
        line = answer_text[markers[-1].end():].strip().splitlines()
        if line and line[0].strip():
            return line[0].strip(), "final_answer"
    if "####" in answer_text:
        after = answer_text.rsplit("####", 1)[1].strip().splitlines()
        if after and after[0].strip():
            return after[0].strip(), "hash"
    if marker_required:
        return None, "no_answer"
    numbers = NUMBER_RE.findall(answer_text)
    if numbers:
        return numbers[-1], "last_number"
    return None, "no_answer"


def prediction(answer_text: str, marker_required: bool) -> tuple[str | None, str]:
    """The normalised declared answer (what is verified and stored) and its source."""
    declared, source = declared_answer(answer_text, marker_required)
    if declared is None:
        return None, source
    text = normalize_answer(declared)
    if has_words(text):
        # "He has 5 apples." on a Final answer line: its only number is the answer
        numbers = NUMBER_RE.findall(text)
        if len(numbers) == 1:
            text = normalize_answer(numbers[0])
    return text, source


def verify_math(answer_text: str, ground_truth: str, prompt: dict[str, Any],
                marker_required: bool = False) -> VerifyResult:
    math_verify = require("math_verify", "gen")
    predicted_text, source = prediction(answer_text, marker_required)
    gold, gold_error = parse_gold(math_verify, ground_truth)
    if gold_error:
        return VerifyResult(None, gold_error, f"gold {ground_truth!r} is not a usable math answer",
                            answer=predicted_text, answer_source=source)
    if predicted_text is None:
        return VerifyResult(False, None, "no declared answer in the output",
                            answer=None, answer_source=source)
    predicted = parse_math(math_verify, predicted_text)
    if not predicted:
        return VerifyResult(False, None, f"answer {predicted_text!r} does not parse",
                            answer=predicted_text, answer_source=source)
    try:
        return VerifyResult(bool(math_verify.verify(gold, predicted,
                                                     timeout_seconds=_timeout(5))),
                            answer=predicted_text, answer_source=source)
    except Exception as exc:  # noqa: BLE001 - sympy can fail on odd expressions: undecided
        return VerifyResult(None, "verify_failed", str(exc)[:200],
                            answer=predicted_text, answer_source=source)
