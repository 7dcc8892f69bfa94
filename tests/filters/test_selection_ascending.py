"""Ascending selections (positions that only increase: the version keeps its base's order)
are read as a filter of the base scan (a bitmap of the selected positions, no join, no
sort) when no stored column is asked for.  Every read must give exactly the rows the join
gives, in the same order; shards kept whole, skipped shards and empty selections included;
a damaged base still breaks them loudly; a selection that names rows outside its base is
refused at publish."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import thinkforge.manifests.writer as writer_module
from thinkforge.filters.quality import run_quality
from thinkforge.manifests import DatasetStore, selection_scan
from thinkforge.manifests.errors import InputDataError, IntegrityError
from thinkforge.manifests.selection import base_of, read_table, row_relation

from .test_selection import MATERIALIZE, WORDS


def sorted_sft(store: DatasetStore, monkeypatch, shards: int = 3, per_shard: int = 12):
    """An SFT version written in key order over several shards (one per write)."""
    monkeypatch.setattr(writer_module, "SHARD_BYTES", 0)
    with store.writer("base", "sft", step={"type": "test"}) as w:
        for s in range(shards):
            rows = []
            for i in range(per_shard):
                k = s * per_shard + i
                mode = "on" if k % 2 == 0 else "off"
                good = k % 5 != 3  # every fifth row breaks the quality rules
                think = "<think>a b</think> " if mode == "on" and good else ""
                rows.append({"id": f"r{k:04d}", "prompt_id": f"p{k // 2}", "pair_id": f"p{k // 2}",
                             "category": "math", "reasoning": mode,
                             "system_prompt": f"detailed thinking {mode}",
                             "input": [{"role": "user", "content": " ".join(WORDS[:k % 7 + 2])}],
                             "output": think + (WORDS[k % 15] if good else ""),
                             "generator": "t", "output_tokens": k, "finish_reason": "stop"})
            w.write(rows)
    assert len(w.manifest.files) == shards
    return w.manifest


def joined(store, m, **kw) -> str:
    """The same version read through the join (as a selection that is not ascending)."""
    plain = m.model_copy(update={"selection": m.selection.model_copy(update={"ascending": False})})
    return row_relation(store, plain, **kw)


def rows(store, relation: str) -> list[dict]:
    from thinkforge.manifests.duck import connect

    con = connect()
    try:
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table().to_pylist()
    finally:
        con.close()


def test_a_filter_over_sorted_rows_is_ascending_and_reads_like_its_twin(store, monkeypatch):
    from thinkforge.manifests.sql import run_sql

    base = sorted_sft(store, monkeypatch)
    sel = run_quality(store, base, "q")
    twin = run_quality(store, base, "q-mat", resources=MATERIALIZE)
    assert sel.selection.ascending and 0 < sel.rows < base.rows
    assert "get_bit" in row_relation(store, sel) and "JOIN" not in row_relation(store, sel)
    assert read_table(store, sel).to_pylist() == read_table(store, twin).to_pylist()
    assert sel.fingerprint == twin.fingerprint and sel.stats == twin.stats
    for kw in ({}, {"positions": True}):
        assert rows(store, row_relation(store, sel, **kw)) == rows(store, joined(store, sel, **kw))
    kw = {"positions": True, "ordered": False}  # any order: the same rows

    def key(r):
        return r["__shard"], r["__row"]

    assert sorted(rows(store, row_relation(store, sel, **kw)), key=key) == \
        sorted(rows(store, joined(store, sel, **kw)), key=key)
    for query in ('SELECT * FROM "{}"', 'SELECT reasoning, count(*) FROM "{}" GROUP BY ALL ORDER BY 1',
                  'SELECT id, output FROM "{}" LIMIT 5'):
        assert list(run_sql(store, query.format(sel.ref)).rows()) == \
            list(run_sql(store, query.format(twin.ref)).rows())
    # a selection of the ascending selection is ascending too, and still reads like its twin
    again = run_quality(store, sel, "q2")
    assert again.selection.ascending and read_table(store, again).to_pylist() == \
        read_table(store, sel).to_pylist()


def publish_positions(store, base, name, positions, stored: dict | None = None,
                      row_group_size: int | None = None):
    """A selection of ``base`` at ``positions`` [(shard, row)], as a step would write it."""
    info = base_of(store, base)
    with store.writer(name, base.kind, step={"type": "test", "config": {"name": name}},
                      parents=[base]) as w:
        path, _ = w.select(info, list(stored or {}), [], [])
        table = {"_shard": pa.array([s for s, _ in positions], pa.int32()),
                 "_row": pa.array([r for _, r in positions], pa.int64()), **(stored or {})}
        pq.write_table(pa.table(table), path, row_group_size=row_group_size)
    return w.manifest


def test_shards_kept_whole_skipped_and_empty(store, monkeypatch):
    base = sorted_sft(store, monkeypatch)
    n = base.files[0].rows
    cases = {
        "whole-first": [(0, r) for r in range(n)] + [(1, 3), (1, 7)],  # shard 0 kept whole
        "skip-first": [(1, r) for r in range(n)] + [(2, 0), (2, n - 1)],  # shard 0 not read
        "only-last": [(2, r) for r in range(n)],
        "everything": [(s, r) for s in range(3) for r in range(n)],
        "empty": [],
    }
    for name, positions in cases.items():
        m = publish_positions(store, base, name, positions)
        assert m.selection.ascending and m.rows == len(positions), name
        want = [] if not positions else rows(store, joined(store, m, positions=True))
        assert [(r["__shard"], r["__row"]) for r in want] == positions, name
        assert rows(store, row_relation(store, m, positions=True)) == want, name
        assert sorted(rows(store, row_relation(store, m, positions=True, ordered=False)),
                      key=lambda r: (r["__shard"], r["__row"])) == want, name
    everything = store.resolve("everything")
    assert everything.fingerprint == base.fingerprint  # the same rows in the same order


def test_not_ascending_or_stored_columns_read_through_the_join(store, monkeypatch):
    base = sorted_sft(store, monkeypatch)
    backwards = publish_positions(store, base, "backwards", [(1, 2), (0, 5), (0, 1)])
    assert not backwards.selection.ascending and "get_bit" not in row_relation(store, backwards)
    assert read_table(store, backwards, ["id"]).column("id").to_pylist() == \
        [f"r{12 + 2:04d}", "r0005", "r0001"]
    labelled = publish_positions(store, base, "labelled", [(0, 1), (2, 4)],
                                 stored={"output_tokens": pa.array([7, 8], pa.int64())})
    assert labelled.selection.ascending
    assert "get_bit" not in row_relation(store, labelled)  # a stored column: the join
    assert read_table(store, labelled, ["id", "output_tokens"]).to_pylist() == \
        [{"id": "r0001", "output_tokens": 7}, {"id": "r0028", "output_tokens": 8}]


@pytest.mark.parametrize("positions, match", [
    ([(0, 1), (0, 12)], "row outside its base shard"),
    ([(3, 0)], "shard outside its base"),
    ([(0, -1)], "row outside its base shard"),
    ([(0, 2), (0, 2)], "selected twice"),
    ([(1, 2), (0, 2), (1, 2)], "selected twice"),
])
def test_positions_outside_the_base_or_repeated_are_refused(store, monkeypatch, positions, match):
    base = sorted_sft(store, monkeypatch)
    with pytest.raises(InputDataError, match=match):
        publish_positions(store, base, "bad", positions)
    assert store.names() == ["base"]


@pytest.mark.parametrize("order", ["ascending", "shards backwards"])
def test_a_selection_checked_in_parts_publishes_the_same_version(store, monkeypatch, order):
    """The publish's position check and digests cut into parts on threads
    (manifests/selection_scan.py) publish the version one pass publishes."""
    base = sorted_sft(store, monkeypatch)
    shards = (0, 1, 2) if order == "ascending" else (2, 0, 1)
    positions = [(s, r) for s in shards for r in range(12) if r % 3 != 1]
    whole = publish_positions(store, base, "whole", positions)
    monkeypatch.setattr(selection_scan, "PART_ROWS", 4)
    parts = publish_positions(store, base, "parts", positions, row_group_size=3)
    assert parts.fingerprint == whole.fingerprint and parts.stats == whole.stats
    assert parts.selection.used == whole.selection.used == [8, 8, 8]
    assert parts.selection.ascending == whole.selection.ascending == (order == "ascending")
    assert read_table(store, parts).to_pylist() == read_table(store, whole).to_pylist()


def test_a_damaged_base_breaks_an_ascending_selection(store, monkeypatch):
    from thinkforge.manifests.sql import run_sql

    base = sorted_sft(store, monkeypatch)
    sel = run_quality(store, base, "q")
    assert sel.selection.ascending
    shard = store.root / sel.selection.base_files[1].path
    original = shard.read_bytes()
    shard.write_bytes(original[:-10] + b"0123456789")  # same size, other bytes
    with pytest.raises(IntegrityError, match="sha256 of base shard"):
        store.verify(sel)
    with pytest.raises(IntegrityError, match="sha256 of base shard"):
        run_sql(store, 'SELECT count(*) FROM "q@v1"', verify=True)
    shard.write_bytes(original[:100])
    with pytest.raises(IntegrityError, match="base shard"):
        run_sql(store, 'SELECT count(*) FROM "q@v1"')
    shard.write_bytes(original)
    store.verify(sel)
