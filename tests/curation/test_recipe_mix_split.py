"""Mix quotas and sampling, and the hash split: deterministic, pairs kept together."""

from __future__ import annotations

import pytest
from thinkforge.curation.mix import MixConfig, cell_quotas, run_mix
from thinkforge.curation.split import SplitConfig, run_split
from thinkforge.manifests.errors import ConfigError
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401

from .builders import make_prompts, make_sft


def sft_rows(store, n_prompts: int):
    """An sft version with n_prompts pairs: categories math (even) and code (odd)."""
    rows = []
    for i in range(n_prompts):
        for mode in ("on", "off"):
            rows.append({"id": f"s{i}{mode}", "prompt_id": f"p{i}", "pair_id": f"p{i}",
                         "category": "math" if i % 2 == 0 else "code", "reasoning": mode,
                         "system_prompt": f"detailed thinking {mode}",
                         "input": [{"role": "user", "content": f"q{i}"}], "output": f"a{i}",
                         "generator": "toy"})
    with store.writer("pairs", "sft", step={"type": "test", "config": {"n": n_prompts}}) as w:
        w.write(rows)
    return w.manifest


def test_quotas_follow_the_weights_and_natural_shares():
    counts = {("math", "on"): 30, ("math", "off"): 30, ("code", "on"): 10, ("code", "off"): 10}
    both = MixConfig(weights={"category": {"math": 0.5, "code": 0.5},
                              "reasoning": {"on": 0.5, "off": 0.5}}, rows=40)
    assert cell_quotas(counts, both) == {cell: 10 for cell in counts}
    only_modes = MixConfig(weights={"reasoning": {"on": 1.0}})
    assert cell_quotas(counts, only_modes) == {("math", "on"): 30, ("math", "off"): 0,
                                               ("code", "on"): 10, ("code", "off"): 0}
    # no replacement: a cell gives at most what it has
    capped = cell_quotas(counts, MixConfig(weights={"category": {"code": 1.0}}, rows=100))
    assert capped[("code", "on")] == 10 and capped[("math", "on")] == 0
    with pytest.raises(ConfigError, match="select nothing"):
        cell_quotas(counts, MixConfig(weights={"category": {"science": 1.0}}))


def test_mix_samples_deterministically_and_rejects_the_rest(store):
    data = sft_rows(store, 10)
    config = MixConfig(weights={"category": {"math": 1.0}, "reasoning": {"on": 1, "off": 1}},
                       rows=6, seed=3)
    mixed = run_mix(store, data, "mixed", config)
    assert mixed.rows == 6 and mixed.stats["by_category"] == {"math": 6}
    assert mixed.stats["by_reasoning"] == {"off": 3, "on": 3}
    assert mixed.rejected.by_reason == {"not_selected": 14}
    assert run_mix(store, data, "mixed", config).ref == mixed.ref  # reused


def test_mix_with_replacement_repeats_rows_under_new_ids(store):
    data = sft_rows(store, 2)
    mixed = run_mix(store, data, "big", MixConfig(rows=12, replace=True))

    ids = read_table(store, mixed).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 12 and any("~r" in i for i in ids)


def test_mix_pools_several_versions_of_one_kind(store):
    a = make_prompts(store, "a")
    with store.writer("b", "prompts", step={"type": "t", "config": {}}) as w:
        w.write([{"id": "code1", "source": "x", "category": "code",
                  "input": [{"role": "user", "content": "write f"}], "verifier": "code"}])
    mixed = run_mix(store, [a, w.manifest], "both", MixConfig())
    assert mixed.rows == 7 and [p.name for p in mixed.parents] == ["a", "b"]
    with pytest.raises(ConfigError, match="one kind"):
        run_mix(store, [a, make_sft(store, a)], "bad", MixConfig())


def test_split_keeps_pairs_together_and_is_stable(store):
    data = sft_rows(store, 40)
    parts = run_split(store, data, "pairs", SplitConfig(validation=0.25))

    sides = {}
    for part, m in parts.items():
        assert m.name == f"pairs-{part}" and m.step.config["part"] == part
        for pid in read_table(store, m).column("prompt_id").to_pylist():
            sides.setdefault(pid, set()).add(part)
    assert all(len(s) == 1 for s in sides.values())  # both answers of a prompt on one side
    assert parts["train"].rows + parts["validation"].rows == 80
    assert 0 < parts["validation"].rows < 40
    again = run_split(store, data, "pairs", SplitConfig(validation=0.25))
    assert {p: m.ref for p, m in again.items()} == {p: m.ref for p, m in parts.items()}
    other_salt = run_split(store, data, "pairs", SplitConfig(validation=0.25, salt="x"))
    assert other_salt["train"].version == "v2"


def test_an_empty_input_gives_an_empty_mix_and_split(store):
    with store.writer("empty", "sft", step={"type": "test", "config": {}}) as w:
        w.write([])
    mixed = run_mix(store, w.manifest, "m", MixConfig(weights={"reasoning": {"on": 1, "off": 1}}))
    assert mixed.rows == 0
    assert {p: m.rows for p, m in run_split(store, mixed, "s", SplitConfig()).items()} == \
        {"train": 0, "validation": 0}
