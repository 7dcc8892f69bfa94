"""Selection versions (manifests/selection.py): every filter's selection resolves to exactly
the rows of its materialised twin, in the same order, with the same fingerprint; chains
resolve to the base; a damaged base breaks the selections on it loudly."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from thinkforge.filters.base import Resources
from thinkforge.filters.decontam import DecontamConfig, run_decontam
from thinkforge.filters.dedup import DedupConfig, run_dedup
from thinkforge.filters.quality import QualityConfig, run_quality
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import IntegrityError
from thinkforge.manifests.selection import read_rejected, read_table

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()
MATERIALIZE = Resources(materialize=True)


def sft_pool(store: DatasetStore, seed: int, n: int, name: str = "pool"):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS[:4]) for _ in range(rng.randint(14, 20)))
        for mode in ("on", "off"):
            answer = " ".join(rng.choice(WORDS[:3]) for _ in range(rng.randint(1, 3)))
            think = rng.choice(["<think>a b</think> ", "<think></think>", ""])
            output = (think if mode == "on" else rng.choice(["", "", "<think>x</think>"])) + answer
            rows.append({"id": f"r{i:03d}-{mode}", "prompt_id": f"p{i}", "pair_id": f"p{i}",
                         "category": rng.choice(["math", "code"]), "reasoning": mode,
                         "system_prompt": f"detailed thinking {mode}",
                         "input": [{"role": "user", "content": prompt}], "output": output,
                         "generator": "t", "output_tokens": rng.choice([5, 20, None]),
                         "finish_reason": rng.choice(["stop", "stop", "length"])})
    rng.shuffle(rows)  # written out of key order: the twin sorts, the selection must too
    with store.writer(name, "sft", step={"type": "test", "config": {"seed": seed}}) as w:
        w.write(rows)
    bench = [{"id": f"b{j}", "source": "bench", "category": "math", "verifier": "none",
              "input": [{"role": "user", "content": rows[rng.randrange(len(rows))]["input"][0]
                         ["content"]}]} for j in range(2)]
    with store.writer("bench", "prompts", step={"type": "test", "config": {"seed": seed}}) as w:
        w.write(bench)
    return w.store.resolve(name), w.manifest


def same(store, a, b) -> None:
    assert a.selection is not None and b.selection is None
    assert read_table(store, a).to_pylist() == read_table(store, b).to_pylist()
    assert a.fingerprint == b.fingerprint and a.rows == b.rows
    assert a.stats == b.stats
    assert a.rejected.by_reason == b.rejected.by_reason
    ra, rb = read_rejected(store, a), read_rejected(store, b)
    assert sorted(ra.column_names) == sorted(rb.column_names)
    assert ra.select(rb.column_names).to_pylist() == rb.to_pylist()


STEPS = {
    "quality": lambda s, d, n, r, _: run_quality(s, d, n, QualityConfig(), resources=r),
    "dedup": lambda s, d, n, r, _: run_dedup(s, d, n, DedupConfig(on="output", near=True,
                                                                   threshold=0.5), resources=r),
    "decontam": lambda s, d, n, r, b: run_decontam(s, d, [b], n, DecontamConfig(ngram=8),
                                                   resources=r),
}


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])  # no shrinking: each example runs 6 steps
@given(seed=st.integers(0, 10_000), n=st.integers(3, 25))
def test_chain_of_selections_equals_materialised_twins(tmp_path_factory, seed, n):
    store = DatasetStore(tmp_path_factory.mktemp("sel"))
    data, bench = sft_pool(store, seed, n)
    sel, mat = data, data
    for step, run in STEPS.items():
        sel = run(store, sel, f"{step}-sel", None, bench)
        mat = run(store, mat, f"{step}-mat", MATERIALIZE, bench)
        same(store, sel, mat)
        # a selection of a selection stores positions in the base, never in its parent
        assert sel.selection.base.ref == data.ref
        store.verify(sel)


def test_selection_bytes_are_small_and_views_read_it(store):
    from thinkforge.manifests.catalog import refresh_catalog
    from thinkforge.manifests.duck import connect
    from thinkforge.manifests.sql import run_sql

    data, _ = sft_pool(store, 7, 40)
    q = run_quality(store, data, "q")
    assert q.files == [] and q.selection.file.bytes < 2000
    refresh_catalog(store)
    con = connect(store.catalog_path, read_only=True)
    assert con.execute('SELECT count(*) FROM "q@v1"').fetchall()[0][0] == q.rows
    assert con.execute('SELECT count(*) FROM "q@v1/rejected"').fetchall()[0][0] == q.rejected.rows
    con.close()
    rows = list(run_sql(store, 'SELECT id FROM q').rows())
    assert [r[0] for r in rows] == read_table(store, q).column("id").to_pylist()
    reasons = list(run_sql(store, 'SELECT reason, count(*) FROM "q@v1/rejected" GROUP BY ALL').rows())
    assert dict(reasons) == q.rejected.by_reason


def test_a_damaged_base_breaks_its_selections_loudly(store):
    data, _ = sft_pool(store, 3, 30)
    q = run_quality(store, data, "q")
    d = run_dedup(store, q, "d", DedupConfig(on="output"))
    shard = store.root / d.selection.base_files[0].path
    original = shard.read_bytes()
    shard.write_bytes(original[:-10] + b"0123456789")  # same size, other bytes
    for m in (q, d):
        store.check_sizes(m)  # sizes agree
        with pytest.raises(IntegrityError, match="sha256 of base shard"):
            store.verify(m)
    shard.unlink()
    for m in (q, d):
        with pytest.raises(IntegrityError, match="base shard .* is missing"):
            store.check_sizes(m)
    shard.write_bytes(original)
    store.verify(d)


def test_an_old_input_without_digests_is_materialised(store):
    data, _ = sft_pool(store, 5, 10)
    raw = data.model_copy(update={"digests": None})
    out = run_quality(store, raw, "q")
    assert out.selection is None and out.files


def test_an_input_of_the_older_digest_scheme_is_materialised(store):
    data, _ = sft_pool(store, 5, 10)
    assert data.digest_scheme == 2
    old = data.model_copy(update={"digest_scheme": 1})  # manifests written before the field
    out = run_quality(store, old, "q")
    assert out.selection is None and out.files


def test_changes_that_move_two_columns_alike_change_the_fingerprint(store, gsm8k):
    """correct false -> NULL and reward 0.0 -> NULL in one row: hash(false) = hash(0.0) = 0,
    so under the linear scheme 1 the two changes cancelled and the fingerprint stayed."""
    def rollouts(name: str, unverified: bool):
        rows = [{"prompt_id": "p", "sample": s, "generator": "g", "reasoning": "on",
                 "output": f"answer {s}", "answer": str(s), "correct": s == 0,
                 "format_ok": True, "reward": float(s == 0), "output_tokens": 3,
                 "finish_reason": "stop"} for s in range(2)]
        if unverified:
            rows[1].update(correct=None, reward=None)
        with store.writer(name, "rollouts", step={"type": "test", "config": {}},
                          parents=[gsm8k], provenance={"K": 2}) as w:
            w.write(rows)
        return w.manifest

    a, b, again = rollouts("a", False), rollouts("b", True), rollouts("c", False)
    assert a.fingerprint == again.fingerprint
    assert read_table(store, a).to_pylist() != read_table(store, b).to_pylist()
    assert a.fingerprint != b.fingerprint


def test_materialize_pull_and_export_give_the_twins_bytes(store, tmp_path):
    from thinkforge.curation.export import export_version, pull_version
    from thinkforge.manifests.maintenance import materialize

    data, _ = sft_pool(store, 11, 30)
    sel = run_quality(store, data, "q-sel")
    mat = run_quality(store, data, "q-mat", resources=MATERIALIZE)
    copy = materialize(store, sel, "q-copy")
    assert copy.selection is None and copy.fingerprint == sel.fingerprint == mat.fingerprint
    assert materialize(store, sel, "q-copy").ref == copy.ref  # reused
    outs = {}
    for m in (sel, mat):
        export_version(store, m, "trl-sft", tmp_path / f"x-{m.name}", license="cc-by-4.0")
        outs[m.name] = (tmp_path / f"x-{m.name}" / "train.parquet").read_bytes()
        pulled = DatasetStore(tmp_path / f"p-{m.name}")
        pull_version(store, m.ref, pulled.root)
        got = pulled.resolve(m.ref)
        pulled.verify(got)  # a pulled selection verifies: its base shards came with it
        assert read_table(pulled, got).to_pylist() == read_table(store, mat).to_pylist()
        export_version(pulled, got, "trl-sft", tmp_path / f"y-{m.name}", license="cc-by-4.0")
        assert (tmp_path / f"y-{m.name}" / "train.parquet").read_bytes() == outs[m.name]
    assert outs["q-sel"] == outs["q-mat"]


def test_gc_never_removes_what_a_selection_reads(store):
    from thinkforge.manifests.maintenance import gc

    data, _ = sft_pool(store, 13, 30)
    sel = run_quality(store, data, "q")
    base_dir = store.version_dir(data)
    (base_dir / "data" / "stray.tmp").write_bytes(b"x" * 10)
    assert [p.name for p, _ in gc(store).remove] == ["stray.tmp"]  # dry run: nothing deleted
    assert (base_dir / "data" / "stray.tmp").exists()
    (base_dir / "manifest.json").unlink()  # the base is deleted; its shards are still read
    plan = gc(store, apply=True)
    removed = {p.name for p, _ in plan.remove}
    assert "stray.tmp" in removed and not any(n.startswith("part-") for n in removed)
    assert plan.kept_for_selections and not (base_dir / "data" / "stray.tmp").exists()
    store.verify(sel)
    assert read_table(store, sel).num_rows == sel.rows


@pytest.mark.parametrize("seed", [1, 2])
def test_passrate_and_curriculum_select_like_their_twins(store, gsm8k, seed):
    from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
    from thinkforge.filters.passrate import PassRateConfig, run_passrate

    from .conftest import prompt_ids, write_rollouts

    rng = random.Random(seed)
    ids = prompt_ids(store, gsm8k)
    wanted = {i: rng.randint(0, 8) for i in rng.sample(ids, min(len(ids), 40))}
    r = write_rollouts(store, gsm8k, wanted, extra_ids=["ghost"], name=f"r{seed}")
    sel = run_passrate(store, r, gsm8k, "pool-sel", PassRateConfig())
    mat = run_passrate(store, r, gsm8k, "pool-mat", PassRateConfig(), MATERIALIZE)
    assert sel.selection is not None and sel.selection.columns  # counts stored, text not
    assert "input" not in sel.selection.columns
    assert read_table(store, sel).to_pylist() == read_table(store, mat).to_pylist()
    assert sel.fingerprint == mat.fingerprint and sel.stats == mat.stats
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(read_rejected(store, sel).to_pylist(), key=key) == \
        sorted(read_rejected(store, mat).to_pylist(), key=key)
    assert sel.rejected.by_reason == mat.rejected.by_reason and "unknown_prompt" in sel.rejected.by_reason
    config = CurriculumConfig(batch_size=4)
    cur_sel = run_curriculum(store, sel, "cur-sel", config)
    cur_mat = run_curriculum(store, mat, "cur-mat", config, MATERIALIZE)
    assert cur_sel.selection.base.ref == gsm8k.ref
    assert read_table(store, cur_sel).to_pylist() == read_table(store, cur_mat).to_pylist()
    assert cur_sel.fingerprint == cur_mat.fingerprint


def test_split_parts_are_selections_like_their_twins(store):
    from thinkforge.curation.split import SplitConfig, run_split

    data, _ = sft_pool(store, 17, 40)
    q = run_quality(store, data, "q")
    sel = run_split(store, q, "s", SplitConfig(validation=0.3))
    mat = run_split(store, q, "m", SplitConfig(validation=0.3), materialize=True)
    for part in ("train", "validation"):
        assert sel[part].selection.base.ref == data.ref and mat[part].selection is None
        assert read_table(store, sel[part]).to_pylist() == read_table(store, mat[part]).to_pylist()
        assert sel[part].fingerprint == mat[part].fingerprint


def test_mix_without_replacement_is_a_selection_like_its_twin(store, monkeypatch):
    from thinkforge.curation.mix import MixConfig, run_mix

    data, _ = sft_pool(store, 19, 40)
    q = run_quality(store, data, "q")
    sel = run_mix(store, q, "mix-sel", MixConfig(rows=20, replace=False))
    monkeypatch.setenv("THINKFORGE_MATERIALIZE", "1")
    mat = run_mix(store, q, "mix-mat", MixConfig(rows=20, replace=False))
    assert sel.selection is not None and mat.selection is None
    assert read_table(store, sel).to_pylist() == read_table(store, mat).to_pylist()
    assert sel.fingerprint == mat.fingerprint and sel.rejected.by_reason == mat.rejected.by_reason
    assert read_rejected(store, sel).select(read_rejected(store, mat).column_names).to_pylist() == \
        read_rejected(store, mat).to_pylist()


def test_sql_reads_a_pool_selection_and_its_mixed_rejected_rows(store, gsm8k):
    from thinkforge.filters.passrate import run_passrate
    from thinkforge.manifests.sql import run_sql

    from .conftest import prompt_ids, write_rollouts

    ids = prompt_ids(store, gsm8k)
    r = write_rollouts(store, gsm8k, {i: 8 if n % 2 else 3 for n, i in enumerate(ids[:10])},
                       extra_ids=["ghost"])
    pool = run_passrate(store, r, gsm8k, "pool")
    assert pool.selection.rejected is not None and pool.rejected.files  # both forms of rejected
    got = dict(run_sql(store, 'SELECT reason, count(*) FROM "pool@v1/rejected" GROUP BY ALL').rows())
    assert got == pool.rejected.by_reason
    assert list(run_sql(store, "SELECT count(*) FROM pool").rows()) == [(pool.rows,)]


def test_sql_reads_an_empty_selection_and_its_views(store):
    """An empty selection still joins the base's first shard (for the schema): the sandbox
    must let it read that shard (the demo's empty train split failed with a permission error)."""
    from thinkforge.curation.split import SplitConfig, run_split
    from thinkforge.manifests.sql import run_sql

    data, _ = sft_pool(store, 5, 12)
    q = run_quality(store, data, "q")
    parts = run_split(store, q, "s", SplitConfig(validation=0.0))
    empty = parts["validation"]
    assert empty.selection is not None and empty.rows == 0
    assert list(run_sql(store, f'SELECT count(*) FROM "{empty.ref}"').rows()) == [(0,)]
    assert list(run_sql(store, f'SELECT count(*) FROM "{empty.name}/rejected"').rows()) == [(0,)]
    store.verify(empty)  # the files it reads are the files verify and pull know about
