"""The merge of a partitioned step's selection (filters/partitioned.py): the partitions that
own a run of base positions check and digest their own kept rows
(``selection_parts.partition_facts``) and the publish combines them (``combine``) instead of
scanning the merged file; the version is the local one, byte for byte, in every case (rows
in or out of position order, a partition with no kept row, no kept row at all).

The partitions run here, in this process, through the very task a Dask worker runs
(``steps.run_partition_task``), then the driver's merge: no cluster needed to see the
bytes (tests/steps/test_dask_positions.py runs the same steps on one)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from thinkforge.manifests.errors import InputDataError

from tests.steps.test_dask_positions import _prompts, write_chunked


def _in_process(store, step_type, inputs, name, config, count, tmp_path):
    """``count`` partition tasks run one after the other here, then the merge."""
    from thinkforge.manifests.executor import plain
    from thinkforge.manifests.partitions import merge, position_ranges, split_keys
    from thinkforge.manifests.steps import build_config, load_steps, run_partition_task

    cfg = build_config(load_steps()[step_type].config_model(), config)
    keys = split_keys(store, step_type, inputs, cfg)
    assert keys
    ranges = position_ranges(store, keys, count) or [{}] * count
    out = tmp_path / f"parts-{name}"
    parts = [run_partition_task((type(store), str(store.root)), step_type,
                                {role: plain(v) for role, v in inputs.items()}, name, cfg, {},
                                keys, i, count, str(out), {}, (), ranges[i])
             for i in range(count)]
    return store.resolve(merge(store, parts, {}).ref)


def _local(store, step_type, inputs, name, config):
    from tests.steps.test_dask_executor import _run

    return _run(store, step_type, inputs, name, config)


def _same(store, local, merged):
    from tests.steps.test_dask_executor import _files

    assert merged.fingerprint == local.fingerprint
    assert _files(store, merged) == _files(store, local)  # the selection files' bytes too
    assert merged.stats == local.stats and merged.provenance == local.provenance
    assert merged.selection.used == local.selection.used
    assert merged.selection.ascending == local.selection.ascending


def _unordered(store, name: str, n: int, chunks: int):
    """Prompts whose ids are not in position order (``u10`` sorts before ``u2``): a
    selection in id order takes its positions out of order."""
    rows = [{"id": f"u{i}", "source": f"s{i % 3}", "category": "math",
             "input": [{"role": "user", "content": " ".join(f"w{i * 31 + k}" for k in range(12))}],
             "ground_truth": "1", "verifier": "math", "license": "MIT"} for i in range(n)]
    return write_chunked(store, name, rows, chunks)


def _bench(store, name: str, data, rows: range):
    """A benchmark whose items are the texts of ``data``'s rows ``rows``."""
    from thinkforge.manifests.selection import read_table

    table = read_table(store, data).slice(rows.start, len(rows))
    with store.writer(name, "prompts", step={"type": "import", "config": {}}) as w:
        w.write(table.set_column(0, "id", pa.array([f"b{i}" for i in rows])))
    return w.manifest


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("contaminated,count", [
    (range(3, 100, 7), 3),     # a few rows of every partition
    (range(0, 60), 2),         # every row of partition 0: it keeps none
    (range(0, 120), 2),        # every row: no partition keeps one
    (range(5, 9), 8),          # partitions of 15 rows, most without a hit
])
def test_partition_facts_combine_to_the_local_version(store, monkeypatch, tmp_path, ordered,
                                                      contaminated, count):
    import thinkforge.manifests.selection_parts as parts

    combined = []
    real = parts.combine
    monkeypatch.setattr(parts, "combine", lambda *a: combined.append(real(*a)) or combined[-1])
    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 4000)  # a few shards
    data = _prompts(store, "px", n=120, chunks=9) if ordered else _unordered(store, "ux", 120, 9)
    assert len(data.files) > 1
    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 1 << 30)
    inputs = {"data": data, "against": [_bench(store, "bx", data, contaminated)]}
    local = _local(store, "decontam", inputs, "dl", {"ngram": 3})
    merged = _in_process(store, "decontam", inputs, "dp", {"ngram": 3}, count, tmp_path)
    assert local.rejected.rows >= len(contaminated)
    assert local.selection.ascending == ordered or local.rows == 0
    _same(store, local, merged)
    assert len(combined) == 1 and combined[0] is not None  # the partitions' facts were used


def test_hash_split_is_checked_whole(store, versions, monkeypatch, tmp_path):
    """Partitions by key hash take positions anywhere in the base: they make no facts and
    the publish scans the merged file, as before."""
    import thinkforge.manifests.selection_parts as parts

    made = []
    real = parts.partition_facts
    monkeypatch.setattr(parts, "partition_facts", lambda *a: made.append(1) or real(*a))
    inputs = {"data": versions["sft"]}
    local = _local(store, "quality", inputs, "ql", {})
    merged = _in_process(store, "quality", inputs, "qp", {}, 2, tmp_path)
    assert not made
    _same(store, local, merged)


def test_all_partitions_empty_keep_the_local_schema(store, tmp_path):
    """Known gap, fixed: no partition keeps a row; the merged empty selection file has the
    local file's ``optional`` columns (the curriculum columns of a pass rate's pool), not
    the ``required`` an empty table proves."""
    from tests.steps.test_dask_positions import _straddling_rollouts

    inputs = _straddling_rollouts(store, ("off",))
    config = {"reasoning": "off", "min_samples": 100}  # every prompt rejected
    local = _local(store, "passrate", inputs, "pl", config)
    merged = _in_process(store, "passrate", inputs, "pp", config, 2, tmp_path)
    assert local.rows == 0 and local.rejected.rows > 0
    sel = pq.ParquetFile(store.version_dir(merged) / merged.selection.file.path).schema_arrow
    assert sel.field("curriculum_batch").nullable
    _same(store, local, merged)


# -- the facts themselves, against the publish's own checks ------------------------------------

def _positions(tmp_path, name: str, positions: list[tuple[int, int]]):
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table({"_shard": pa.array([s for s, _ in positions], pa.int32()),
                             "_row": pa.array([r for _, r in positions], pa.int64())}), path)
    return path


def _base(store, monkeypatch):
    from thinkforge.manifests.selection import base_of

    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 4000)
    m = _unordered(store, "base", 90, 6)
    info = base_of(store, m)
    assert len(info["base_files"]) >= 2
    return m, info


def test_facts_equal_the_whole_file_checks(store, monkeypatch, tmp_path):
    """Three runs' facts, combined in the merged file's order, give the scan's shard
    counts and order and the gathered digests; an empty partition adds nothing."""
    import duckdb
    from thinkforge.manifests.schemas import schema_for
    from thinkforge.manifests.selection import _offsets, scan_positions, selection_digests
    from thinkforge.manifests.selection_parts import combine, partition_facts

    _, info = _base(store, monkeypatch)
    sizes = [f.rows for f in info["base_files"]]
    at = [(s, r) for s, n in enumerate(sizes) for r in range(n)]  # every base position
    runs = [at[0:30:2], at[30:31], [], at[31:90:3][::-1]]  # the last run descending
    merged_order = runs[1] + runs[3] + runs[0]  # the merge's order: not the runs' order
    con = duckdb.connect()
    declared = [(0, 29), (30, 30), (0, 0), (31, 89)]  # each partition's run of positions
    facts = [partition_facts(con, store.root, _positions(tmp_path, f"p{i}", run), info,
                             schema_for("prompts"), [], declared[i], tmp_path / f"p{i}.digests")
             for i, run in enumerate(runs)]
    assert facts[2]["rows"] == 0 and facts[2]["digests"] is None
    merged = _positions(tmp_path, "merged", merged_order)
    got = combine(facts, merged, len(sizes), _offsets(info["base_files"]))
    used, ascending, dup, _, positions = scan_positions(merged, info["base_files"], keep=True)
    names = schema_for("prompts").names
    want = selection_digests(con, store, merged, info, used, names, [], positions)
    assert (got["used"], got["ascending"], got["repeated"]) == (used, ascending, dup)
    assert got["digests"].tobytes() == want and len(want) == 8 * len(merged_order)
    assert sum(sum(v.values()) for v in got["counts"].values()) == 3 * len(merged_order)
    starts = _offsets(info["base_files"])  # the row written i-th: id u<i>, source s<i % 3>
    assert got["counts"]["source"] == {
        f"s{k}": sum(1 for s, r in merged_order if (starts[s] + r) % 3 == k) for k in range(3)}
    # in position order: ascending, as the scan says
    ordered = _positions(tmp_path, "ordered", sorted(merged_order))
    assert combine(facts, ordered, len(sizes), _offsets(info["base_files"]))["ascending"]


def test_facts_catch_repeats_and_bad_positions(store, monkeypatch, tmp_path):
    import duckdb
    from thinkforge.manifests.schemas import schema_for
    from thinkforge.manifests.selection import _offsets
    from thinkforge.manifests.selection_parts import combine, partition_facts

    _, info = _base(store, monkeypatch)
    offsets = _offsets(info["base_files"])
    con = duckdb.connect()

    def facts(name, positions, run=(0, 9)):
        return partition_facts(con, store.root, _positions(tmp_path, name, positions), info,
                               schema_for("prompts"), [], run, tmp_path / f"{name}.digests")

    twice = facts("twice", [(0, 1), (0, 2), (0, 1)])
    assert twice["repeated"] == 1
    merged = _positions(tmp_path, "m1", [(0, 1), (0, 2), (0, 1)])
    assert combine([twice], merged, len(offsets) - 1, offsets)["repeated"] == 1
    outside = facts("outside", [(0, 1), (0, info["base_files"][0].rows)])
    assert "row outside its base shard" in outside["bad"]
    assert combine([outside, twice], merged, len(offsets) - 1, offsets)["bad"] == outside["bad"]
    assert "shard outside" in facts("shard", [(len(offsets) - 1, 0)])["bad"]
    # runs that overlap may repeat each other's rows: not combined (the scan decides)
    a, b = facts("a", [(0, 1), (0, 5)], (0, 5)), facts("b", [(0, 3)], (3, 3))
    assert combine([a, b], _positions(tmp_path, "m2", [(0, 1), (0, 3), (0, 5)]),
                   len(offsets) - 1, offsets) is None
    assert combine([a, None], merged, len(offsets) - 1, offsets) is None
    # a row outside the partition's own run: no facts, the merged file is checked whole
    assert facts("astray", [(0, 1), (0, 12)], (0, 9)) is None


def test_repeated_position_rejected_at_publish(store, monkeypatch, tmp_path):
    """The publish reports a repeat the partitions found, as its own scan would."""
    import duckdb
    from thinkforge.manifests.schemas import schema_for
    from thinkforge.manifests.selection import SELECTION_FILE
    from thinkforge.manifests.selection_parts import partition_facts

    m, info = _base(store, monkeypatch)
    twice = [(0, 1), (0, 2), (0, 1)]
    part = partition_facts(duckdb.connect(), store.root, _positions(tmp_path, "p", twice), info,
                           schema_for("prompts"), [], (0, 9), tmp_path / "p.digests")
    with pytest.raises(InputDataError, match="1 row.s. of the base selected twice"), \
            store.writer("rep", "prompts", step={"type": "filter.quality", "config": {}},
                         parents=[m]) as w:
        kept, _ = w.select(info, [], list(schema_for("prompts").names), [])
        pq.write_table(pq.read_table(tmp_path / "p.parquet"), kept)
        w.use_partition_facts([part])
        assert kept.name == SELECTION_FILE
