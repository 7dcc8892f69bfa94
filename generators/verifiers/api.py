"""``thinkforge.verify(reply, gold, verifier="math", **options) -> Verdict``: the one scorer.

Generation (``generate sft`` / ``generate rollouts``), ``filter correct``, the GRPO/RLOO
accuracy reward and verl's ``compute_score`` all end here, so a stored ``verified`` /
``correct`` value is reproduced by re-scoring the stored ``output`` (docs/verifier.md).

Options (all keyword, all optional):

* ``messages``: the request as sent (system + user turns); whether it *asks* for a marked
  answer (``\\boxed{}`` or ``Final answer:``) is read from its instructions
  (:func:`thinkforge.generators.reasoning.marker_required`);
* ``marker_required``: say it directly instead (default False when no messages are given);
* ``mode`` (``on`` / ``off``) and ``reasoning_format`` (``native`` / ``prompted``): how the
  reply is shaped; with them, the answer part is read exactly as generation read it, from a
  raw teacher reply or from the stored ``output`` (whose prompted ``Final answer:`` marker
  was cut off when it was stored);
* ``metadata`` (code): the prompt's metadata JSON (``entry_point``, ``prompt`` signature);
  ``code_timeout_s``, ``code_memory_mb``: the sandbox limits.

No torch import: this module needs math-verify (extra ``gen``) for math and nothing for code.
"""

from __future__ import annotations

from typing import Any

from thinkforge.manifests.errors import ConfigError

from ..reasoning import FINAL_ANSWER_RE, shape_output
from ..reasoning import marker_required as asks_for_marker
from .verdict import Verdict

VERIFIERS = ("math", "code")
_CODE: dict[tuple[float, int], Any] = {}


def answer_part(reply: str, mode: str | None, reasoning_format: str | None) -> tuple[str, bool]:
    """(the text the verifier reads, whether it *is* the declared answer line).

    A stored prompted ON output is ``<think>reasoning</think>`` + the text that followed
    ``Final answer:``; anything else is shaped the way generation shaped the raw reply.
    """
    reply = reply or ""
    if reasoning_format is None:
        return (reply.rsplit("</think>", 1)[1] if "</think>" in reply else reply), False
    mode = mode or ("on" if "<think>" in reply else "off")
    if mode == "on" and reasoning_format == "prompted" and "</think>" in reply:
        answer = reply.rsplit("</think>", 1)[1].strip()
        stored_shape = bool(answer) and not FINAL_ANSWER_RE.search(answer) \
            and not answer.startswith("```")
        return answer, stored_shape
    shaped = shape_output(reply, mode, reasoning_format)
    return shaped.answer_text, bool(shaped.declared)


def verify(reply: str, gold: str | None, verifier: str = "math", **options: Any) -> Verdict:
    """The verdict on ``reply`` against ``gold`` (see the module docstring for options)."""
    unknown = set(options) - {"messages", "marker_required", "mode", "reasoning_format",
                              "metadata", "code_timeout_s", "code_memory_mb", "declared"}
    if unknown:
        raise ConfigError(f"thinkforge.verify: unknown option(s) {sorted(unknown)}",
                          hint="options: messages, marker_required, mode, reasoning_format, "
                               "metadata, code_timeout_s, code_memory_mb, declared")
    if verifier not in VERIFIERS:
        return Verdict(None, reason="no_verifier", detail=f"no rule verifier for {verifier!r}")
    if gold is None or not str(gold).strip():
        return Verdict(None, reason="no_ground_truth")
    text, declared = answer_part(reply, options.get("mode"), options.get("reasoning_format"))
    declared = declared or bool(options.get("declared"))
    if verifier == "code":
        return _code(options)(text, str(gold), {"metadata": options.get("metadata")})
    required = options.get("marker_required")
    if required is None:
        required = asks_for_marker(options.get("messages") or [])
    from .math_answers import verify_math

    return verify_math(text, str(gold), None, marker_required=bool(required), declared=declared)


def _code(options: dict[str, Any]):
    from .code_tests import CodeVerifier

    key = (float(options.get("code_timeout_s") or 10.0), int(options.get("code_memory_mb") or 1024))
    if key not in _CODE:
        _CODE[key] = CodeVerifier(*key)
    return _CODE[key]
