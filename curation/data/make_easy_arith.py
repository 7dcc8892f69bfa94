"""Write ``easy_arith.jsonl``: one- and two-step arithmetic word problems for the demo.

Written for this project (no public set is copied): a handful of sentence templates,
filled with small numbers, names and objects drawn from a seeded generator, so the file is
reproducible (``python curation/data/make_easy_arith.py`` rewrites it byte for byte).
Each row has GSM8K's shape (``question``; ``answer`` = worked steps, then ``#### N``), so
the ``gsm8k`` import preset reads it.  They are easy on purpose, and sums-heavy: measured
on the embedded SmolLM2-135M teacher (bench/README.md, demo_teacher), sums of two digits
are what it gets right most often (greedy OFF ~80%, a sampled ON answer ~35%), while
subtractions, bigger sums and two-step problems it mostly misses.  So 7 of every 10
problems are such sums (the demo's verified ON/OFF pairs), and the rest, a two-digit sum,
a small subtraction and a two-step problem, spread the RL pool's pass rates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Tom", "Mia", "Ben", "Lily", "Sam", "Emma", "Leo", "Ava", "Max", "Zoe", "Jack",
         "Nora", "Omar", "Ella", "Ravi", "Ivy", "Noah", "Lucy", "Finn", "Rosa"]
ITEMS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "balloons",
         "shells", "cards", "oranges", "crayons", "stamps", "eggs", "toy cars", "flowers"]
COLOURS = [("red", "blue"), ("green", "yellow"), ("big", "small"), ("white", "black")]


def _sum(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    """Two one-digit numbers added, in one of three phrasings: the teacher's best chance
    (phrasings it answers worse, "a friend gives ...", "found ... in the morning", were
    left out)."""
    a, b = r.randint(2, 9), r.randint(2, 9)
    first, second = r.choice(COLOURS)
    other = r.choice([n for n in NAMES if n != name])
    question = r.choice([
        f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?",
        f"{name} has {a} {first} {item} and {b} {second} {item}. How many {item} does "
        f"{name} have in all?",
        f"{name} has {a} {item} and {other} has {b} {item}. How many {item} do they have "
        "together?"])
    return question, f"{a} + {b} = {a + b}", a + b


def _difference(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    a = r.randint(6, 15)
    b = r.randint(1, 5)
    return (f"{name} has {a} {item} and gives {b} away. How many {item} does {name} have "
            "left?", f"{a} - {b} = {a - b}", a - b)


def _bigger_sum(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    a, b = r.randint(11, 40), r.randint(2, 9)
    return (f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have "
            "now?", f"{a} + {b} = {a + b}", a + b)


def _two_step(r: random.Random, name: str, item: str) -> tuple[str, str, int]:
    if r.random() < 0.5:
        a, b, c = r.randint(2, 6), r.randint(2, 6), r.randint(2, 6)
        return (f"On Monday {name} picked {a} {item}, on Tuesday {b} and on Wednesday {c}. "
                f"How many {item} did {name} pick in the three days?",
                f"{a} + {b} = {a + b}\n{a + b} + {c} = {a + b + c}", a + b + c)
    a, b = r.randint(3, 9), r.randint(2, 6)
    c = r.randint(1, a)
    return (f"{name} has {a} {item}, buys {b} more, then gives {c} away. How many {item} "
            f"does {name} have now?", f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}",
            a + b - c)


# every 10 problems: 7 one-digit sums, a two-digit sum, a subtraction and a two-step problem
# (interleaved, so every prefix the demo takes with `limit` has the same mix)
CYCLE = (_sum, _sum, _sum, _two_step, _sum, _sum, _bigger_sum, _sum, _difference, _sum)


def problems(count: int = 200, seed: int = 23) -> list[dict[str, str]]:
    r = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        make = CYCLE[len(rows) % len(CYCLE)]
        question, steps, answer = make(r, r.choice(NAMES), r.choice(ITEMS))
        if question not in seen:
            seen.add(question)
            rows.append({"question": question, "answer": f"{steps}\n#### {answer}"})
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("easy_arith.jsonl")
    out.write_text("".join(json.dumps(row) + "\n" for row in problems()))
    print(f"wrote {out}")
