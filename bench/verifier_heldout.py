"""The math verifier on a held-out word-problem set, before and after a change.

Forty-two gold/reply pairs built from the *shapes* of public sets (ASDiv / MAWPS / SVAMP
elementary word problems with unit golds, GSM8K, MATH), written for this check and never
used to tune the normaliser (the tuning table is tests/generators/math_gold_table.py).
Each is labelled by hand: True (the reply's declared answer equals the gold), False, or
None (the gold is not a math answer: no verdict is right).  Replies answer a prompted
request, so a reply with no ``Final answer:`` / ``\\boxed`` / ``####`` declares nothing.

    python bench/verifier_heldout.py                 # this tree
    python bench/verifier_heldout.py --before 14f4216  # also the verifier at that commit

Prints agreement with the hand labels for each, and the pairs they disagree on.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HELD_OUT: list[tuple[str, str, bool | None]] = [
    # ASDiv / MAWPS: golds with a parenthesised unit
    ("3 (cookies)", "Each friend gets 12 / 4 = 3 cookies.\nFinal answer: 3", True),
    ("12 (pages)", "She reads 12 pages.\nFinal answer: 12 pages", True),
    ("45 (minutes)", "Final answer: 40", False),
    ("7 (birds)", "\\boxed{7}", True),
    ("$26 (stickers)$", "Final answer: 26", True),
    ("0.5 (hours)", "Final answer: 1/2", True),
    # unit words and units in LaTeX
    ("8 cm", "Final answer: 8", True),
    ("6 \\text{ inches}", "\\boxed{6}", True),
    ("64 \\text{ square feet}", "\\boxed{64}", True),
    ("15 km", "Final answer: 15 km", True),
    ("15 km", "Final answer: 51 km", False),
    # SVAMP / MAWPS floats
    ("12.0", "Final answer: 12", True),
    ("45.0", "#### 45", True),
    ("3.75", "Final answer: 3.75", True),
    ("3.75", "Final answer: 3.57", False),
    # GSM8K: separators and currency
    ("1,080", "Final answer: 1080", True),
    ("2125", "Final answer: 2,125", True),
    ("$10.50", "Final answer: 10.5", True),
    ("\\$2.50", "Final answer: $2.50 per cup", True),
    ("460", "The farmer earns $460 in total.\n#### 460", True),
    ("35", "#### 53", False),
    # percentages
    ("10\\%", "Final answer: 10", True),
    ("62.5%", "Final answer: 62.5%", True),
    ("20%", "Final answer: 25%", False),
    # MATH: LaTeX answers
    ("\\frac{7}{2}", "\\boxed{3.5}", True),
    ("3\\sqrt{2}", "\\boxed{\\sqrt{18}}", True),
    ("(2,-1)", "\\boxed{(2, -1)}", True),
    ("(2,-1)", "\\boxed{(-1, 2)}", False),
    ("[-2, 5)", "\\boxed{[-2,5)}", True),
    ("4, -4", "\\boxed{-4, 4}", True),
    ("x^2+2x+1", "\\boxed{(x+1)^2}", True),
    ("y = 3", "\\boxed{3}", True),
    ("\\dfrac{1}{6}", "\\boxed{\\frac{1}{6}}", True),
    ("\\dfrac{1}{6}", "\\boxed{\\frac{1}{5}}", False),
    # short text golds are compared as text since issue 21 (item 2); words mixed with
    # numbers still get no verdict
    ("Tuesday", "Final answer: Tuesday", True),
    ("2:30 p.m.", "Final answer: 2:30", None),
    ("no", "Final answer: no", True),
    # replies that declare no answer although asked (restating the question's numbers)
    ("9", "Sam had 5 apples and bought 4 more apples at the store.", False),
    ("24", "We need 6 boxes of 4 pencils, that is 6 times 4 = 24", False),
    ("150", "Let me think about the 150 tickets.", False),
    # a declared answer with words around it
    ("16", "Final answer: She has 16 marbles left.", True),
    ("16", "Final answer: 16.", True),
]


def load_verifier(rev: str | None):
    """verify_math of this tree, or of git revision ``rev`` (its two modules, imported
    under another package name)."""
    if rev is None:
        from thinkforge.generators.verifiers.math_answers import verify_math

        return verify_math
    root = Path(tempfile.mkdtemp(prefix="verifier-")) / f"old_{rev}"
    (root / "verifiers").mkdir(parents=True)
    for path in ("generators/reasoning.py", "generators/verifiers/__init__.py",
                 "generators/verifiers/math_answers.py"):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"],
                              capture_output=True, text=True, check=True).stdout
        (root / path.removeprefix("generators/")).write_text(text)
    (root / "__init__.py").write_text("")
    sys.path.insert(0, str(root.parent))  # sys.path: an old revision's copy, under its own name
    sys.path.insert(1, str(REPO))  # sys.path: the bare `manifests` an old revision imports
    return importlib.import_module(f"old_{rev}.verifiers.math_answers").verify_math


def agreement(verify, name: str, new_signature: bool) -> int:
    misses = []
    for gold, reply, label in HELD_OUT:
        kwargs = {"marker_required": True} if new_signature else {}
        got = verify(reply, gold, {}, **kwargs).correct
        if got is not label:
            misses.append((gold, reply, label, got))
    agree = len(HELD_OUT) - len(misses)
    print(f"{name:>10}: {agree}/{len(HELD_OUT)} agree with the hand labels "
          f"({100 * agree / len(HELD_OUT):.0f}%)")
    for gold, reply, label, got in misses:
        print(f"            gold {gold!r:24} reply {reply[:44]!r:48} label {label} got {got}")
    return agree


def main() -> None:
    import logging

    logging.disable(logging.WARNING)  # math-verify's timeout notices
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision whose verifier to compare")
    args = parser.parse_args()
    print(f"held-out set: {len(HELD_OUT)} hand-labelled pairs")
    if args.before:
        agreement(load_verifier(args.before), f"@{args.before}", new_signature=False)
    agreement(load_verifier(None), "this tree", new_signature=True)


if __name__ == "__main__":
    main()
