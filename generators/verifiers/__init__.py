"""Verifiers keyed by the prompt's ``verifier`` column (math, code; others are not checked).

A verifier returns ``VerifyResult(correct, error_kind, detail, answer, answer_source)``:
``correct`` is None when nothing could be decided (no ground truth, a gold answer that is
not math, no verifier), and the error kind is then counted in the manifest, never turned
into a reward of 1.  ``answer`` is exactly the string that was verified (what the ``answer``
column stores); ``answer_source`` says where it came from (boxed, final_answer, hash,
last_number, code, or no_answer when the reply declared none), counted in the manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class VerifyResult:
    correct: bool | None
    error_kind: str | None = None
    detail: str | None = None
    answer: str | None = None
    answer_source: str | None = None


# (answer text, ground truth, prompt row, marker_required=...) -> VerifyResult
Verifier = Callable[..., VerifyResult]


class VerifierRegistry:
    """Builds each verifier lazily (math-verify and subprocess settings) and remembers it."""

    def __init__(self, config):
        self.config = config
        self._cache: dict[str, Verifier | None] = {}
        self.answer_sources: Counter = Counter()

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
              prompt: dict[str, Any], marker_required: bool = False) -> VerifyResult:
        """Verify one answer; rows without a verifier or ground truth get correct=None.

        ``marker_required``: the request asked for a declared answer (``Final answer:`` or
        ``\\boxed``), so a reply without one is wrong, not read for its last number.
        """
        verifier = self.get(name)
        if verifier is None:
            return VerifyResult(None)
        if ground_truth is None or not str(ground_truth).strip():
            return VerifyResult(None, "no_ground_truth")
        if name == "math":
            result = verifier(answer_text, ground_truth, prompt, marker_required=marker_required)
        else:
            result = verifier(answer_text, ground_truth, prompt)
        if result.answer_source:
            self.answer_sources[result.answer_source] += 1
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
