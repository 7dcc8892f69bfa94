"""A selection publish's position check, digests read and gather, cut into parts run on a
thread pool (manifests/selection_scan.py), find what one pass in file order finds: the same
marks, positions, order and repeats, and the first problem in file order, whichever part
runs first.  Parts are made small here (a few rows, files of several row groups) so that
every case spans several of them."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from thinkforge.manifests import selection_scan
from thinkforge.manifests.duck import connect
from thinkforge.manifests.errors import InputDataError
from thinkforge.manifests.manifest import FileEntry
from thinkforge.manifests.selection_scan import publish_pool, read_digests, scan_positions, take

SHARD_ROWS = [6, 10, 4]
BASE = [FileEntry(path=f"s{i}.parquet", rows=n, bytes=1, sha256="0" * 64)
        for i, n in enumerate(SHARD_ROWS)]
STARTS = [0, 6, 16]
EVERY = [(s, r) for s, n in enumerate(SHARD_ROWS) for r in range(n)]


@pytest.fixture(params=[False, True], ids=["in turn", "two threads"])
def pool(request, monkeypatch):
    monkeypatch.setattr(selection_scan, "PART_ROWS", 5)  # parts of two 3-row groups
    if not request.param:
        yield None
        return
    with ThreadPoolExecutor(2) as threads:
        yield threads


def written(tmp_path, positions, group_rows: int = 3):
    path = tmp_path / "selection.parquet"
    table = pa.table({"_shard": pa.array([s for s, _ in positions], pa.int32()),
                      "_row": pa.array([r for _, r in positions], pa.int64())})
    pq.write_table(table, path, row_group_size=group_rows)
    return path


def in_file_order(positions):
    """What the check must find, from the positions one by one."""
    pos = [STARTS[s] + r for s, r in positions]
    used = [sum(1 for s, _ in positions if s == i) for i in range(len(BASE))]
    ascending = all(b > a for a, b in zip(pos, pos[1:], strict=False))
    seen = [i in set(pos) for i in range(sum(SHARD_ROWS))]
    return used, ascending, len(pos) - len(set(pos)), seen, pos


def shuffled(seed: int):
    rows = list(EVERY)
    random.Random(seed).shuffle(rows)
    return rows


CASES = {
    "ascending, rows dropped": [p for i, p in enumerate(EVERY) if i % 4 != 1],
    # each part ascending on its own, the second part's positions below the first's
    "parts out of order": EVERY[6:12] + EVERY[:6] + EVERY[12:],
    "shuffled": shuffled(7),
    "a repeat in another part": EVERY[:14] + [EVERY[2]],
    "a repeat at a part boundary": EVERY[:6] + EVERY[5:10],
    "one row": [(2, 3)],
    "empty": [],
}


@pytest.mark.parametrize("case", CASES)
def test_parts_find_what_one_pass_finds(tmp_path, pool, case):
    positions = CASES[case]
    used, ascending, repeated, seen, kept = scan_positions(
        written(tmp_path, positions), BASE, keep=True, pool=pool)
    want = in_file_order(positions)
    assert (used, ascending, repeated, seen.tolist(), kept.tolist()) == want
    assert scan_positions(written(tmp_path, positions), BASE, pool=pool)[4] is None


@pytest.mark.parametrize("bad, match", [
    ({13: (1, 10)}, "row outside its base shard"),
    ({13: (3, 0)}, "shard outside its base"),
    ({1: (0, -1)}, "row outside its base shard"),
    ({13: (1, 10), 2: (5, 0)}, "shard outside its base"),  # the first in file order
    ({2: (1, 10), 13: (5, 0)}, "row outside its base shard"),
])
def test_the_first_bad_position_in_file_order_is_reported(tmp_path, pool, bad, match):
    positions = [bad.get(i, p) for i, p in enumerate(EVERY[:16])]
    with pytest.raises(InputDataError, match=match):
        scan_positions(written(tmp_path, positions), BASE, keep=True, pool=pool)


def test_a_missing_position_in_a_later_part_is_refused(tmp_path, pool):
    path = tmp_path / "selection.parquet"
    rows = [r for _, r in EVERY[:12]]
    rows[10] = None
    pq.write_table(pa.table({"_shard": pa.array([s for s, _ in EVERY[:12]], pa.int32()),
                             "_row": pa.array(rows, pa.int64())}), path, row_group_size=3)
    with pytest.raises(InputDataError, match="without a shard or row"):
        scan_positions(path, BASE, pool=pool)


def test_digests_read_in_parts_and_gathered(tmp_path, pool):
    digests = np.random.default_rng(3).integers(0, 2**63, 20, dtype=np.uint64) * np.uint64(2)
    path = tmp_path / "digests.parquet"
    pq.write_table(pa.table({"d": pa.array(digests, pa.uint64())}), path, row_group_size=3)
    base = read_digests(path, pool)
    assert base.dtype == np.uint64 and base.tolist() == digests.tolist()
    at = [STARTS[s] + r for s, r in shuffled(11)]
    want = digests[at].tolist()
    assert take(base, np.array(at, np.int64), pool).tolist() == want  # over the positions
    narrow = np.array(at, np.int32)  # another item size: a new array, the positions kept
    assert take(base, narrow, pool).tolist() == want and narrow.tolist() == at
    assert take(base, np.zeros(0, np.int64), pool).tolist() == []
    assert base.tolist() == digests.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_single_thread_connection_gets_no_threads(threads):
    con = connect(threads=threads)
    try:
        with publish_pool(con) as pool:
            assert (pool is None) == (threads == 1)
    finally:
        con.close()
