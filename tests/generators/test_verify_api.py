"""thinkforge.verify: the four systematic errors of issue 21 (items 1-4) and the API (item 7)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from thinkforge.generators.reasoning import PROMPTED_ON_INSTRUCTION, marker_required

import thinkforge as tf


@pytest.mark.parametrize("reply,gold,label", [
    ("\\boxed{6 \\times 10^{13}}", "6e13", True),
    ("\\boxed{13e6}", "6e13", False),              # was True: 6e13 read as 6*e*13
    ("\\boxed{6\\cdot10^{13}}", "6e13", True),
    ("\\boxed{6*10^13}", "6 \\times 10^{13}", True),
    ("\\boxed{60000000000000}", "6e13", True),
    ("\\boxed{4.46e33}", "4.5e33", True),          # agrees to the gold's 2 significant digits
    ("\\boxed{4.4e33}", "4.5e33", False),
    ("We get 3.3e-10 m.", "3.3e-10", True),
])
def test_scientific_notation_compares_as_numbers(reply, gold, label):
    assert tf.verify(reply, gold).correct is label


@pytest.mark.parametrize("reply,gold,label,reason", [
    ("\\boxed{-1}", "-1./3", False, "number"),
    ("\\boxed{-\\frac{1}{3}}", "-1./3", True, "number"),
    ("\\boxed{\\frac{2}{3}}", "\\frac{1}{3} E_{1}+\\frac{2}{3} E_{2}", None, "gold_unparseable"),
    ("\\boxed{2}", "\\hbar \\omega(v+1 / 2)-\\frac{1}{2}", False, "symbolic"),
    ("\\boxed{5 and 7 apples}", "5", None, "answer_ambiguous"),
])
def test_a_fragment_of_a_gold_or_answer_is_never_accepted(reply, gold, label, reason):
    verdict = tf.verify(reply, gold)
    assert (verdict.correct, verdict.reason) == (label, reason)


def test_text_choice_and_matrix_golds_are_decided():
    assert tf.verify("Final answer: Yes.", "yes").correct is True
    assert tf.verify("Final answer: no", "yes").correct is False
    assert tf.verify("\\boxed{B}", "(B)").correct is True
    assert tf.verify("\\boxed{(C)}", "(B)").correct is False
    assert tf.verify("\\boxed{\\text{north}}", "\\text{north}").correct is True
    matrix = "\\begin{pmatrix}1\\\\2\\end{pmatrix}"
    assert tf.verify(f"\\boxed{{{matrix}}}", matrix).correct is True


def test_quoted_markers_do_not_make_a_marker_required():
    quoted = ("Here is an earlier worked solution: ... so \\boxed{3.3e-10} ... Final answer: 7.\n"
              "Now: what is 5 times 2.5?")
    messages = [{"role": "user", "content": quoted}]
    assert not marker_required(messages)
    verdict = tf.verify("12.5", "12.5", messages=messages)
    assert (verdict.correct, verdict.source) == (True, "whole")
    assert marker_required([{"role": "user", "content": "Put your final answer within \\boxed{}."}])
    assert marker_required([{"role": "user", "content": "Q" + PROMPTED_ON_INSTRUCTION}])


@pytest.mark.parametrize("reply,gold,answer", [
    ("$\\frac{231}{50}$", "4.62", "\\frac{231}{50}"),
    ("The ratio is $2:3$", "2:3", "2:3"),
    ("The answer is $\\sqrt{4 \\pi G \\rho_0 r_0^2}$.", "\\sqrt{4\\pi G\\rho_0 r_0^2}",
     "\\sqrt{4 \\pi G \\rho_0 r_0^2}"),
])
def test_unmarked_latex_answers_are_read_whole(reply, gold, answer):
    verdict = tf.verify(reply, gold)
    assert (verdict.correct, verdict.answer) == (True, answer)


def test_the_stored_prompted_shape_is_read_as_the_declared_answer():
    raw = "2+2 is 4.\nFinal answer: 4"
    stored = "<think>\n2+2 is 4.\n</think>\n\n4"
    on = {"mode": "on", "reasoning_format": "prompted", "marker_required": True}
    assert tf.verify(raw, "4", **on).correct is True
    assert tf.verify(stored, "4", **on).correct is True
    # without the format the stored text has no marker: no answer, as before
    assert tf.verify(stored, "4", marker_required=True).correct is False


def test_code_and_unknown_verifiers_and_options():
    ok = tf.verify("```python\ndef add(a, b):\n    return a + b\n```", "assert add(1, 2) == 3",
                   "code")
    assert (ok.correct, ok.reason, ok.answer.startswith("def add")) == (True, "code_tests", True)
    assert tf.verify("x", "1", "ifeval").reason == "no_verifier"
    assert tf.verify("x", None).reason == "no_ground_truth"
    with pytest.raises(Exception, match="unknown option"):
        tf.verify("1", "1", strict=True)


def test_verify_imports_without_torch():
    code = ("import sys, thinkforge as tf; v = tf.verify('\\\\boxed{2}', '2'); "
            "print(v.correct, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]
