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

Then both sides are parsed **whole** (:mod:`.math_parse`): a number (scientific notation
``6e13`` / ``6 \\times 10^{13}`` included: never ``6*e*13``), a choice letter, a short text
answer (``yes``, ``north``) or one sympy object from math-verify's LaTeX normaliser and
``latex2sympy`` over the whole string.  A string that parses only in part is never reduced
to the fragment math-verify's ``parse`` would return (``-1./3`` -> ``-1``): such a gold or
answer is undecided (``gold_unparseable`` / ``answer_unparseable``), as is a gold of words
mixed with math (``gold_not_math``).  :func:`compare` then applies the rule of the gold's
kind (numbers: exact, or to the significant digits of a gold in scientific notation; see
docs/verifier.md), and the :class:`~.verdict.Verdict` names the rule in ``reason``.

The prediction is the model's *declared* answer (:mod:`.extract`): the last ``\\boxed{}``,
the last ``Final answer:`` line, a ``#### x`` line; only when the request's instructions
asked for no marker (``marker_required=False``), "the answer is X", a one-line reply, or
the last complete math expression or number.  A reply without a declared answer when one
was asked for is ``correct=False`` with ``reason="no_answer"``.  The declared answer is
normalised like the gold, and that string is returned as ``answer``: the stored ``answer``
column is exactly what was verified.
"""

from __future__ import annotations

import re
from fractions import Fraction
from math import floor, log10
from typing import Any

from thinkforge.manifests.errors import require

from ..reasoning import last_boxed
from .extract import NUMBER_TOKEN_RE, declared_answer
from .math_parse import Value, parse_choice, parse_number, parse_sympy, parse_text
from .verdict import Verdict


def version() -> str:
    from importlib.metadata import version as pkg_version

    return f"math-verify {pkg_version('math-verify')} + thinkforge verifier v2"


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
# a unit word has two letters or more, or is a one-letter SI unit after a space ("5 m"):
# "3R^2" and "3 R^2" are products with a symbol, not 3 in units of R^2
_UNIT_WORDS = re.compile(
    rf"^(?P<num>(?:{_NUMBER})(?:\s*/\s*\d+)?\s*(?:\\?%)?)(?:\s*[A-Za-z]{{2,}}[A-Za-z .'-]*|\s+[mgsLlJNKAVWCFTh])"
    rf"{_POWER}\s*\.?$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:(?:,\\!|,|\\,|\{,\})\d{3})+(?:\.\d+)?$")
# words math-verify reads as a product of symbols; latex commands and function names are fine
_LATEX_COMMAND = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]+\}|\\[A-Za-z]+")
_CHOICE_ONLY = re.compile(r"^\(\s*[A-J]\s*\)$")
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
    if not _CHOICE_ONLY.match(text):  # "(B)" is a choice, not a unit
        text = _PAREN_UNIT.sub("", text) or text
    text = _TEXT_UNIT.sub("", text).strip()
    text = _CURRENCY.sub("", text)
    match = _UNIT_WORDS.match(text)
    if match:
        text = match.group("num").strip()
    text = text.rstrip(".").strip()
    if _THOUSANDS.match(text):
        text = text.replace("{,}", "").replace("\\,", "").replace("\\!", "").replace(",", "")
    return text


def unit_of(text: str) -> str | None:
    """The unit :func:`normalize_answer` drops (``\\mbox{ inches}^2`` -> ``inches^2``), or None."""
    text = text.strip().rstrip(".").strip()
    for pattern in (_TEXT_UNIT, _PAREN_UNIT):
        match = pattern.search(text)
        if match and text[:match.start()].strip():
            unit = re.sub(r"\\[A-Za-z]+|[{}()\s.]", "", match.group(0))
            return unit.replace("²", "^2").replace("³", "^3") or None
    match = _UNIT_WORDS.match(_CURRENCY.sub("", text))
    if match:
        return re.sub(r"[{}\s.]", "", text[match.end("num"):]) or None
    return None


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


def parse_value(text: str, *, answer: bool, timeout_s: int | None) -> Value | str:
    """A complete parse of a normalised gold or answer, or the reason there is none:
    ``not_math`` (words mixed with math) or ``unparseable``."""
    if not text:
        return "unparseable"
    number = parse_number(text)
    if number is not None:
        return number
    choice = parse_choice(text, leading=answer)
    if choice is not None:
        return choice
    if has_words(text):
        return parse_text(text) or "not_math"
    parsed = parse_sympy(text, timeout_s)
    if parsed is None:
        return "unparseable"
    if str(parsed) in {"zoo", "nan", "EmptySet"}:
        return "not_math"
    return Value("sympy", parsed, text)


def _rounds_to(value: Fraction, gold: Fraction, digits: int) -> bool:
    """``value`` rounded to ``digits`` significant digits equals ``gold`` (half away from 0)."""
    if gold == 0:
        return value == 0
    if value == 0 or (value < 0) != (gold < 0):
        return False
    exponent = floor(log10(abs(gold)))
    unit = Fraction(10) ** (exponent - digits + 1)  # the gold's last significant digit
    diff = abs(value - gold) * 2
    return diff < unit or (diff == unit and abs(value) < abs(gold))


def _numeric(value: Value, timeout_s: int | None) -> Fraction | None:
    """The exact-enough value of a number-valued answer (``\\sqrt{2}``, ``\\pi/2``, ``2^{10}``)."""
    if value.kind == "number":
        return value.value
    if value.kind != "sympy":
        return None
    expr = value.value
    if not getattr(expr, "is_number", False) or getattr(expr, "free_symbols", True):
        return None
    try:
        number = complex(expr.evalf(30))
    except (TypeError, ValueError, AttributeError):
        return None
    if number.imag:
        return None
    return Fraction(repr(number.real)) if abs(number.real) != float("inf") else None


def compare_numbers(gold: Value, answer: Value, answer_value: Fraction) -> tuple[bool | None, str]:
    """Rules for a numeric gold (see docs/verifier.md): exact equality (a ``%`` on either
    side also allows x/100); a gold in scientific notation: agree to its significant digits;
    a decimal gold: the answer rounded to the gold's decimals, when the answer is more precise
    (decided for golds with >= 3 significant digits, undecided below)."""
    golds = [gold.value] + ([gold.value / 100] if gold.percent else [])
    answers = [answer_value] + ([answer_value / 100] if answer.percent else [])
    if any(g == a for g in golds for a in answers):
        return True, "number"
    if gold.sigfigs is not None:
        return _rounds_to(answer_value, gold.value, gold.sigfigs), "number_sigfigs"
    if answer.sigfigs is not None and _rounds_to(gold.value, answer_value, answer.sigfigs):
        return None, "rounded_answer"
    if gold.decimals and (answer.kind != "number" or answer.decimals is None
                          or answer.decimals > gold.decimals):
        scale = Fraction(10) ** gold.decimals
        rounded = Fraction(round(abs(answer_value) * scale)) / scale
        if (rounded if answer_value >= 0 else -rounded) == gold.value:
            digits = len(gold.text.lstrip("-+").replace(".", "").lstrip("0").rstrip("%\\"))
            return (True, "number_rounded") if digits >= 3 else (None, "rounded_coarse")
    return False, "number"


def compare(gold: Value, answer: Value, timeout_s: int | None) -> tuple[bool | None, str]:
    """(correct, reason) for two complete parses."""
    if gold.kind == "choice":
        if answer.kind == "choice":
            return gold.value == answer.value, "choice"
        if answer.kind == "text" and len(answer.value) > 1:
            return False, "kind_mismatch"
        return None, "choice_vs_value"
    if gold.kind == "text":
        if answer.kind in ("text", "choice"):
            key = answer.value.lower() if answer.kind == "choice" else answer.value
            if key == gold.value:
                return True, "text"
            if re.search(rf"\b{re.escape(gold.value)}\b", key) or \
                    re.search(rf"\b{re.escape(key)}\b", gold.value):
                return None, "text_partial"
            return False, "text"
        return False, "kind_mismatch"
    if answer.kind == "text":
        return False, "kind_mismatch"
    if answer.kind == "choice":
        return None, "choice_vs_value"
    if gold.kind == "number":
        answer_value = _numeric(answer, timeout_s)
        if answer_value is not None:
            return compare_numbers(gold, answer, answer_value)
    return _symbolic(gold, answer, timeout_s)


def _sympy_of(value: Value):
    import sympy

    if value.kind == "number":
        return sympy.Rational(value.value.numerator, value.value.denominator)
    return value.value


def _symbolic(gold: Value, answer: Value, timeout_s: int | None) -> tuple[bool | None, str]:
    math_verify = require("math_verify", "gen")
    golds = [_sympy_of(gold)]
    answers = [_sympy_of(answer)]
    if gold.percent:
        golds.append(golds[0] / 100)
    if answer.percent:
        answers.append(answers[0] / 100)
    try:
        if math_verify.verify(golds, answers, timeout_seconds=timeout_s, raise_on_error=True):
            return True, "symbolic"
        positive = [_positive(e) for e in golds], [_positive(e) for e in answers]
        if positive != (golds, answers) and math_verify.verify(
                *positive, timeout_seconds=timeout_s, raise_on_error=True):
            # equal only for positive symbols (sqrt(r^2) = r): a judge knows the domain
            return None, "needs_assumptions"
        return False, "symbolic"
    except Exception:  # noqa: BLE001 - sympy can fail or time out on odd expressions
        return None, "verify_failed"


def _positive(expr):
    """``expr`` with every free symbol assumed positive (physical magnitudes)."""
    import sympy

    symbols = getattr(expr, "free_symbols", set())
    if not symbols or not isinstance(expr, sympy.Expr):
        return expr
    return expr.xreplace({s: sympy.Symbol(s.name, positive=True) for s in symbols
                          if isinstance(s, sympy.Symbol)})


def prediction(answer_text: str, marker_required: bool, declared: bool = False,
               ) -> tuple[str | None, str]:
    """The normalised declared answer (what is verified and stored) and its source."""
    text, source = declared_answer(answer_text, marker_required, declared)
    if text is None:
        return None, source
    text = normalize_answer(text)
    if has_words(text) and parse_text(text) is None and parse_choice(text, leading=True) is None:
        # "He has 5 apples." on a Final answer line: its only number is the answer
        numbers = NUMBER_TOKEN_RE.findall(text)
        if len(numbers) == 1:
            text = normalize_answer(numbers[0])
    return text, source


def verify_math(answer_text: str, ground_truth: str, prompt: dict[str, Any] | None = None,
                marker_required: bool = False, declared: bool = False) -> Verdict:
    """The verdict on a reply (or its answer part) against a gold; see the module docs."""
    require("math_verify", "gen")
    timeout_s = _timeout(5)
    predicted, source = prediction(answer_text, marker_required, declared)
    gold_text = normalize_answer(str(ground_truth))
    gold = parse_value(gold_text, answer=False, timeout_s=timeout_s)
    if isinstance(gold, str):
        return Verdict(None, predicted, f"gold_{gold}", source,
                       f"gold {ground_truth!r} is not one complete math or text answer")
    if predicted is None:
        return Verdict(False, None, "no_answer", source, "no declared answer in the output")
    answer = parse_value(predicted, answer=True, timeout_s=timeout_s)
    if isinstance(answer, str):
        if answer == "not_math" and gold.kind in ("number", "sympy") \
                and not NUMBER_TOKEN_RE.search(predicted):
            return Verdict(False, predicted, "kind_mismatch", source, "words, no number")
        reason = "answer_ambiguous" if answer == "not_math" else "answer_unparseable"
        return Verdict(None, predicted, reason, source,
                       f"answer {predicted!r} is not one complete answer")
    correct, reason = compare(gold, answer, timeout_s)
    if correct:
        gold_unit, answer_unit = unit_of(str(ground_truth)), unit_of(declared_text(answer_text,
                                                                                  marker_required,
                                                                                  declared))
        if gold_unit and answer_unit and gold_unit.lower() != answer_unit.lower():
            # the same number in other units (inches^3 vs inches^2): a judge decides
            return Verdict(None, predicted, "unit_mismatch", source,
                           f"units differ: {gold_unit!r} vs {answer_unit!r}")
    return Verdict(correct, predicted, reason, source)


def declared_text(answer_text: str, marker_required: bool, declared: bool) -> str:
    """The declared answer as written (before normalisation), '' when none."""
    return declared_answer(answer_text, marker_required, declared)[0] or ""
