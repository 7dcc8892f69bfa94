"""The verifier against a hand-built table of labelled (reply, gold) pairs (issue 21 item 8).

``data/verifier_table.json``: every shape the issue lists (scientific notation, units,
fractions, ratios, intervals, tuples, matrices, symbolic expressions, multiple choice,
yes/no, text, degrees, percentages, multi-part answers, prompts that quote markers,
unmarked LaTeX answers), each gold with right and wrong answers written as a boxed answer,
a ``Final answer:`` line and an unmarked reply.  Labels come from how the row was built
(right / wrong / undecided), never from running a verifier.  ``label`` null means no rule
may decide (a gold that is words mixed with math, or a fragment-only parse).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import thinkforge as tf

TABLE = json.loads((Path(__file__).parent / "data" / "verifier_table.json").read_text())


def test_the_table_covers_every_shape_with_enough_pairs():
    shapes = Counter(row["shape"] for row in TABLE)
    assert len(TABLE) >= 300
    assert {"scientific", "units", "fractions", "ratios", "intervals", "tuples", "matrices",
            "symbolic", "choice", "yes_no", "degrees", "percent", "multi_part",
            "quoted_markers", "unmarked_latex"} <= set(shapes)
    assert {row["label"] for row in TABLE} == {True, False, None}


def test_every_labelled_pair(capsys):
    misses, false_positives = [], 0
    for row in TABLE:
        options = {"messages": row["messages"]} if "messages" in row else \
            {"marker_required": row["marker_required"]}
        verdict = tf.verify(row["reply"], row["gold"], **options)
        if verdict.correct is not row["label"]:
            misses.append((row["shape"], row["gold"], row["reply"], row["label"], verdict))
            false_positives += verdict.correct is True
    with capsys.disabled():
        print(f"\nverifier table: {len(TABLE) - len(misses)}/{len(TABLE)} agree, "
              f"{false_positives} false positives")
    assert not misses, "\n".join(map(repr, misses))
