"""Prompts, a planted teacher and a judge that answers from a table, for the judge tests.

Two prompts have verifier ``judge`` (no rule decides them: their rows stay undecided until
the judge speaks), two are math (the rules decide them), one has no gold (nothing to judge).
The judge reads the gold and the reply out of the fixed judge prompt and answers what
``JUDGE_TABLE`` says for that pair (a hedge for Lyon: that row must stay undecided, and a
wrong "yes" for 7 vs 6: an audit with ``--judge all`` must count the disagreement).
"""

from __future__ import annotations

import re

# id, question, gold, verifier, the teacher's answer
PROMPTS = [
    ("j1", "Where is the sun at noon, seen from Europe?", "south", "judge", "South"),
    ("j2", "Name the capital of France.", "Paris", "judge", "Lyon"),
    ("m1", "What is 2 + 3?", "5", "math", "5"),
    ("m2", "What is 10 - 4?", "6", "math", "7"),
    ("c1", "Say hello.", None, "none", "Hello!"),
]
JUDGE_TABLE = {("south", "South"): "Yes", ("Paris", "Lyon"): "Probably not, Lyon is a city.",
               ("5", "5"): "yes", ("6", "7"): "yes."}
JUDGE_USER_RE = re.compile(r"Reference answer:\n(.*?)\n\nReply \(its final part\):\n(.*?)\n\n"
                           r"Is the final", re.DOTALL)


def make_prompts(store, name: str = "judged"):
    rows = [{"id": pid, "source": "toy", "category": "science" if verifier == "judge" else
             "math" if verifier == "math" else "chat",
             "input": [{"role": "user", "content": question}], "ground_truth": gold,
             "verifier": verifier, "license": "MIT"}
            for pid, question, gold, verifier, _ in PROMPTS]
    with store.writer(name, "prompts", step={"type": "import", "config": {"test": "judge"}}) as w:
        w.write(rows)
    return w.manifest


def teacher(body: dict) -> str:
    """Prompted format: reasoning then "Final answer:" (ON), the bare answer (OFF)."""
    user = body["messages"][-1]["content"]
    answer = next(a for _, q, _, _, a in PROMPTS if user.startswith(q))
    if body["messages"][0]["content"].endswith("off"):
        return answer
    return f"Let me think about it.\n\nFinal answer: {answer}"


def judge(body: dict) -> str:
    found = JUDGE_USER_RE.search(body["messages"][-1]["content"])
    return JUDGE_TABLE.get((found.group(1), found.group(2)), "no") if found else "no"
