"""Write ``easy_arith.jsonl``: one- and two-step arithmetic word problems for the demo.

Written for this project (no public set is copied): a handful of sentence templates,
filled with small numbers, names and objects drawn from a seeded generator, so the file is
reproducible (``python curation/data/make_easy_arith.py`` rewrites it byte for byte).
Each row has GSM8K's shape (``question``; ``answer`` = worked steps, then ``#### N``), so
the ``gsm8k`` import preset reads it.  They are easy on purpose: the embedded 135M teacher
solves a fraction of them, so the demo's verified splits and pass rates are not empty.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Tom", "Mia", "Ben", "Lily", "Sam", "Emma", "Leo", "Ava", "Max", "Zoe", "Jack",
         "Nora", "Omar", "Ella", "Ravi", "Ivy", "Noah", "Lucy", "Finn", "Rosa"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "balloons",
         "shells", "cards", "oranges", "crayons", "stamps", "eggs", "toy cars", "flowers"]


def _short(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    """The shortest one-step problems: the 135M teacher's best chance."""
    kind = r.choice(["add", "sub", "mul"])
    if kind == "add":
        a, b = r.randint(2, 9), r.randint(2, 9)
        return (f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have?",
                f"{a} + {b} = {a + b}", a + b)
    if kind == "sub":
        a = r.randint(6, 15)
        b = r.randint(2, a - 2)
        return (f"{name} has {a} {item} and loses {b}. How many {item} are left?",
                f"{a} - {b} = {a - b}", a - b)
    a, b = r.randint(2, 5), r.randint(2, 5)
    return (f"Each box has {a} {item}. How many {item} are in {b} boxes?", f"{a} * {b} = {a * b}",
            a * b)


def _one_step(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    kind = r.choice(["add", "add", "sub", "sub", "mul", "div"])
    if kind == "add":
        a, b = r.randint(2, 10), r.randint(2, 10)
        return (f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does "
                f"{name} have now?", f"{a} + {b} = {a + b}", a + b)
    if kind == "sub":
        a = r.randint(5, 15)
        b = r.randint(1, a - 2)
        return (f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} "
                f"does {name} have left?", f"{a} - {b} = {a - b}", a - b)
    if kind == "mul":
        a, b = r.randint(2, 5), r.randint(2, 5)
        return (f"There are {a} bags with {b} {item} in each bag. How many {item} are there "
                "in all?", f"{a} * {b} = {a * b}", a * b)
    if kind == "div":
        a, b = r.randint(2, 4), r.randint(2, 5)
        return (f"{name} shares {a * b} {item} equally among {a} friends. How many {item} "
                "does each friend get?", f"{a * b} / {a} = {b}", b)
    raise AssertionError(kind)


def _two_step(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    kind = r.choice(["add_sub", "mul_add", "mul_sub", "add_add"])
    if kind == "add_sub":
        a, b = r.randint(3, 10), r.randint(1, 5)
        c = r.randint(1, a)
        return (f"{name} has {a} {item}, buys {b} more, then gives {c} away. How many {item} "
                f"does {name} have now?", f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}",
                a + b - c)
    if kind == "mul_add":
        a, b, c = r.randint(2, 4), r.randint(2, 5), r.randint(1, 5)
        return (f"{name} buys {a} packs of {item} with {b} in each pack, and already had {c}. "
                f"How many {item} does {name} have now?",
                f"{a} * {b} = {a * b}\n{a * b} + {c} = {a * b + c}", a * b + c)
    if kind == "mul_sub":
        a, b = r.randint(2, 4), r.randint(2, 5)
        c = r.randint(2, a * b - 1)
        return (f"{name} earns {a} dollars a day for {b} days and spends {c} dollars. How "
                f"many dollars does {name} have left?",
                f"{a} * {b} = {a * b}\n{a * b} - {c} = {a * b - c}", a * b - c)
    a, b, c = r.randint(2, 6), r.randint(2, 6), r.randint(2, 6)
    return (f"On Monday {name} picked {a} {item}, on Tuesday {b} and on Wednesday {c}. How "
            f"many {item} did {name} pick in the three days?",
            f"{a} + {b} = {a + b}\n{a + b} + {c} = {a + b + c}", a + b + c)


def problems(count: int = 160, seed: int = 23) -> list[dict[str, str]]:
    r = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        # short, short, one-step, two-step: every prefix mixes easy and harder problems
        make = (_short, _short, _one_step, _two_step)[len(rows) % 4]
        question, steps, answer = make(r, r.choice(NAMES), r.choice(ITEMS))
        if question not in seen:
            seen.add(question)
            rows.append({"question": question, "answer": f"{steps}\n#### {answer}"})
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("easy_arith.jsonl")
    out.write_text("".join(json.dumps(row) + "\n" for row in problems()))
    print(f"wrote {out}")
