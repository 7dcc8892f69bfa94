"""Filters split by row position (``partitions.position_ranges``): a step over one version
whose rows are their own documents (prompts by ``id``) gives each Dask task a contiguous
run of rows (the same number each), read through ``row_relation(rows=...)`` (``file_row_number``
ranges), instead of every task reading and hashing every row; the merged version is the
local one."""

from __future__ import annotations

import pytest
from thinkforge.manifests.partitions import position_ranges
from thinkforge.manifests.selection import row_relation


def _prompts(store, name: str, n: int = 90, chunks: int = 7, words: int = 12):
    """A prompts version written in ``chunks`` writes (one row group each, or one shard
    each when the writer's shard size is tiny); every 9th text repeats an earlier one."""
    rows = [{"id": f"{name[:2]}{i:04d}", "source": "t", "category": "math",
             "input": [{"role": "user", "content": " ".join(
                 f"w{(i - i % 9 if i % 9 == 4 else i) * 31 + k}" for k in range(words))}],
             "ground_truth": "1", "verifier": "math", "license": "MIT"} for i in range(n)]
    step = -(-n // chunks)
    with store.writer(name, "prompts", step={"type": "import", "config": {}}) as w:
        for lo in range(0, n, step):
            w.write(rows[lo:lo + step])
    return w.manifest


@pytest.mark.parametrize("tiny_shards", [False, True])
@pytest.mark.parametrize("count", [2, 3, 8])
def test_position_ranges_cover_every_row_once(store, monkeypatch, tiny_shards, count):
    import duckdb

    if tiny_shards:
        monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 1)
    m = _prompts(store, "pos")
    assert len(m.files) == (7 if tiny_shards else 1)
    parts = position_ranges(store, {m.ref: "id"}, count)
    assert parts is not None and len(parts) == count
    con = duckdb.connect()
    every = con.execute(f"SELECT id, __shard, __row FROM "
                        f"{row_relation(store, m, positions=True, ordered=False)}").fetchall()
    seen = []
    for part in parts:
        runs = part[m.ref]
        assert runs == sorted(runs) and all(lo < hi for _, lo, hi in runs)
        assert len({shard for shard, *_ in runs}) == len(runs)  # one run per shard
        seen += con.execute(f"SELECT id, __shard, __row FROM "
                            f"{row_relation(store, m, positions=True, ordered=False, rows=runs)}"
                            ).fetchall()
        ids = con.execute(f"SELECT id FROM {row_relation(store, m, rows=runs)}").fetchall()
        assert ids == sorted(ids)  # in version order (written in id order)
    assert sorted(seen) == sorted(every) and len(seen) == len(every) == 90
    sizes = [sum(hi - lo for _, lo, hi in p[m.ref]) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # the same rows each


def test_hash_split_where_rows_must_group(store, versions):
    """Two versions that must split alike, a grouping key or a selection: by key hash."""
    assert position_ranges(store, {versions["rollouts"].ref: "prompt_id",
                                   versions["prompts"].ref: "id"}, 2) is None
    assert position_ranges(store, {versions["sft"].ref: "prompt_id"}, 2) is None
    assert position_ranges(store, {versions["prompts"].ref: "id"}, 1) is None
    pool = next((m for m in versions.values() if m.selection is not None), None)
    if pool is not None:
        assert position_ranges(store, {pool.ref: "id"}, 2) is None


pytest.importorskip("distributed")


@pytest.mark.parametrize("step_type,config,partitions,resources", [
    ("decontam", {"ngram": 3}, 3, {}),
    ("dedup", {}, 3, {}),                      # near + exact: its phased path
    ("dedup", {"near": False}, 2, {}),         # exact: by the dedup key's hash
    ("decontam", {"ngram": 3}, 2, {"materialize": True}),
])
def test_split_by_position_equals_local(store, cluster, monkeypatch, step_type, config,
                                        partitions, resources):
    from tests.steps.test_dask_executor import _files, _run

    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 4000)  # a few shards
    data = _prompts(store, "px", n=120, chunks=9)
    inputs = {"data": data}
    if step_type == "decontam":
        inputs["against"] = [_prompts(store, "bx", n=12, chunks=1)]
    local = _run(store, step_type, inputs, f"{step_type}-pl", config, resources)
    remote = _run(store, step_type, inputs, f"{step_type}-pd", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": partitions, **resources})
    assert local.rejected.rows > 0
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert not list((store.root / ".staging").glob("partitions-*"))


def _straddling_rollouts(store):
    """12 prompts (2 never sampled), 5 rollouts each in both modes, written in 4 chunks
    (row groups) so that a prompt's rollouts straddle two tasks' runs, and the rollouts of
    a prompt id no prompt has (unknown_prompt)."""
    ids = [f"r{i:03d}" for i in range(12)]
    prompts = [{"id": i, "source": "t", "category": "math",
                "input": [{"role": "user", "content": f"question {i}?"}], "ground_truth": "1",
                "verifier": "math", "license": "MIT"} for i in ids]
    rows = [{"prompt_id": p, "sample": k, "generator": f"g{k % 2}", "reasoning": mode,
             "output": "1", "answer": "1", "correct": None if (j + k) % 7 == 0 else (j * k) % 3 == 0,
             "format_ok": True, "reward": 0.0, "output_tokens": 1, "finish_reason": "stop"}
            for j, p in enumerate([*ids[:10], "zz-unknown"]) for mode in ("on", "off")
            for k in range(5)]
    with store.writer("st-prompts", "prompts", step={"type": "import", "config": {}}) as w:
        w.write(prompts)
    with store.writer("st-rollouts", "rollouts", step={"type": "import", "config": {"k": 5}},
                      parents=[w.manifest]) as r:
        for lo in range(0, len(rows), 29):
            r.write(rows[lo:lo + 29])
    return {"rollouts": r.manifest, "prompts": w.manifest}


@pytest.mark.parametrize("config,partitions", [
    ({}, 3),
    ({"drop_at_or_above": None, "reasoning": "off", "min_samples": 3}, 2),
])
def test_passrate_by_position_equals_local(store, cluster, monkeypatch, config, partitions):
    """Pass rate in two phases of tasks over row-group runs (partial counts per prompt of
    the rollouts' runs, then the step per run of prompts): the local bytes and provenance."""
    import thinkforge.filters  # noqa: F401  (fills PHASED)
    from thinkforge.manifests.partitions import PHASED

    from tests.steps.test_dask_executor import _files, _run

    inputs = _straddling_rollouts(store)
    calls = []
    phased = PHASED["passrate"]
    monkeypatch.setitem(PHASED, "passrate", lambda ph: calls.append(phased(ph)) or calls[-1])
    local = _run(store, "passrate", inputs, "st-local", config)
    assert local.rejected.rows > 0 and local.provenance["not_sampled"] == 2
    remote = _run(store, "passrate", inputs, "st-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": partitions})
    assert len(calls) == 1 and calls[0] is not None  # the phased path ran, not the hash split
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert not list((store.root / ".staging").glob("partitions-*"))
