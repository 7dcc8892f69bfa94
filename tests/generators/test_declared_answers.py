"""Generation stores what was verified (issue 9 item 4) and real-world golds verify right
(issue 16 item 1); a prompted ON answer without a final answer line is rejected (item 3)."""

from __future__ import annotations

import pyarrow.parquet as pq
from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts
from thinkforge.generators.sft import SftConfig, generate_sft


def rows_of(store, manifest, rejected=False):
    paths = store.rejected_paths(manifest) if rejected else store.shard_paths(manifest)
    return [r for path in paths for r in pq.read_table(path).to_pylist()]


def _prompts(store, tmp_path, golds):
    from thinkforge.curation.importer import ImportOptions, import_file

    path = tmp_path / "units.jsonl"
    path.write_text("".join(f'{{"question": "Q{i}: Tom has 12 eggs and 9 more. How many?", '
                            f'"answer": "work #### {g}"}}\n' for i, g in enumerate(golds)))
    return import_file(store, path, ImportOptions(name="units", preset="gsm8k"))


def test_unit_golds_verify_and_the_stored_answer_is_what_was_verified(store, scripted, tmp_path):
    prompts = _prompts(store, tmp_path, ["21 (eggs)", "$1,200"])
    replies = {"Q0": "12 + 9 = 21\n\nFinal answer: 21 eggs",
               "Q1": "work\n\nFinal answer: $1,200 dollars."}
    scripted(lambda r: replies[r.messages[1]["content"][:2]])
    manifest = generate_rollouts(store, prompts, "units-rollouts", RolloutConfig(k=1),
                                 progress=False)
    rows = sorted(rows_of(store, manifest), key=lambda r: r["answer"])
    assert [(r["answer"], r["correct"]) for r in rows] == [("1200", True), ("21", True)]
    assert manifest.provenance["answers_by_source"] == {"final_answer": 2}


def test_restating_the_question_is_no_answer_not_correct(store, scripted, tmp_path):
    prompts = _prompts(store, tmp_path, ["21"])
    # no "Final answer:" line although the prompted format asked for one; its last number
    # happens to be the gold
    scripted(lambda r: "Tom has 12 eggs and 9 more, so 12 + 9 = 21")
    manifest = generate_rollouts(store, prompts, "restate-rollouts", RolloutConfig(k=2),
                                 progress=False)
    rows = rows_of(store, manifest)
    assert {(r["correct"], r["answer"], r["reward"]) for r in rows} == {(False, None, 0.0)}
    assert manifest.provenance["answers_by_source"] == {"no_answer": 2}


def test_prompted_on_answer_without_a_final_line_is_rejected_not_duplicated(store, scripted,
                                                                          tmp_path):
    prompts = _prompts(store, tmp_path, ["21"])
    scripted(lambda r: "12 + 9 = 21" if r.messages[0]["content"].endswith("on")
             else "21")
    manifest = generate_sft(store, prompts, "restate-sft", SftConfig(), progress=False)
    kept = rows_of(store, manifest)
    assert [r["reasoning"] for r in kept] == ["off"]
    rejected = rows_of(store, manifest, rejected=True)
    assert [r["reason"] for r in rejected] == ["format:no_final_answer"]
    assert not any("</think>\n\n12 + 9 = 21" in r["output"] for r in kept)
