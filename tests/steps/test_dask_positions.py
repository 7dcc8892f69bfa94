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
    return write_chunked(store, name, rows, chunks)


def write_chunked(store, name: str, rows: list[dict], chunks: int):
    """A prompts version of ``rows`` written in ``chunks`` writes."""
    step = -(-len(rows) // chunks)
    with store.writer(name, "prompts", step={"type": "import", "config": {}}) as w:
        for lo in range(0, len(rows), step):
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


@pytest.mark.parametrize("tiny_shards", [False, True])
def test_decontam_reads_only_its_runs_texts(store, monkeypatch, tmp_path, tiny_shards):
    """A decontam partition split by position reads its texts straight from the shards (no
    SQL scan of the nested column): exactly its runs' rows, at their base positions, row
    groups cut where a run starts or ends inside one."""
    import duckdb
    from thinkforge.filters.decontam import _shard_texts
    from thinkforge.manifests.partitions import Partition, running

    if tiny_shards:
        monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 1)
    m = _prompts(store, "rt", n=100, chunks=7)
    con = duckdb.connect()
    for count in (2, 3):
        for part in position_ranges(store, {m.ref: "id"}, count):
            want = con.execute(
                f"SELECT __shard, __row, input[1].content FROM "
                f"{row_relation(store, m, positions=True, ordered=False, rows=part[m.ref])} "
                "ORDER BY 1, 2").fetchall()
            with running(Partition(count=count, index=0, keys={m.ref: "id"}, out=tmp_path,
                                   ranges=part)):
                got = [(shard, first + i, messages[0]["content"]) for shard, first, column in
                       _shard_texts(store, m, "input")
                       for i, messages in enumerate(column.to_pylist())]
            assert got == want
    with running(Partition(count=2, index=0, keys={m.ref: "id"}, out=tmp_path)):
        assert _shard_texts(store, m, "input") is None  # split by key hash: the SQL scan


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


def _straddling_rollouts(store, modes=("on", "off")):
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
            for j, p in enumerate([*ids[:10], "zz-unknown"]) for mode in modes
            for k in range(5)]
    with store.writer("st-prompts", "prompts", step={"type": "import", "config": {}}) as w:
        w.write([prompts[i * 5 % 12] for i in range(12)])  # positions not in id order
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
    """Pass rate's counts tasks over row-group runs (partial counts per prompt of the
    rollouts' runs), then the step on the driver over their sums: the local bytes and
    provenance."""
    import thinkforge.filters  # noqa: F401  (fills PHASED)
    from thinkforge.manifests.partitions import PHASED

    from tests.steps.test_dask_executor import _files, _run

    only_off = config.pop("only_off", False)
    inputs = _straddling_rollouts(store, ("off",) if only_off else ("on", "off"))
    calls = []
    phased = PHASED["passrate"]
    monkeypatch.setitem(PHASED, "passrate", lambda ph: calls.append(phased(ph)) or calls[-1])
    local = _run(store, "passrate", inputs, "st-local", config)
    if only_off:  # nothing to count: every prompt not sampled, no row kept or rejected
        assert local.rows == local.rejected.rows == 0 and local.provenance["not_sampled"] == 12
    else:
        assert local.rejected.rows > 0 and local.provenance["not_sampled"] == 2
    remote = _run(store, "passrate", inputs, "st-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": partitions})
    assert len(calls) == 1 and calls[0] is not None  # the phased path ran, not the hash split
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert not list((store.root / ".staging").glob("partitions-*"))


def test_passrate_counts_per_run_sum_to_the_whole(store, tmp_path):
    """Phase 1 writes one counts file per run of rollouts rows (per run of equal prompt
    ids, in row order); merged in task order, a prompt straddling two tasks is one row
    again, and the files are the whole counts (an unknown id too), as the driver's step
    reads them (``passrate.partial_counts_sql``); each task sees the generators."""
    import duckdb
    import pyarrow as pa
    from thinkforge.filters.partitioned_passrate import passrate_counts
    from thinkforge.filters.passrate import partial_counts_sql
    from thinkforge.filters.rollout_runs import merge_in_order
    from thinkforge.manifests.partitions import row_group_ranges

    inputs = _straddling_rollouts(store)
    rollouts = inputs["rollouts"]
    by_rollouts = row_group_ranges(store, rollouts, 2)
    made = [passrate_counts((type(store), str(store.root)), rollouts.ref, None, by_rollouts[i],
                            {"threads": 1}, str(tmp_path), i) for i in range(2)]
    assert all(m["generators"] == ["g0", "g1"] for m in made)
    con = duckdb.connect()
    whole = con.execute(f"SELECT prompt_id, count(*), count(correct), count(*) FILTER (WHERE "
                        f"correct) FROM {row_relation(store, rollouts)} GROUP BY ALL "
                        f"ORDER BY 1").fetchall()
    tables = [pa.ipc.open_file(m["path"]).read_all() for m in made]
    parts = [set(t.column("prompt_id").to_pylist()) for t in tables]
    assert parts[0] & parts[1]  # a prompt whose rollouts straddle the two runs
    merged = merge_in_order(tables)
    assert merged.num_rows == len(whole)  # grouped by prompt: one row each once merged
    con.register("runs", merged)
    summed = con.execute(f"{partial_counts_sql('runs')} ORDER BY 1").fetchall()
    assert summed == whole and any(r[0] == "zz-unknown" for r in summed)


def test_decontam_index_kept_for_the_next_partition(store, tmp_path, monkeypatch):
    """On a worker (inside a partition) the benchmark index is built once and reused by the
    next task naming the same benchmark contents; another benchmark rebuilds it; a local
    run neither keeps nor reuses it.  The tables a task joins with are the same either way."""
    import duckdb
    from thinkforge.filters import decontam
    from thinkforge.manifests.partitions import Partition, running

    bench = _prompts(store, "bi", n=12, chunks=1)
    other = _prompts(store, "bj", n=12, chunks=1, words=14)
    built = []
    real = decontam._benchmark_grams
    monkeypatch.setattr(decontam, "_benchmark_grams", lambda *a: built.append(1) or real(*a))
    monkeypatch.setattr(decontam, "_LAST_INDEX", {})
    step = decontam.step_config(decontam.DecontamConfig(ngram=3), [])

    def index(versions):
        con = duckdb.connect()
        kernels = decontam._kernels()
        if kernels is None:
            decontam.register(con)
        made = decontam._benchmark_index(con, store, versions, [], step, kernels)
        return (made, con.execute("SELECT * FROM items ORDER BY ALL").fetchall(),
                con.execute("SELECT * FROM bench_grams ORDER BY ALL").fetchall())

    whole = index([bench])
    index([bench])
    assert len(built) == 2 and not decontam._LAST_INDEX
    with running(Partition(count=2, index=0, keys={}, out=tmp_path)):
        first, again = index([bench]), index([bench])
        assert len(built) == 3 and again[0] is first[0]
        assert again[1:] == first[1:] == whole[1:] and len(whole[2]) > 0
        index([other])
        assert len(built) == 4


@pytest.mark.parametrize("threads", [1, 2])
def test_prefetched_one_thread_stays_in_the_caller(monkeypatch, threads):
    """A one-thread connection (a single-thread Dask worker) computes its batches in the
    calling thread, not in a second busy one; the batches are the same."""
    import duckdb
    from thinkforge.filters import overlap, text

    if threads == 1:
        monkeypatch.setattr(overlap, "ReadAhead", None)  # any use of a background reader fails
    con = duckdb.connect(config={"threads": threads})
    got = [b.column(0).to_pylist() for b in text.prefetched(
        con, "SELECT range AS x FROM range(250) ORDER BY x", 100)]
    assert [x for b in got for x in b] == list(range(250)) and len(got) >= 3
