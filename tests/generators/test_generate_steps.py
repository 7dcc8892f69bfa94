"""Paired SFT and rollouts end to end: the tiny local model, and a scripted teacher."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts
from thinkforge.generators.sft import SftConfig, generate_sft


def rows_of(store, manifest):
    return [r for path in store.shard_paths(manifest) for r in pq.read_table(path).to_pylist()]


def rejected_of(store, manifest):
    return [r for path in store.rejected_paths(manifest) for r in pq.read_table(path).to_pylist()]


def test_sft_with_the_tiny_model_writes_verified_pairs(store, gsm8k, tiny_model):
    config = SftConfig(teacher={"model": str(tiny_model), "batch_size": 4}, limit=3,
                       sampling_on={"max_new_tokens": 8}, sampling_off={"temperature": 0,
                                                                         "max_new_tokens": 8})
    manifest = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
    rows = rows_of(store, manifest)
    # a random 2-layer model never writes the "Final answer:" line the prompted ON format asks
    # for: its ON answers are rejected (format:no_final_answer), never stored as
    # <think>X</think>X; the OFF answers are kept and verified
    assert manifest.kind == "sft" and len(rows) == 3
    assert manifest.rejected.by_reason == {"format:no_final_answer": 3}
    rejected = rejected_of(store, manifest)
    assert {r["mode"] for r in rejected} == {"on"}
    assert {r["prompt_id"] for r in rejected} == {r["prompt_id"] for r in rows}
    for row in rows:
        assert row["reasoning"] == "off" and "<think>" not in row["output"]
        assert row["system_prompt"] == "detailed thinking off"
        assert row["input"][0]["role"] == "user"          # the system prompt has its own column
        assert row["verified"] is not None                # gsm8k rows all have a ground truth
        assert 0 < row["output_tokens"] <= 8 and row["generator"] == str(tiny_model)
    p = manifest.provenance
    # tokens count every completion, the rejected ON answers too
    assert p["completion_tokens"] >= sum(r["output_tokens"] for r in rows) and p["prompt_tokens"] > 0
    assert p["wall_time_s"] > 0 and p["tokens_per_s"] > 0 and p["errors_by_kind"] == {}
    assert p["teachers"][str(tiny_model)]["backend"] == "transformers"
    assert p["verifiers"]["math"].startswith("math-verify")
    assert manifest.step.type == "generate_sft" and manifest.step.config == config.model_dump()
    assert manifest.parents[0].fingerprint == gsm8k.fingerprint
    assert set(manifest.stats["verified_rate"]) == {"off"}


def test_same_config_on_same_prompts_is_reused_without_a_teacher_call(store, gsm8k, scripted):
    teacher = scripted(lambda r: "Work.\n\nFinal answer: 1")
    config = SftConfig(limit=2)
    first = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
    calls = teacher.calls
    again = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
    assert again.ref == first.ref and teacher.calls == calls == 4
    changed = generate_sft(store, gsm8k, "gsm8k-sft", SftConfig(limit=2, seed=1), progress=False)
    assert changed.version == "v2" and teacher.calls == 8


def test_verified_reflects_the_ground_truth(store, gsm8k, scripted):
    truths = {}
    for path in store.shard_paths(gsm8k):
        for row in pq.read_table(path).to_pylist():
            truths[row["input"][0]["content"]] = row["ground_truth"]
    # right in ON mode, wrong in OFF mode
    scripted(lambda r: (f"Reasoning.\n\nFinal answer: {truths[r.messages[1]['content'].split(chr(10))[0]]}"
                        if r.messages[0]["content"].endswith("on") else "It is -1."))
    manifest = generate_sft(store, gsm8k, "gsm8k-sft", SftConfig(limit=4), progress=False)
    rows = rows_of(store, manifest)
    assert {r["verified"] for r in rows if r["reasoning"] == "on"} == {True}
    assert {r["verified"] for r in rows if r["reasoning"] == "off"} == {False}
    assert manifest.stats["verified_rate"]["on"]["rate"] == 1.0


def test_native_format_rejects_broken_outputs_with_a_reason(store, gsm8k, scripted):
    scripted(lambda r: "no tags here, 5" if r.messages[0]["content"].endswith("on")
             else "<think>secret</think> 5")
    from thinkforge.manifests.errors import GenerationFailedError

    # every answer rejected: nothing is published (an empty version is no success)
    with pytest.raises(GenerationFailedError) as failed:
        generate_sft(store, gsm8k, "gsm8k-sft", SftConfig(limit=2, reasoning_format="native"),
                     progress=False)
    assert "format:missing_or_malformed_think_block: 2" in str(failed.value)
    assert "format:think_tags_in_off_mode: 2" in str(failed.value)


def test_teacher_map_routes_modes_and_categories(store, gsm8k, scripted):
    scripted(lambda r: "x\n\nFinal answer: 1")
    config = SftConfig(limit=2, teachers=[{"mode": "on", "model": "reasoner"},
                                          {"mode": "off", "category": "math", "model": "mathy"}])
    rows = rows_of(store, generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False))
    assert {(r["reasoning"], r["generator"]) for r in rows} == {("on", "reasoner"), ("off", "mathy")}


def test_rollouts_score_correctness_format_and_reward(store, gsm8k, scripted):
    truths = {}
    for path in store.shard_paths(gsm8k):
        for row in pq.read_table(path).to_pylist():
            truths[row["input"][0]["content"]] = row["ground_truth"]

    def answer(request):
        truth = truths[request.messages[1]["content"].split("\n")[0]]
        # sample seeds differ; even seeds answer right with the requested structure
        return f"Steps.\n\nFinal answer: {truth}" if request.sampling.seed % 2 == 0 else "I guess 0"

    scripted(answer)
    config = RolloutConfig(k=4, limit=3, reward_format=0.5)
    manifest = generate_rollouts(store, gsm8k, "gsm8k-rollouts", config, progress=False)
    rows = rows_of(store, manifest)
    assert len(rows) == 12 and {r["sample"] for r in rows} == {0, 1, 2, 3}
    assert {r["reasoning"] for r in rows} == {"on"}
    for row in rows:
        assert row["output"].startswith("<think>")
        expected = 1.5 if row["correct"] else 0.0
        assert row["format_ok"] is bool(row["correct"]) and row["reward"] == expected
    assert any(r["correct"] for r in rows) and not all(r["correct"] for r in rows)


def test_unparseable_gold_gives_no_reward_and_is_counted(store, scripted, tmp_path):
    from thinkforge.curation.importer import ImportOptions, import_file

    path = tmp_path / "weird.jsonl"
    path.write_text('{"question": "Q?", "answer": "so #### ???"}\n')
    prompts = import_file(store, path, ImportOptions(name="weird", preset="gsm8k"))
    scripted(lambda r: "x\n\nFinal answer: 1")
    manifest = generate_rollouts(store, prompts, "weird-rollouts", RolloutConfig(k=2), progress=False)
    assert {(r["correct"], r["reward"]) for r in rows_of(store, manifest)} == {(None, None)}
    assert manifest.provenance["verifier_errors_by_kind"] == {"gold_unparseable": 2}


def test_code_prompts_are_verified_by_running_their_tests(store, humaneval, scripted):
    import json

    solutions = {}
    for path in store.shard_paths(humaneval):
        for row in pq.read_table(path).to_pylist():
            meta = json.loads(row["metadata"])
            solutions[row["input"][0]["content"]] = meta["prompt"] + meta["canonical_solution"]
    scripted(lambda r: "```python\n" + solutions[r.messages[1]["content"].split(
        "\n\nThink step by step")[0]] + "\n```" if r.messages[0]["content"].endswith("on")
        else "```python\ndef nothing():\n    pass\n```")
    manifest = generate_sft(store, humaneval, "he-sft", SftConfig(limit=3), progress=False)
    rows = rows_of(store, manifest)
    assert {r["verified"] for r in rows if r["reasoning"] == "on"} == {True}
    assert {r["verified"] for r in rows if r["reasoning"] == "off"} == {False}
    assert all(r["answer"].lstrip().startswith(("def", "from", "import")) for r in rows)
    assert manifest.provenance["verifiers"]["code"].startswith("code-subprocess")


def test_a_non_prompts_version_is_refused(store, gsm8k, scripted):
    from thinkforge.manifests.errors import InputDataError

    scripted(lambda r: "x\n\nFinal answer: 1")
    sft = generate_sft(store, gsm8k, "gsm8k-sft", SftConfig(limit=1), progress=False)
    with pytest.raises(InputDataError, match="not prompts"):
        generate_sft(store, sft, "again", SftConfig(limit=1), progress=False)
