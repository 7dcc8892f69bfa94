"""Complete parses of a (normalised) gold or answer: a number, a choice letter, a text answer
or a sympy object, or nothing: never a fragment.

* **number**: integers, decimals, ``a/b``, ``\\frac{a}{b}``, percentages, and scientific
  notation ``6e13``, ``4.5E-3``, ``6 \\times 10^{13}``, ``6\\cdot10^{13}``, ``6*10^13``,
  ``10^{-3}`` (a unit after it is dropped: ``4.5e33 J``), numerals in a base (``52_8``).
  Exact (``Fraction``); numbers in scientific notation remember their significant digits.
* **choice**: ``(B)``, ``B``, ``\\text{(B)}`` (letters A-J); an answer may go on after the
  letter: ``(B) 42``, ``B. 42``.
* **text**: up to three words only (``yes``, ``north``, ``\\text{Monday}``), lowercased,
  punctuation out.
* **sympy**: anything else is handed *whole* to math-verify's LaTeX normaliser and then to
  ``latex2sympy`` (expressions with symbols, intervals, tuples, sets, matrices, equations);
  a string the parser cannot read to its end is unparseable (math-verify's own ``parse``
  would return the first piece it can read, e.g. ``-1`` for ``-1./3``).

Words mixed with math (``9 red apples and 3 pears``) parse to nothing: the caller decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

_NUM = r"[-+\u2212]?(?:\d+(?:\.\d*)?|\.\d+)"
_EXP = r"[-+\u2212]?\d+"
_UNIT_CHARS = "A-Za-z\u00b5\u03bc\u00c5\u2126"  # letters, micro, angstrom, ohm
_UNIT_TAIL = (r"(?:\s*\\(?:,|;|!|quad|\ )?)*(?:\s*(?:\\(?:text|mathrm|mbox|rm)\s*\{[^{}]*\}"
              rf"|[{_UNIT_CHARS}][{_UNIT_CHARS}0-9/^{{}}\-.\s\u00b7*]*))?")
_SCI = [
    re.compile(rf"^(?P<m>{_NUM})\s*[eE]\s*(?P<e>{_EXP}){_UNIT_TAIL}$"),
    re.compile(rf"^(?P<m>{_NUM})\s*(?:\\times|\\cdot|\u00d7|\u00b7|\*|x)\s*10\s*(?:\^|\*\*)\s*"
               rf"(?:\{{\s*(?P<e>{_EXP})\s*\}}|(?P<e2>{_EXP})){_UNIT_TAIL}$"),
    re.compile(rf"^10\s*(?:\^|\*\*)\s*(?:\{{\s*(?P<e>{_EXP})\s*\}}|(?P<e2>{_EXP})){_UNIT_TAIL}$"),
]
_BASE = re.compile(r"^(?P<d>[0-9A-Za-z]+)_\{?\s*(?P<b>[2-9]|[12]\d|3[0-6])\s*\}?$")
_PLAIN = re.compile(rf"^(?P<n>{_NUM})\s*(?P<pct>\\?%)?$")
_SLASH = re.compile(rf"^(?P<n>{_NUM})\s*/\s*(?P<d>{_NUM})\s*(?P<pct>\\?%)?$")
_FRAC = re.compile(r"^(?P<sign>-?)\s*\\[dt]?frac\s*\{\s*(?P<n>-?\d+(?:\.\d+)?)\s*\}\s*"
                   r"\{\s*(?P<d>-?\d+(?:\.\d+)?)\s*\}\s*(?P<pct>\\?%)?$")
_CHOICE = re.compile(r"^(?:\\text(?:bf)?\s*\{\s*)?\(?\s*(?P<c>[A-J])\s*\)?(?:\s*\})?$")
_CHOICE_LEAD = re.compile(r"^(?:\\text(?:bf)?\s*\{\s*)?\(\s*(?P<c>[A-J])\s*\)|^(?P<c2>[A-J])[.)]\s")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|textrm|operatorname)\s*\{([^{}]*)\}")
MAX_TEXT_WORDS = 3  # longer word golds ("nine apples and a pear") are left to a judge
_WORDS_ONLY = re.compile(r"^[A-Za-z][A-Za-z'\- ]*$")


@dataclass(frozen=True)
class Value:
    kind: str                    # number | choice | text | sympy
    value: Any                   # Fraction | "B" | "north" | sympy object
    text: str                    # the string parsed
    percent: bool = False        # a number written with %
    sigfigs: int | None = None   # significant digits of a number in scientific notation
    decimals: int | None = None  # digits after the point of a plain decimal (0 for integers)


def _fraction(text: str) -> Fraction:
    return Fraction(text.replace("\u2212", "-").replace("+", ""))


def _significant(mantissa: str) -> int:
    digits = mantissa.lstrip("+-\u2212").replace(".", "").lstrip("0")
    return max(len(digits), 1)


def parse_number(text: str) -> Value | None:
    text = text.strip()
    match = _BASE.match(text)
    if match:  # 52_8: a numeral in base 8 (latex2sympy drops the subscript)
        try:
            return Value("number", Fraction(int(match.group("d"), int(match.group("b")))), text)
        except ValueError:
            return None
    for pattern in _SCI:
        match = pattern.match(text)
        if match:
            groups = match.groupdict()
            mantissa = groups.get("m") or "1"
            exponent = int((groups.get("e") or groups.get("e2")).replace("\u2212", "-"))
            value = _fraction(mantissa) * Fraction(10) ** exponent
            sig = _significant(mantissa) if groups.get("m") else None
            return Value("number", value, text, sigfigs=sig)
    match = _PLAIN.match(text)
    if match:
        number = match.group("n")
        decimals = len(number.split(".", 1)[1]) if "." in number else 0
        return Value("number", _fraction(number), text, percent=bool(match.group("pct")),
                     decimals=decimals)
    match = _SLASH.match(text) or _FRAC.match(text)
    if match:
        numerator, denominator = _fraction(match.group("n")), _fraction(match.group("d"))
        if denominator == 0:
            return None
        value = numerator / denominator
        if match.groupdict().get("sign"):
            value = -value
        return Value("number", value, text, percent=bool(match.group("pct")))
    return None


def parse_choice(text: str, leading: bool = False) -> Value | None:
    """A multiple-choice letter; ``leading``: also ``(B) 42`` / ``B. 42`` (answers)."""
    match = _CHOICE.match(text.strip())
    if match is None and leading:
        match = _CHOICE_LEAD.match(text.strip())
    if match is None:
        return None
    letter = match.groupdict().get("c") or match.groupdict().get("c2")
    return Value("choice", letter, text)


def unwrap_text(text: str) -> str:
    """``\\text{north}`` -> ``north`` (repeatedly, for nested wrappers)."""
    for _ in range(3):
        new = _TEXT_WRAP.sub(r"\1", text)
        if new == text:
            break
        text = new
    return text


def text_key(text: str) -> str:
    """Text answers compared: lowercase, single spaces, quotes and end punctuation out."""
    text = unwrap_text(text).replace("~", " ").replace("\\ ", " ")
    text = re.sub(r"[\"'`.,;:!?]+$", "", text.strip().lower()).strip("\"'` ")
    return " ".join(text.split())


def parse_text(text: str) -> Value | None:
    plain = unwrap_text(text).replace("~", " ").strip().rstrip(".!").strip()
    if plain and _WORDS_ONLY.match(plain) and len(plain.split()) <= MAX_TEXT_WORDS:
        return Value("text", text_key(plain), text)
    return None


_NORMALIZATION = None


def parse_sympy(text: str, timeout_s: int | None):
    """The whole of ``text`` as one sympy object, or None (math-verify's normaliser, then
    latex2sympy without math-verify's "last equation" fallback)."""
    global _NORMALIZATION
    from latex2sympy2_extended import latex2sympy
    from math_verify.parser import NormalizationConfig, normalize_latex
    from math_verify.utils import timeout

    if _NORMALIZATION is None:
        _NORMALIZATION = NormalizationConfig(basic_latex=True, units=True, malformed_operators=True,
                                             nits=True, boxed="all", equations=False)
    latex = normalize_latex(text, config=_NORMALIZATION).strip()
    if not latex:
        return None

    @timeout(timeout_seconds=timeout_s)
    def _parse():
        from math_verify.parser import should_treat_as_complex

        return latex2sympy(latex, is_real=not should_treat_as_complex(latex),
                           convert_degrees=False, normalization_config=None)

    try:
        return _parse()
    except Exception:  # noqa: BLE001 - any parser failure means "not parsed whole"
        return None
