"""Every scorer agrees with the stored labels (issue 21 item 6).

Generation stores ``verified`` (sft) / ``correct`` (rollouts) and the ``answer`` it compared.
Re-scoring each stored ``output`` with ``thinkforge.verify``, verl's ``compute_score`` and
the GRPO/RLOO accuracy reward must give the stored value on every decided row, for both
reasoning formats and both modes.  The teacher is scripted: right, wrong, unmarked, LaTeX,
scientific-notation and undecided answers.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.reasoning import apply_prompt_template, marker_required, prompt_template
from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts
from thinkforge.generators.sft import SftConfig, generate_sft
from thinkforge.trainers.rewards import AccuracyReward

import thinkforge as tf
from thinkforge.integrations.verl import compute_score

GOLDS = ["21", "6e13", "\\frac{1}{3}", "yes", "2:3", "9 red apples and 3 pears", "(x+1)^2"]
RIGHT = ["21", "6 \\times 10^{13}", "\\frac{1}{3}", "Yes", "2:3", "9", "x^2+2x+1"]
WRONG = ["20", "13e6", "0.3", "no", "3:2", "3", "x^2+1"]


def _prompts(store, tmp_path):
    from thinkforge.curation.importer import ImportOptions, import_file

    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(
        f'{{"question": "Q{i}: an earlier solution ended with \\\\boxed{{7}}. Now solve it.", '
        f'"answer": "work #### {g.replace(chr(92), chr(92) * 2)}"}}\n'
        for i, g in enumerate(GOLDS)))
    return import_file(store, path, ImportOptions(name="mixed", preset="gsm8k"))


def _reply(fmt: str):
    def answer(request) -> str:
        mode = "on" if request.messages[0]["content"].endswith("on") else "off"
        user = request.messages[-1]["content"]
        i = int(user[1:user.index(":")])
        sample = request.key.count("1") % 3  # a spread of right, wrong and unmarked answers
        value = (RIGHT if sample != 1 else WRONG)[i]
        if mode == "off":
            return [f"${value}$", f"So it is $x = {value}$", f"The answer is {value}."][sample]
        if fmt == "native":
            return [f"<think>\nwork\n</think>\n\nSo \\boxed{{{value}}}.",
                    f"<think>\nwork\n</think>\n\n\\boxed{{{value}}}",
                    f"<think>\nwork with {value}\n</think>\n\nIt is {value}"][sample]
        return [f"work\nFinal answer: {value}", f"work\n\nFinal answer: ${value}$",
                f"work, so {value}"][sample]
    return answer


def _rows(store, manifest):
    return [r for path in store.shard_paths(manifest) for r in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("fmt", ["native", "prompted"])
def test_every_scorer_reproduces_the_stored_labels(store, scripted, tmp_path, fmt):
    prompts = _prompts(store, tmp_path)
    golds = {}
    for path in store.shard_paths(prompts):
        for row in pq.read_table(path).to_pylist():
            golds[row["id"]] = (row["ground_truth"], row["input"])
    scripted(_reply(fmt))
    sft = generate_sft(store, prompts, f"sft-{fmt}", SftConfig(reasoning_format=fmt, n=3,
                                                               max_error_rate=1), progress=False)
    rollouts = generate_rollouts(store, prompts, f"ro-{fmt}",
                                 RolloutConfig(reasoning_format=fmt, k=3, modes=["on", "off"]),
                                 progress=False)
    template = prompt_template(["on", "off"], fmt)
    reward = AccuracyReward(fmt)
    checked = {True: 0, False: 0, None: 0}
    for kind, manifest, label in (("sft", sft, "verified"), ("rollouts", rollouts, "correct")):
        rows = _rows(store, manifest)
        rules = manifest.provenance["verdicts_by_rule"]  # which rule labelled the rows
        for value in (True, False, None):
            assert sum(n for rule, n in rules.items() if rule.startswith(f"{value}:".lower())) \
                == sum(row[label] is value for row in rows), (kind, rules)
        for row in rows:
            gold, messages = golds[row["prompt_id"]]
            mode = row["reasoning"]
            sent = apply_prompt_template(messages, template, mode)
            stored = row[label]
            checked[stored] += 1
            verdict = tf.verify(row["output"], gold, messages=sent, mode=mode,
                                reasoning_format=fmt)
            assert verdict.correct is stored, (kind, row["output"], gold, verdict)
            assert verdict.answer == row["answer"], (kind, row["output"], verdict)
            assert verdict.reason == row["verdict"], (kind, row["output"], verdict)
            if stored is None:
                continue
            info = {"verifier": "math", "answer_marker_required": marker_required(sent),
                    "reasoning": mode, "reasoning_format": fmt}
            assert compute_score("mixed", row["output"], gold, info) == float(stored), \
                (kind, row["output"], gold)
            assert reward([sent], [row["output"]], ground_truth=[gold], verifier=["math"],
                          reasoning=[mode]) == [float(stored)], (kind, row["output"], gold)
    # the data exercised every verdict
    assert checked[True] >= 10 and checked[False] >= 10 and checked[None] >= 2, checked


def test_versions_written_before_the_verdict_column_stay_readable(store, monkeypatch):
    """An sft version from before the ``verdict`` column reads (NULL), filters and selects."""
    import pyarrow as pa
    from thinkforge.filters.correct import run_correct
    from thinkforge.filters.quality import run_quality
    from thinkforge.manifests import schemas
    from thinkforge.manifests.selection import read_table

    current = schemas.SCHEMAS["sft"]
    old = pa.schema([f for f in current if f.name != "verdict"])
    rows = [{"id": f"s{i}{mode}", "prompt_id": f"p{i}", "pair_id": f"p{i}", "category": "math",
             "reasoning": mode, "system_prompt": f"detailed thinking {mode}",
             "input": [{"role": "user", "content": f"q{i}"}], "generator": "toy",
             "output": "<think>x</think>\n\n4" if mode == "on" else "4", "verified": i != 1,
             "answer": "4"} for i in range(3) for mode in ("on", "off")]
    monkeypatch.setitem(schemas.SCHEMAS, "sft", old)
    with store.writer("old-sft", "sft", step={"type": "test"}) as writer:
        writer.write(rows)
    monkeypatch.setitem(schemas.SCHEMAS, "sft", current)
    table = read_table(store, writer.manifest)
    assert table.num_rows == 6 and table.column("verdict").null_count == 6
    kept = run_correct(store, writer.manifest, "old-correct")   # materialises or selects
    clean = run_quality(store, kept, "old-clean")               # a selection over it
    for version in (kept, clean):
        assert read_table(store, version).column("verdict").null_count == version.rows == 4
