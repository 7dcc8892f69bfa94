"""Verifiers keyed by the prompt's ``verifier`` column (math, code; others are not checked).

A verifier returns ``VerifyResult(correct, error_kind, detail)``: ``correct`` is None when
nothing could be decided (no ground truth, an unparseable gold answer, no verifier), and
the error kind is then counted in the manifest, never turned into a reward of 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class VerifyResult:
    correct: bool | None
    error_kind: str | None = None
    detail: str | None = None


Verifier = Callable[[str, str, dict[str, Any]], VerifyResult]


class VerifierRegistry:
    """Builds each verifier lazily (math-verify and subprocess settings) and remembers it."""

    def __init__(self, config):
        self.config = config
        self._cache: dict[str, Verifier | None] = {}

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
              prompt: dict[str, Any]) -> VerifyResult:
        """Verify one answer; rows without a verifier or ground truth get correct=None."""
        verifier = self.get(name)
        if verifier is None:
            return VerifyResult(None)
        if ground_truth is None or not str(ground_truth).strip():
            return VerifyResult(None, "no_ground_truth")
        return verifier(answer_text, ground_truth, prompt)

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
