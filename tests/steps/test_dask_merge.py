"""The merge of a partitioned step's selection (filters/partitioned.py): the version is the
local one, byte for byte, in every case (rows in or out of position order, a partition
with no kept row, no kept row at all, a split by key hash).

The partitions run here, in this process, through the very task a Dask worker runs
(``steps.run_partition_task``), then the driver's merge: no cluster needed to see the
bytes (tests/steps/test_dask_positions.py runs the same steps on one)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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

    table = read_table(store, data).take(list(rows))
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
def test_position_split_merges_to_the_local_version(store, monkeypatch, tmp_path, ordered,
                                                     contaminated, count):
    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 4000)  # a few shards
    data = _prompts(store, "px", n=120, chunks=9) if ordered else _unordered(store, "ux", 120, 9)
    assert len(data.files) > 1
    monkeypatch.setattr("thinkforge.manifests.writer.SHARD_BYTES", 1 << 30)
    inputs = {"data": data, "against": [_bench(store, "bx", data, contaminated)]}
    from thinkforge.filters import partition_runs

    written = []  # partitions that kept rows and rejected some: their kept rows as runs
    real = partition_runs.note_kept_runs
    monkeypatch.setattr(partition_runs, "note_kept_runs",
                        lambda *a: written.append(1) or real(*a))
    local = _local(store, "decontam", inputs, "dl", {"ngram": 3})
    merged = _in_process(store, "decontam", inputs, "dp", {"ngram": 3}, count, tmp_path)
    assert local.rejected.rows >= len(contaminated)
    assert local.selection.ascending == ordered or local.rows == 0
    # every partition has hits and kept rows / none keeps a row or has a hit and keeps one
    assert len(written) == {3: 3, 2: 0, 8: 1}[count]
    _same(store, local, merged)


def test_too_many_verdicts_to_list_read_the_runs(store, monkeypatch, tmp_path):
    """More matched rows than an IN list names (``partition_runs.MAX_LISTED``): a partition
    reads its rejected rows from its whole runs, as before; the same version."""
    from thinkforge.filters import partition_runs

    data = _unordered(store, "um", 120, 9)
    inputs = {"data": data, "against": [_bench(store, "bm", data, range(3, 100, 7))]}
    listed = []
    real = partition_runs.rows_at
    monkeypatch.setattr(partition_runs, "MAX_LISTED", 1)
    monkeypatch.setattr(partition_runs, "rows_at", lambda *a: listed.append(real(*a)) or listed[-1])
    local = _local(store, "decontam", inputs, "ml", {"ngram": 3})
    merged = _in_process(store, "decontam", inputs, "mp", {"ngram": 3}, 3, tmp_path)
    assert listed == [None, None, None] and local.rejected.rows > 3
    _same(store, local, merged)


def test_hash_split_merges_to_the_local_version(store, versions, tmp_path):
    """Partitions by key hash take positions anywhere in the base."""
    inputs = {"data": versions["sft"]}
    local = _local(store, "quality", inputs, "ql", {})
    merged = _in_process(store, "quality", inputs, "qp", {}, 2, tmp_path)
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
