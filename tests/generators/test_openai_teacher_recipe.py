"""Issue 9 item 12: recipes/openai-teacher.yaml builds against an OpenAI-compatible server.

The recipe as shipped, pointed at the fake server of the retry tests (which answers
"Final answer: 42" to everything) and cut to a few prompts: every step builds; the SFT
train split is empty (no answer is right) and the build says so plainly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.generators.fault_proxy import FakeOpenAIServer

pytest.importorskip("openai")
REPO = Path(__file__).resolve().parents[2]


def test_openai_teacher_recipe_builds_against_a_served_model(cli_run, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "recipes" / "openai-teacher.yaml").read_text()
    text = text.replace("../curation/data", str(REPO / "curation" / "data"))
    text = text.replace("limit: 64", "limit: 3").replace("limit: 43", "limit: 3")
    with FakeOpenAIServer() as server:
        recipe = tmp_path / "teacher.yaml"
        recipe.write_text(text.replace("http://127.0.0.1:8000/v1", server.url))
        result = cli_run("build", str(recipe), "--json")
        assert result.exit_code == 0, result.output
        steps = json.loads(result.stdout)["steps"]
        assert {s["status"] for s in steps} == {"built"}
        assert server.requests[0]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    raw = store.resolve("teacher-sft-raw")
    assert raw.rows == 3 * 4 * 2 and raw.provenance["greedy_copies"] == 3 * 3
    assert store.resolve("teacher-sft-train").rows == 0
    assert "warning: teacher-sft-train@v1 holds no rows" in result.stderr
    assert store.resolve("teacher-rl").kind == "rl_pool"
