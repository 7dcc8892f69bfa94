"""Think-tag shaping, answer extraction, and the math and code verifiers."""

from __future__ import annotations

import json
import socket

import pytest
from thinkforge.generators.config import VerifierConfig
from thinkforge.generators.reasoning import shape_output, teacher_messages
from thinkforge.generators.verifiers import VerifierRegistry
from thinkforge.generators.verifiers.code_tests import CodeVerifier
from thinkforge.generators.verifiers.extract import extract_answer
from thinkforge.generators.verifiers.math_answers import verify_math


def test_teacher_messages_put_the_exact_system_prompt_first():
    prompt = [{"role": "user", "content": "What is 2+2?"}]
    on = teacher_messages(prompt, "on", "native")
    off = teacher_messages(prompt, "off", "prompted")
    assert on[0] == {"role": "system", "content": "detailed thinking on"}
    assert off[0] == {"role": "system", "content": "detailed thinking off"}
    assert on[1]["content"] == "What is 2+2?" and off[1]["content"] == "What is 2+2?"
    prompted = teacher_messages(prompt, "on", "prompted")
    assert "Final answer:" in prompted[1]["content"]
    assert prompt[0]["content"] == "What is 2+2?"  # the caller's messages are not modified


def test_prompted_on_output_is_stored_as_think_block_then_answer():
    shaped = shape_output("2+2 is 4 because...\n\nFinal answer: 4", "on", "prompted")
    assert shaped.output == "<think>\n2+2 is 4 because...\n</think>\n\n4"
    assert shaped.answer_text == "4" and shaped.format_ok
    ignored = shape_output("It is 4.", "on", "prompted")
    assert ignored.output.startswith("<think>") and not ignored.format_ok


@pytest.mark.parametrize("text,ok", [
    ("<think>reason</think>\n\nanswer", True),
    ("no tags at all", False),
    ("<think></think>answer", False),
    ("<think>a</think><think>b</think>answer", False),
    ("<think>reason</think>", False),
])
def test_native_on_format(text, ok):
    assert shape_output(text, "on", "native").format_ok is ok


def test_off_mode_drops_an_empty_think_block_and_flags_a_real_one():
    assert shape_output("<think>\n</think>\n42", "off", "native").output == "42"
    assert shape_output("<think>hmm</think>42", "off", "native").format_ok is False


@pytest.mark.parametrize("text,answer", [
    ("so \\boxed{\\frac{1}{2}} it is", "\\frac{1}{2}"),
    ("work\nFinal answer: $1,200 dollars.", "1200"),
    ("blah #### 72", "72"),
    ("trailing ####", None),
    ("#### \n\n", None),
    ("He has 3 then 5 apples", "5"),
    ("no numbers", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_math_verifier_accepts_equivalent_answers_and_rejects_wrong_ones():
    assert verify_math("Final answer: 0.5", "\\frac{1}{2}", {}).correct is True
    assert verify_math("The total is \\boxed{1,000}", "1000", {}).correct is True
    assert verify_math("Final answer: 17", "18", {}).correct is False
    assert verify_math("I do not know", "18", {}).correct is False


def test_unparseable_gold_is_an_error_never_a_reward():
    result = verify_math("Final answer: ???", "???", {})
    assert result.correct is None and result.error_kind == "gold_unparseable"


def test_registry_routes_by_verifier_column_and_reports_versions():
    registry = VerifierRegistry(VerifierConfig())
    assert registry.check("math", "Final answer: 3", "3", {}).correct is True
    assert registry.check("none", "anything", "3", {}).correct is None
    assert registry.check("math", "Final answer: 3", None, {}).correct is None
    assert registry.versions()["math"].startswith("math-verify ")


TEST_PROGRAM = "def check(f):\n    assert f(2) == 4\n\ncheck(double)\n"


@pytest.fixture(scope="module")
def code_verifier():
    return CodeVerifier(timeout_s=3, memory_mb=256)


def test_code_verifier_runs_the_tests(code_verifier):
    good = "Here:\n```python\ndef double(x):\n    return 2 * x\n```"
    assert code_verifier(good, TEST_PROGRAM, {}).correct is True
    assert code_verifier("```python\ndef double(x):\n    return x\n```", TEST_PROGRAM, {}).correct is False


def test_code_verifier_completes_a_bare_body_with_the_prompt_signature(code_verifier):
    prompt = {"metadata": json.dumps({"entry_point": "double", "prompt": "def double(x):\n"})}
    assert code_verifier("    return x * 2\n", TEST_PROGRAM, prompt).correct is True


def test_code_verifier_enforces_time_and_memory_limits(code_verifier):
    spin = code_verifier("def double(x):\n    while True:\n        pass", TEST_PROGRAM, {})
    assert spin.correct is False and "timed out" in spin.detail
    hog = code_verifier("def double(x):\n    block = bytearray(2 << 30)\n    return 2 * x",
                        TEST_PROGRAM, {})
    assert hog.correct is False and "MemoryError" in hog.detail


def test_code_verifier_has_no_network(code_verifier):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        for opener in ("import socket\nsocket.create_connection(('127.0.0.1', %d), timeout=1)",
                       "import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', %d))"):
            code = (opener % port) + "\ndef double(x):\n    return 2 * x\n"
            result = code_verifier(code, TEST_PROGRAM, {})
            assert result.correct is False, result
    finally:
        listener.close()
