"""A port of the Qwen2.5-Math evaluation grader's rules (``math_equal`` with its answer
extraction and ``strip_string``), written for bench/verifier_compare.py as the reference.

Written from the published rules, not copied: extraction (last ``\\boxed``, "the answer is",
else the last number), string normalisation (``\\dfrac``/``\\tfrac``, ``\\left``/``\\right``,
degrees, ``\\$``, ``\\%``, units in ``\\text``, spaces, ``a/b`` -> ``\\frac``, a short
``x =`` left side), then ``math_equal``: lowercase string equality, choice letters,
numbers (``isclose`` with rel_tol 1e-4, gold, gold/100 and gold*100), brackets stripped,
element-wise tuples/intervals, equations as ``lhs - rhs``, and ``symbolic_equal``
(latex2sympy or ``parse_expr``, then ``==``, ``simplify(a - b) == 0`` or numeric equality).
"""

from __future__ import annotations

import math
import re


def extract(reply: str) -> str | None:
    if "\\boxed" in reply:
        start = reply.rfind("\\boxed")
        i = reply.find("{", start)
        if i >= 0:
            depth = 0
            for j in range(i, len(reply)):
                depth += {"{": 1, "}": -1}.get(reply[j], 0)
                if depth == 0:
                    return strip_string(reply[i + 1:j])
    match = list(re.finditer(r"(?:final answer|the answer is)[:\s]*(.+)", reply, re.IGNORECASE))
    if match:
        return strip_string(match[-1].group(1).split("\n")[0].strip().rstrip("."))
    numbers = re.findall(r"-?\d*\.?\d+", reply.replace(",", ""))
    return strip_string(numbers[-1]) if numbers else None


def _fix_fracs(s: str) -> str:
    return re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)


def strip_string(s: str) -> str:
    s = str(s).strip().replace("\n", "").rstrip(".")
    s = s.replace("\\!", "").replace("\\\\", "\\").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", s).strip()
    s = re.sub(r"\\(?:text|mbox|mathrm)\{(.*?)\}", r"\1", s)
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    if len(s.split("=")) == 2 and len(s.split("=")[0].strip()) <= 2:
        s = s.split("=")[1]
    s = _fix_fracs(s.replace(" ", ""))
    if re.fullmatch(r"-?\d+/\d+", s):
        a, b = s.split("/")
        s = f"\\frac{{{a}}}{{{b}}}"
    return s


def _number(s: str) -> float | None:
    s = s.replace(",", "")
    try:
        if s.endswith("%"):
            return float(s[:-1]) / 100
        return float(s)
    except ValueError:
        return None


def _parse(s: str):
    from latex2sympy2_extended import latex2sympy
    from sympy.parsing.sympy_parser import parse_expr

    for parser in (latex2sympy, lambda t: parse_expr(t.replace("^", "**"))):
        try:
            return parser(s)
        except Exception:  # noqa: BLE001 - the reference tries each parser in turn
            continue
    return s


def symbolic_equal(a: str, b: str) -> bool:
    from sympy import N, simplify

    x, y = _parse(a), _parse(b)
    try:
        if str(x) == str(y) or x == y:
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        if x.equals(y) or simplify(x - y) == 0:
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        if (abs(x.lhs - x.rhs)).equals(abs(y.lhs - y.rhs)):
            return True
    except Exception:  # noqa: BLE001
        pass
    try:
        return math.isclose(float(N(x)), float(N(y)), rel_tol=1e-4)
    except Exception:  # noqa: BLE001
        return False


def math_equal(prediction: str | None, reference: str) -> bool:
    if prediction is None:
        return False
    if prediction.strip().lower() == reference.strip().lower():
        return True
    if reference in list("ABCDE") and prediction.strip("() ").upper() == reference:
        return True
    p, r = _number(prediction), _number(reference)
    if p is not None and r is not None:
        return any(math.isclose(p, item, rel_tol=1e-4) for item in (r / 100, r, r * 100))
    if not prediction:
        return False
    pred_s, ref_s = prediction, reference
    if (prediction[:1] in "[(" and not reference.startswith(("(", "["))):
        pred_s, ref_s = pred_s.strip("[]()"), ref_s.strip("[]()")
    for ch in "{}()":
        pred_s, ref_s = pred_s.replace(ch, ""), ref_s.replace(ch, "")
    if pred_s.lower() == ref_s.lower():
        return True
    bracket = r"(\(|\[).+(\)|\])"
    if re.match(bracket, prediction) and re.match(bracket, reference):
        pp, rp = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pp) == len(rp) and all(math_equal(a, b) for a, b in zip(pp, rp, strict=True)):
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        pl, pr = prediction.split("=")
        rl, rr = reference.split("=")
        if symbolic_equal(f"{pl}-({pr})", f"{rl}-({rr})") or \
                symbolic_equal(f"-({pl}-({pr}))", f"{rl}-({rr})"):
            return True
    elif prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 \
            and "=" not in reference:
        if math_equal(prediction.split("=")[1], reference):
            return True
    return symbolic_equal(prediction, reference)


def grade(reply: str, gold: str) -> bool:
    return math_equal(extract(reply), strip_string(gold))
