"""Ours vs math-verify alone vs a port of the Qwen2.5-Math ``math_equal`` grader, on the
bundled sets (issue 21 item 8): false positives, false negatives and undecided, per set.

For every problem the gold is answered by an always-right teacher in three shapes (a
``\\boxed`` answer, a ``Final answer:`` line, an unmarked reply ending in ``$gold$``) and by
a teacher with a planted wrong answer (the gold's last digit run changed, boxed and as a
``Final answer:`` line).  Right replies are labelled True, planted ones False.  The
``scientific`` set turns GSM8K golds into scientific notation (gold ``Ne±k``, answers in
``N \\times 10^{k}``; wrong: the exponent off by one).

    python bench/verifier_compare.py                 # the bundled sets (curation/data)
    python bench/verifier_compare.py --limit 200     # the first 200 problems of each set
    python bench/verifier_compare.py --extra ../shared/data/math500_test.jsonl

Prints, per set and grader: pairs, false positives (a wrong answer accepted), false
negatives (a right answer refused), undecided (ours only: left to the judge), errors (FP +
FN), and the share of right answers refused.  Goal: 0 FP, FN < 0.2%, fewer errors than
the reference on every set.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(path: Path, limit: int | None) -> list[str]:
    golds = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        gold = row["answer"].rsplit("####", 1)[1].strip() if "####" in row["answer"] \
            else row["answer"]
        golds.append(gold.strip())
    return golds[:limit] if limit else golds


def planted(gold: str) -> str | None:
    """The gold with its last digit run changed (+1): a different answer in practice."""
    runs = list(re.finditer(r"\d+", gold))
    if not runs:
        return None
    last = runs[-1]
    return gold[:last.start()] + str(int(last.group()) + 1) + gold[last.end():]


def scientific(golds: list[str]) -> list[tuple[str, str, bool]]:
    pairs = []
    for gold in golds:
        if not re.fullmatch(r"\d+", gold.replace(",", "")) or int(gold.replace(",", "")) == 0:
            continue
        digits = gold.replace(",", "").rstrip("0") or "0"
        exp = len(gold.replace(",", "")) - 1 + 7
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        sci = f"{mantissa}e{exp}"
        pairs += [(f"So \\boxed{{{mantissa} \\times 10^{{{exp}}}}}.", sci, True),
                  (f"Final answer: {mantissa}e{exp}", sci, True),
                  (f"So \\boxed{{{mantissa} \\times 10^{{{exp + 1}}}}}.", sci, False)]
    return pairs


def pairs_of(golds: list[str]) -> list[tuple[str, str, bool]]:
    pairs = []
    for gold in golds:
        pairs += [(f"The work.\nSo the answer is \\boxed{{{gold}}}.", gold, True),
                  (f"The work.\nFinal answer: {gold}", gold, True),
                  (f"The work gives ${gold}$", gold, True)]
        wrong = planted(gold)
        if wrong is not None:
            pairs += [(f"So \\boxed{{{wrong}}}.", gold, False), (f"Final answer: {wrong}", gold, False)]
    return pairs


def graders():
    import math_verify
    from math_verify.utils import timeout
    from thinkforge.generators.verifiers.api import verify
    from verifier_math_equal import grade

    def ours(reply, gold):
        return verify(reply, gold).correct

    def mv(reply, gold):
        try:
            return bool(math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(reply)))
        except Exception:  # noqa: BLE001 - a crash counts as "not equal"
            return False

    @timeout(timeout_seconds=5)
    def _qwen(reply, gold):
        return grade(reply, gold)

    def qwen(reply, gold):
        from math_verify.errors import TimeoutException

        try:
            return _qwen(reply, gold)
        except (Exception, TimeoutException):  # noqa: BLE001 - a timeout or crash: "not equal"
            return False

    return {"ours": ours, "math-verify": mv, "math_equal port": qwen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--extra", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    data = REPO / "curation" / "data"
    sets = {p.stem: pairs_of(load(p, args.limit))
            for p in [data / "math500_demo.jsonl", data / "math500_level1.jsonl",
                      data / "gsm8k_test.jsonl", *args.extra]}
    sets["scientific (from gsm8k)"] = scientific(load(data / "gsm8k_test.jsonl", args.limit))
    print(f"{'set':<24} {'grader':<16} {'pairs':>6} {'FP':>4} {'FN':>4} {'undec':>6} "
          f"{'errors':>7} {'FN % right':>10} {'s':>6}")
    for name, pairs in sets.items():
        right = sum(label for *_, label in pairs)
        for grader, fn in graders().items():
            start = time.perf_counter()
            fp = fneg = undecided = 0
            for reply, gold, label in pairs:
                got = fn(reply, gold)
                if got is None:
                    undecided += 1
                elif got and not label:
                    fp += 1
                elif label and not got:
                    fneg += 1
            print(f"{name:<24} {grader:<16} {len(pairs):>6} {fp:>4} {fneg:>4} {undecided:>6} "
                  f"{fp + fneg:>7} {100 * fneg / max(right, 1):>9.2f}% "
                  f"{time.perf_counter() - start:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
