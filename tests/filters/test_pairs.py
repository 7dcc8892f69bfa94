"""ON/OFF pairs survive dedup and quality (issue 16 item 2): filters/pairs.py."""

from __future__ import annotations

import pytest
from thinkforge.filters.dedup import DedupConfig, run_dedup
from thinkforge.filters.quality import QualityConfig, run_quality
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401


def _row(prompt: int, mode: str, output: str, sample: int = 0, question: str | None = None):
    q = question or f"Question number {prompt}: how many apples does Ann have after lunch today?"
    return {"id": f"r{prompt}-{sample}-{mode}", "prompt_id": f"p{prompt}",
            "pair_id": f"pair{prompt}-{sample}", "category": "math", "reasoning": mode,
            "system_prompt": f"detailed thinking {mode}",
            "input": [{"role": "user", "content": q}], "output": output, "generator": "t",
            "output_tokens": 10, "finish_reason": "stop"}


def _pair(prompt: int, on: str | None = None, off: str | None = None, **kw):
    return [_row(prompt, "on", on or f"<think>work {prompt}</think>\n\nIt is {prompt}.", **kw),
            _row(prompt, "off", off or f"It is {prompt}.", **kw)]


def _write(store, rows, name="sft"):
    with store.writer(name, "sft", step={"type": "test"}) as w:
        w.write(rows)
    return w.manifest


def _kept(store, m):
    return sorted(read_table(store, m).column("id").to_pylist())


def _rejected(store, m):
    return {r["id"]: r for r in read_rejected(store, m).to_pylist()}


def test_dedup_on_input_drops_whole_prompts_not_one_row_of_each_pair(store):
    same = "How many apples does Ann have if she buys three bags of five apples each?"
    rows = _pair(1, question=same) + _pair(2, question=same) + _pair(3)
    m = run_dedup(store, _write(store, rows), "dd")
    # today's main kept r1-0-off and dropped r1-0-on (both rows share the input)
    assert _kept(store, m) == ["r1-0-off", "r1-0-on", "r3-0-off", "r3-0-on"]
    rejected = _rejected(store, m)
    assert set(rejected) == {"r2-0-on", "r2-0-off"}
    assert {r["duplicate_of"] for r in rejected.values()} == {"p1"}
    assert m.provenance["pairs"]["complete_pairs_kept"] == 2
    assert m.provenance["pairs"]["orphans_kept"] == 0


def test_dedup_on_output_compares_within_a_mode_and_drops_the_partner(store):
    # prompt 2's OFF answer duplicates prompt 1's OFF answer; prompt 3's OFF answer equals
    # prompt 3's ON answer text (different modes: not duplicates)
    rows = (_pair(1, off="The answer is seven apples in total for Ann.")
            + _pair(2, off="The answer is seven apples in total for Ann.")
            + _pair(3, on="same words here in both modes", off="same words here in both modes"))
    m = run_dedup(store, _write(store, rows), "dd-out", DedupConfig(on="output", near=False))
    assert _kept(store, m) == ["r1-0-off", "r1-0-on", "r3-0-off", "r3-0-on"]
    rejected = _rejected(store, m)
    assert rejected["r2-0-off"]["reason"] == "exact_duplicate"
    assert rejected["r2-0-on"]["reason"] == "pair_partner:off:exact_duplicate"
    assert rejected["r2-0-on"]["pair_failed_id"] == "r2-0-off"
    independent = run_dedup(store, _write(store, rows, "sft2"), "dd-ind",
                            DedupConfig(on="output", near=False, pairs="independent"))
    assert "r2-0-on" in _kept(store, independent)


@pytest.mark.parametrize("policy,kept,partner_reason", [
    ("drop-whole", ["r2-0-off", "r2-0-on"], "pair_partner:on:think_missing"),
    ("keep-whole", ["r1-0-off", "r1-0-on", "r2-0-off", "r2-0-on"], None),
    ("independent", ["r1-0-off", "r2-0-off", "r2-0-on"], None),
])
def test_quality_pair_policies(store, policy, kept, partner_reason):
    rows = _pair(1, on="no think tags at all") + _pair(2)
    m = run_quality(store, _write(store, rows), f"q-{policy}", QualityConfig(pairs=policy))
    assert _kept(store, m) == kept
    rejected = _rejected(store, m)
    if partner_reason:
        assert rejected["r1-0-off"]["reason"] == partner_reason
        assert rejected["r1-0-off"]["pair_failed_id"] == "r1-0-on"
    assert m.provenance["pairs"]["policy"] == policy


def test_quality_default_on_a_paired_version_is_drop_whole(store):
    rows = _pair(1, off="<think>oops</think> 1") + _pair(2)
    m = run_quality(store, _write(store, rows), "q")
    assert _kept(store, m) == ["r2-0-off", "r2-0-on"]
    assert m.rejected.by_reason == {"think_in_off": 1, "pair_partner:off:think_in_off": 1}
    assert m.provenance["pairs"] == {"policy": "drop-whole", "complete_pairs_kept": 1,
                                     "orphans_kept": 0, "rejected_for_partner": 1,
                                     "kept_despite_failing": 0}
    assert m.stats["pairs"] == {"complete": 1, "orphans": 0}


def test_answer_repeating_the_reasoning_is_its_own_rejection(store):
    rows = _pair(1, on="<think>\n12 + 9 = 21\n</think>\n\n12 + 9 = 21") + _pair(2)
    m = run_quality(store, _write(store, rows), "q-dup", QualityConfig(pairs="independent"))
    assert _rejected(store, m)["r1-0-on"]["reason"] == "answer_repeats_reasoning"


def test_mix_with_reasoning_weights_keeps_pairs_whole_when_asked(store):
    from thinkforge.curation.mix import MixConfig, run_mix

    rows = [r for i in range(20) for r in _pair(i)]
    data = _write(store, rows)
    weights = {"reasoning": {"on": 1, "off": 1}}
    independent = run_mix(store, data, "mix-rows", MixConfig(weights=weights, rows=10, seed=3))
    whole = run_mix(store, data, "mix-pairs", MixConfig(weights=weights, rows=10, seed=3,
                                                        pairs="keep-whole"))
    assert independent.stats["pairs"]["orphans"] > 0  # rows ranked on their own: broken pairs
    assert whole.stats["pairs"] == {"complete": 5, "orphans": 0}
    uneven = run_mix(store, data, "mix-uneven", MixConfig(
        weights={"reasoning": {"on": 3, "off": 1}}, rows=16, pairs="keep-whole"))
    assert uneven.stats["pairs"] == {"complete": 4, "orphans": 8}  # every OFF row has its ON


def test_mix_keep_whole_takes_complete_pairs_before_orphans(store):
    """Issue 23 item 7: 4 complete pairs and 12 OFF orphans (their ON twins were dropped
    earlier); a 50/50 mix of 8 rows takes the 4 pairs, not 4 ON rows and 4 random OFF."""
    from thinkforge.curation.mix import MixConfig, run_mix

    rows = [r for i in range(4) for r in _pair(i)]
    rows += [_row(i, "off", f"It is {i}.") for i in range(4, 16)]
    data = _write(store, rows)
    mixed = run_mix(store, data, "mix", MixConfig(weights={"reasoning": {"on": 1, "off": 1}},
                                                 pairs="keep-whole", seed=0))
    assert mixed.rows == 8 and mixed.stats["pairs"] == {"complete": 4, "orphans": 0}


def test_cli_pairs_option(store, cli_run):
    _write(store, _pair(1, on="no think tags") + _pair(2))
    result = cli_run("filter", "quality", "sft", "--pairs", "keep-whole", "--name", "q", "--json")
    assert result.exit_code == 0, result.output
    assert store.resolve("q").provenance["pairs"]["policy"] == "keep-whole"
    assert cli_run("filter", "dedup", "sft", "--pairs", "nope", "--name", "d").exit_code == 2
