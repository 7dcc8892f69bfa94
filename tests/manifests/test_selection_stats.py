"""selection_stats.base_counts: the by_<column> counts a selection's publish takes from the
base's dictionary codes equal DuckDB's GROUP BY over the same rows (the SQL path of
compute_stats), with NULLs, a real '<null>' value, non-ASCII keys, several row groups with
different dictionaries and several shards, one of them unused, and columns of one value per
row group (counted without reading the codes) or of NULLs only."""

from __future__ import annotations

import random

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from thinkforge.manifests.selection_stats import base_counts

VALUES = ["math", "code", "<null>", "Ärger", "zeta", "ß", "a b", None]


def _sql_counts(paths, seen, offsets, column):
    con = duckdb.connect()
    try:
        rows = []
        for i, p in enumerate(paths):
            if p is None:
                continue
            got = con.execute(f"SELECT {column} FROM read_parquet('{p}', file_row_number=true) "
                              "ORDER BY file_row_number").fetchall()
            rows += [v for (v,), keep in zip(got, seen[offsets[i]:offsets[i + 1]], strict=True)
                     if keep]
        con.execute("CREATE TABLE t (c VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?)", [[v] for v in rows])
        return dict(con.execute("SELECT coalesce(c::VARCHAR, '<null>') AS k, count(*) FROM t "
                                "GROUP BY k ORDER BY k").fetchall())
    finally:
        con.close()


def test_base_counts_equal_duckdb_group_by(tmp_path):
    rng = random.Random(7)
    paths, offsets = [], [0]
    for shard in range(3):
        n = 700 + shard * 50
        # each row group draws from a different subset: different dictionaries per chunk
        table = pa.table({"category": [rng.choice(VALUES[(i // 256) % 3:]) for i in range(n)],
                          "source": [rng.choice(VALUES[:2]) for _ in range(n)],
                          # one value in each row group (another in the next), one in all, none
                          "verifier": [VALUES[(i // 256 + shard) % 4] for i in range(n)],
                          "license": ["cc0"] * n, "generator": pa.nulls(n, pa.string())})
        path = tmp_path / f"part-{shard}.parquet"
        pq.write_table(table, path, row_group_size=256)
        paths.append(path)
        offsets.append(offsets[-1] + n)
    seen = np.array([rng.random() < 0.6 for _ in range(offsets[-1])])
    seen[offsets[1]:offsets[2]] = False  # a shard the selection does not use
    paths[1] = None
    columns = ["category", "source", "verifier", "license", "generator"]
    got = base_counts(paths, offsets, seen, columns)
    for column in columns:
        want = _sql_counts(paths, seen, offsets, column)
        assert got[column] == want and list(got[column]) == list(want)
    assert sum(got["category"].values()) == int(seen.sum())


def test_base_counts_of_no_rows(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"category": ["a", None]}), path)
    assert base_counts([path], [0, 2], np.zeros(2, bool), ["category"]) == {"category": {}}
