"""Splitting an answer into its reasoning and its final text for the pair view."""

from __future__ import annotations

import re

THINK = re.compile(r"\s*<think>(.*?)</think>\s*(.*)", re.S)


def split_reasoning(output: str) -> tuple[str | None, str]:
    """(reasoning, answer): the ``<think>`` block of a reasoning-ON answer and what follows;
    an answer without one is all answer."""
    found = THINK.fullmatch(output)
    if found is None:
        return None, output
    return found.group(1).strip(), found.group(2).strip()
