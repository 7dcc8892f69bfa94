"""Import presets for the public sets in ``../shared/data`` (and their copies in the repo).

A preset says which source columns feed which prompt fields; columns it does not use land
in ``metadata`` as JSON, so the worked solution, subject, level or task id stay available.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .readers import RowError

HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function (signature "
    "included) in one ```python code block.\n\n```python\n{prompt}```")


@dataclass(frozen=True)
class Preset:
    source: str
    category: str
    verifier: str
    license: str
    fields: dict[str, Callable[[dict[str, Any]], Any]]
    uses: tuple[str, ...] = field(default=())  # source columns consumed (not copied to metadata)
    expects: tuple[str, ...] = field(default=())  # columns a file must have for this preset


def _gsm8k_answer(row: dict[str, Any]) -> str:
    answer = row.get("answer")
    if not isinstance(answer, str) or "####" not in answer:
        raise RowError("missing value: GSM8K `answer` has no '#### ' final answer")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def _column(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


PRESETS: dict[str, Preset] = {
    "gsm8k": Preset(
        source="gsm8k", category="math", verifier="math", license="MIT",
        fields={"input": _column("question"), "ground_truth": _gsm8k_answer,
                "metadata": lambda row: json.dumps({"solution": row.get("answer")}, ensure_ascii=False)},
        uses=("question", "answer"), expects=("question", "answer")),
    "math500": Preset(
        source="math500", category="math", verifier="math", license="MIT",
        fields={"input": _column("problem"), "ground_truth": _column("answer")},
        uses=("problem", "answer"), expects=("problem", "answer")),
    "humaneval": Preset(
        source="humaneval", category="code", verifier="code", license="MIT",
        fields={"input": lambda row: HUMANEVAL_INSTRUCTION.format(prompt=row.get("prompt") or ""),
                # a self-contained test program: run after the candidate's code
                "ground_truth": lambda row: f"{row.get('test')}\n\ncheck({row.get('entry_point')})\n"},
        uses=("test",), expects=("prompt", "test", "entry_point")),
}
