"""Verifiers keyed by the prompt's ``verifier`` column (math, code; others are not checked).

Every verifier returns a :class:`~.verdict.Verdict` ``(correct, answer, reason, source)``:
``correct`` is None when nothing could be decided (no ground truth, a gold that is not one
complete answer, no verifier), with a machine-readable ``reason`` that is counted in the
manifest and never turned into a reward of 1.  ``answer`` is exactly the string that was
verified (what the ``answer`` column stores); ``source`` says where it came from (boxed,
final_answer, hash, math, last_number, code, no_answer...), counted in the manifest.
The public entry point is :func:`.api.verify` (``thinkforge.verify``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from .verdict import Verdict

VerifyResult = Verdict  # the name before issue 21

# (answer text, ground truth, prompt row, marker_required=..., declared=...) -> Verdict
Verifier = Callable[..., Verdict]


class VerifierRegistry:
    """Builds each verifier lazily (math-verify and subprocess settings) and remembers it."""

    def __init__(self, config):
        self.config = config
        self._cache: dict[str, Verifier | None] = {}
        self.answer_sources: Counter = Counter()
        self.reasons: Counter = Counter()  # the rule that decided (or why not): Verdict.reason

    def get(self, name: str) -> Verifier | None:
        if name not in self._cache:
            self._cache[name] = self._build(name)
        return self._cache[name]

    def _build(self, name: str) -> Verifier | None:
        if name == "math":
            from .math_answers import verify_math

            return verify_math
        if name == "code":
            from .code_tests import CodeVerifier

            return CodeVerifier(self.config.code_timeout_s, self.config.code_memory_mb)
        return None  # ifeval, judge, none: not verified by generators (filters may judge later)

    def check(self, name: str, answer_text: str, ground_truth: str | None,
              prompt: dict[str, Any], marker_required: bool = False,
              declared: bool = False) -> Verdict:
        """Verify one answer; rows without a verifier or ground truth get correct=None.

        ``marker_required``: the request asked for a declared answer (``Final answer:`` or
        ``\\boxed``), so a reply without one is wrong, not read for its last expression.
        ``declared``: ``answer_text`` is the content of the reply's ``Final answer:`` line.
        """
        verifier = self.get(name)
        if verifier is None:
            return Verdict(None, reason="no_verifier")
        if ground_truth is None or not str(ground_truth).strip():
            return Verdict(None, reason="no_ground_truth")
        if name == "math":
            result = verifier(answer_text, ground_truth, prompt, marker_required=marker_required,
                              declared=declared)
        else:
            result = verifier(answer_text, ground_truth, prompt)
        if result.source:
            self.answer_sources[result.source] += 1
        if result.reason:
            self.reasons[f"{result.correct}:{result.reason}".lower()] += 1
        return result

    def versions(self) -> dict[str, str]:
        """Name and version of every verifier used so far (goes into the manifest)."""
        out = {}
        for name, verifier in self._cache.items():
            if verifier is not None:
                out[name] = getattr(verifier, "version", None) or _module_version(name)
        return out


def _module_version(name: str) -> str:
    if name == "math":
        from .math_answers import version

        return version()
    return "unknown"
