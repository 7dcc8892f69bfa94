import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
from thinkforge.filters.curriculum_plan import plan_batches
from thinkforge.filters.passrate import run_passrate
from thinkforge.manifests.selection import read_rejected, read_table  # noqa: F401

pools = st.integers(8, 48).flatmap(lambda b: st.tuples(
    st.just(b), st.lists(st.integers(b, 5 * b), min_size=4, max_size=9)))


def batch_means(plan):
    rates = np.linspace(1.0, 0.0, plan.shape[1])  # level 0 is the easiest
    return (plan * rates).sum(axis=1) / plan.sum(axis=1)


@settings(max_examples=150, deadline=None)
@given(pools, st.sampled_from([0.05, 0.1]))
@example((41, [41, 41, 197, 50]), 0.1)  # a straggler of level 2 once ended the curriculum
@example((12, [12, 12, 12, 49]), 0.1)  # a monotone plan whose tied hardest batches give rho -0.87
def test_trend_easy_to_hard(pool, sigma):
    batch_size, counts = pool
    plan = plan_batches(counts, batch_size, sigma)
    means = batch_means(plan)
    rho = spearmanr(np.arange(plan.shape[0]), means).statistic
    # a plan that never gets easier is the ideal trend, whatever ties do to rho
    monotone = bool((np.diff(means) <= 1e-12).all())
    assert monotone or rho <= -0.9, (counts, batch_size, sigma, rho, means)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.lists(st.integers(0, 200), min_size=1, max_size=12),
       st.floats(0.01, 2.0), st.sampled_from(["linear", "cosine"]))
def test_every_row_once_and_batches_full(batch_size, counts, sigma, schedule):
    plan = plan_batches(counts, batch_size, sigma, schedule)
    assert plan.sum(axis=0).tolist() == list(counts)  # every row exactly once
    sizes = plan.sum(axis=1)
    assert (sizes[:-1] == batch_size).all() and (0 < sizes[-1] <= batch_size if len(sizes) else True)


def test_default_on_a_balanced_pool_is_a_clear_trend():
    plan = plan_batches([300] * 6, 32)
    means = batch_means(plan)
    assert means[0] == 1.0 and means[-1] == 0.0
    assert spearmanr(np.arange(len(means)), means).statistic <= -0.97


@pytest.fixture
def pool(store, random_rollouts):
    from thinkforge.filters.passrate import PassRateConfig

    return run_passrate(store, random_rollouts, None, "pool", PassRateConfig(drop_at_or_above=None))


def read(store, m):
    return read_table(store, m)


def test_curriculum_version_rows_batches_positions(store, pool):
    m = run_curriculum(store, pool, "cur", CurriculumConfig(batch_size=16, seed=5))
    t = read(store, m)
    assert m.rows == pool.rows and sorted(t.column("id").to_pylist()) == sorted(
        read(store, pool).column("id").to_pylist())
    batches = t.column("curriculum_batch").to_pylist()
    positions = t.column("curriculum_position").to_pylist()
    assert batches == sorted(batches)  # written in curriculum order
    n_batches = -(-pool.rows // 16)
    for b in range(n_batches):
        pos = [p for bb, p in zip(batches, positions, strict=True) if bb == b]
        assert sorted(pos) == list(range(16 if b < n_batches - 1 else pool.rows - 16 * b))
    rates = t.column("pass_rate").to_numpy()
    means = [rates[np.array(batches) == b].mean() for b in range(n_batches)]
    assert spearmanr(np.arange(n_batches), means).statistic <= -0.9
    assert m.stats["curriculum_batches"] == n_batches
    assert m.provenance["batches"] == n_batches


def test_deterministic_for_a_seed_and_shuffled_by_another(store, pool):
    a = read(store, run_curriculum(store, pool, "a", CurriculumConfig(batch_size=16, seed=1)))
    b = read(store, run_curriculum(store, pool, "b", CurriculumConfig(batch_size=16, seed=1)))
    c = read(store, run_curriculum(store, pool, "c", CurriculumConfig(batch_size=16, seed=2)))
    assert a.equals(b)
    assert a.column("id").to_pylist() != c.column("id").to_pylist()


def test_out_of_core_pass_rate_and_curriculum(store, tmp_path, monkeypatch):
    """Pass rate + curriculum with a 48 MiB DuckDB limit on ~260 MB of (incompressible) rows.

    Row groups are made small as they are, relative to memory, in a real corpus (128 MiB
    row groups against tens of GiB): a Parquet row group is the unit DuckDB reads whole.
    """
    import os

    import thinkforge.manifests.writer as writer
    from thinkforge.filters.base import Resources, uncompressed_bytes
    from thinkforge.filters.passrate import PassRateConfig

    monkeypatch.setattr(writer, "ROW_GROUP_BYTES", 4 << 20)
    n, k = 40_000, 8
    blob = os.urandom(2_000_000).hex()  # random text: compression cannot hide the size

    def text(i, size):
        start = (i * 7919) % (len(blob) - size)
        return blob[start:start + size]

    ids = [f"p{i:06d}" for i in range(n)]
    prompts = pa.table({
        "id": ids, "source": ["synthetic"] * n, "category": ["math"] * n,
        "input": [[{"role": "user", "content": f"question {i} {text(i, 2500)}"}] for i in range(n)],
        "ground_truth": ["1"] * n, "verifier": ["math"] * n, "license": ["cc0"] * n,
        "metadata": ["{}"] * n})
    with store.writer("big", "prompts", step={"type": "test"}) as w:
        w.write(prompts)
    rng = np.random.default_rng(0)
    good = rng.integers(0, k + 1, size=n)
    sample = np.tile(np.arange(k), n)
    with store.writer("big-rollouts", "rollouts", step={"type": "test"}, parents=[w.manifest]) as wr:
        wr.write(pa.table({
            "prompt_id": np.repeat(ids, k), "sample": sample, "generator": ["g"] * (n * k),
            "reasoning": ["on"] * (n * k), "output": [text(j, 500) for j in range(n * k)],
            "correct": sample < np.repeat(good, k)}))
    limit = 48 << 20
    assert uncompressed_bytes(store, [w.manifest, wr.manifest]) > 4 * limit
    limits = Resources(memory_limit="48MiB", temp_directory=tmp_path / "spill", threads=1)
    pool = run_passrate(store, wr.manifest, None, "big-pool", PassRateConfig(), limits)
    assert pool.rows == int((good < 6).sum())  # 6/8 = 0.75 and above dropped
    assert pool.rejected.by_reason == {"too_easy": int((good >= 6).sum())}
    assert uncompressed_bytes(store, [pool]) > limit
    cur = run_curriculum(store, pool, "big-cur", CurriculumConfig(batch_size=1000), limits)
    t = read_table(store, cur, ["curriculum_batch", "pass_rate"])
    batches = t.column("curriculum_batch").to_numpy()
    assert cur.rows == pool.rows and (np.diff(batches) >= 0).all()  # shards in curriculum order
    means = t.group_by("curriculum_batch").aggregate([("pass_rate", "mean")]) \
        .sort_by("curriculum_batch").column("pass_rate_mean").to_numpy()
    assert spearmanr(np.arange(len(means)), means).statistic <= -0.9


def test_sorting_on_hashes_alone_equals_sorting_with_the_id_last():
    """sort_by_hash skips the id as the last sort key unless two rows' hash keys tie (a
    collision, forced here by a hash of 3 values): the order is always (keys..., id)."""
    from thinkforge.filters.curriculum import sort_by_hash
    from thinkforge.manifests.duck import connect

    con = connect()
    try:
        con.execute("SET preserve_insertion_order=true")
        con.execute("CREATE TABLE rows AS SELECT 'r' || (range * 7919 % 1000)::VARCHAR AS id, "
                    "(range % 4)::DOUBLE / 4 AS level_rate FROM range(1000)")
        for h, ties in (("hash(? || id)", False), ("hash(? || id) % 3", True)):
            for table in ("fast", "want"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            select = f"SELECT id, level_rate, {h} AS h FROM rows"
            sort_by_hash(con, "fast", select, "level_rate DESC, h", ("level_rate", "h"), ["s"])
            con.execute(f"CREATE TABLE want AS {select} ORDER BY level_rate DESC, h, id", ["s"])
            got = con.execute("SELECT id FROM fast").fetchall()
            assert got == con.execute("SELECT id FROM want").fetchall()
            distinct = con.execute("SELECT count(DISTINCT (level_rate, h)) FROM fast").fetchall()
            assert ties == (distinct[0][0] < 1000)
    finally:
        con.close()


@pytest.mark.parametrize("seed", [0, 7])
def test_numpy_placement_writes_the_sql_placements_bytes(store, pool, monkeypatch, seed):
    """The placement in numpy (the default while the pool fits half the memory limit) and
    the SQL placement (two DuckDB sorts) write the same selection file, byte for byte."""
    import thinkforge.filters.curriculum as curriculum

    config = CurriculumConfig(batch_size=16, seed=seed)
    placed, numpy_placement = [], curriculum._placed_in_numpy
    monkeypatch.setattr(curriculum, "_placed_in_numpy",
                        lambda *a: placed.append(numpy_placement(*a)) or placed[-1])
    fast = run_curriculum(store, pool, "fast", config)
    assert len(placed) == 1 and placed[0] is not None  # placed in numpy
    monkeypatch.setattr(curriculum, "PLACE_BYTES", 1 << 62)  # nothing fits: the SQL path
    slow = run_curriculum(store, pool, "slow", config)
    assert len(placed) == 1
    assert fast.fingerprint == slow.fingerprint
    assert fast.selection.file.sha256 == slow.selection.file.sha256
    assert read(store, fast).equals(read(store, slow))


def test_rows_placed_in_order_write_the_sorted_writes_bytes(store, pool, monkeypatch):
    """The pool's rows fetched and put in curriculum order in numpy (an Arrow table, its
    bucket as codes; written without a sort) and the rows joined to their batch and
    position by file position (sorted by the write) give the same selection file."""
    import thinkforge.filters.curriculum as curriculum

    config = CurriculumConfig(batch_size=16, seed=5)
    in_order, registered = [], curriculum._in_order
    monkeypatch.setattr(curriculum, "_in_order",
                        lambda *a: in_order.append(registered(*a)) or in_order[-1])
    fast = run_curriculum(store, pool, "fast", config)
    assert len(in_order) == 1  # written in the order it came
    monkeypatch.setattr(curriculum, "_string_codes", lambda *a: None)  # not fetched: sorted
    slow = run_curriculum(store, pool, "slow", config)
    assert len(in_order) == 1
    assert fast.fingerprint == slow.fingerprint
    assert fast.selection.file.sha256 == slow.selection.file.sha256
    assert read(store, fast).equals(read(store, slow))


def test_numpy_placement_gives_way_on_a_hash_collision():
    """Two rows of one level with the same hash (or of one batch with the same position
    hash) can only be ordered by their id: the numpy placement declines, the SQL sorts on it."""
    from thinkforge.filters.curriculum import place

    level = np.array([0, 0, 1, 1], dtype=np.int16)
    distinct = np.array([4, 3, 2, 1], dtype=np.uint64)
    order, batch = place(level, distinct, distinct, [0, 2], [0, 1])
    assert order.tolist() == [1, 0, 3, 2] and batch.tolist() == [0, 0, 1, 1]
    assert place(level, np.array([5, 5, 1, 2], dtype=np.uint64), distinct, [0, 2], [0, 1]) is None
    assert place(level, np.array([5, 6, 5, 6], dtype=np.uint64), distinct, [0, 2], [0, 1]) is not None
    assert place(level, distinct, np.array([9, 9, 1, 2], dtype=np.uint64), [0, 2], [0, 1]) is None


def test_hashes_picked_from_the_base_write_the_joined_hashes_bytes(store, monkeypatch):
    """The pool's seeded hashes taken over its base's rows and picked at each row's position
    (no join for the ids) write what the hashes of the joined ids write, over a base of three
    shards of which the pool uses the first and the last (the middle one never sampled)."""
    import thinkforge.filters.curriculum as curriculum
    import thinkforge.manifests.writer as writer
    from thinkforge.filters.passrate import PassRateConfig

    from .conftest import write_rollouts

    monkeypatch.setattr(writer, "SHARD_BYTES", 0)  # every write a shard of its own
    ids = [f"q{i:03d}" for i in range(90)]
    with store.writer("three", "prompts", step={"type": "test"}) as w:
        for part in range(3):
            chunk = ids[30 * part:30 * (part + 1)]
            w.write(pa.table({
                "id": chunk, "source": ["s"] * 30, "category": ["math"] * 30,
                "input": [[{"role": "user", "content": f"question {i}"}] for i in chunk],
                "ground_truth": ["1"] * 30, "verifier": ["math"] * 30, "license": ["cc0"] * 30,
                "metadata": ["{}"] * 30}))
    assert len(w.manifest.files) == 3
    sampled = {pid: i % 9 for i, pid in enumerate(ids) if not 30 <= i < 60}
    pool = run_passrate(store, write_rollouts(store, w.manifest, sampled), None, "pool",
                        PassRateConfig(drop_at_or_above=None))
    assert pool.selection.used == [30, 0, 30]
    picked, gathered_keys = [], curriculum._gathered_keys
    monkeypatch.setattr(curriculum, "_gathered_keys",
                        lambda *a: picked.append(gathered_keys(*a)) or picked[-1])
    config = CurriculumConfig(batch_size=8, seed=3)
    fast = run_curriculum(store, pool, "fast", config)
    assert len(picked) == 1 and picked[0] is not None  # the hashes picked from the base's
    monkeypatch.setattr(curriculum, "_gathered_keys", lambda *a: None)  # the join's ids
    slow = run_curriculum(store, pool, "slow", config)
    assert fast.fingerprint == slow.fingerprint
    assert fast.selection.file.sha256 == slow.selection.file.sha256
    assert read(store, fast).equals(read(store, slow))


@pytest.mark.parametrize("threads", [2, 3])
def test_placement_on_threads_equals_one_thread(threads):
    """The runs (levels; blocks of full batches) sorted on several threads give the one-thread
    order and batches, whether the runs are of one size or not."""
    from thinkforge.filters.curriculum import place

    rng = np.random.default_rng(threads)
    n = 5_003
    level = rng.integers(0, 7, size=n).astype(np.int16)
    h, hp = (rng.integers(0, 2**63, size=n).astype(np.uint64) for _ in range(2))
    first_rank = list(range(0, n, 64))  # batches of 64 rows, the last one short
    batch_of = list(range(len(first_rank)))
    one = place(level, h, hp, first_rank, batch_of)
    many = place(level, h, hp, first_rank, batch_of, threads)
    assert one is not None and many is not None
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def test_fetched_columns_are_the_querys_numbers_or_none():
    """``_fetch`` reads a query's numeric columns from Arrow's buffers, over several chunks
    and at an offset; a column with a NULL, or of another type, comes back as None."""
    import duckdb
    from thinkforge.filters.curriculum import _fetch
    from thinkforge.manifests.arrow_numpy import numbers

    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order=true")
        got = _fetch(con, "SELECT range AS i, (range % 7)::SMALLINT AS s, hash(range) AS h, "
                          "range / 3 AS f, CASE WHEN range = 5 THEN NULL ELSE range END AS n, "
                          "range % 2 = 0 AS b FROM range(?)", [300_000])
        want = np.arange(300_000)
        assert np.array_equal(got["i"], want) and np.array_equal(got["s"], want % 7)
        assert got["s"].dtype == np.int16 and got["h"].dtype == np.uint64
        assert np.array_equal(got["h"], con.execute("SELECT hash(range) AS h FROM range(300000)")
                              .fetchnumpy()["h"])
        assert np.allclose(got["f"], want / 3)
        assert got["n"] is None and got["b"] is None
        sliced = con.sql("SELECT range::BIGINT AS x FROM range(10)").to_arrow_table() \
            .column(0).chunk(0).slice(3, 4)
        assert numbers(sliced).tolist() == [3, 4, 5, 6]
    finally:
        con.close()
