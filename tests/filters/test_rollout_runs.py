"""Rollouts counted per run of equal prompt ids (filters/rollout_runs.py): the counts of
DuckDB's aggregate whatever the row order, and the same pass rate version either way."""

from __future__ import annotations

import hashlib
import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from thinkforge.filters.passrate import PassRateConfig, run_passrate
from thinkforge.filters.rollout_runs import beside_prompts, counts_by_runs, merge_in_order
from thinkforge.manifests.selection import read_rejected, read_table

from .conftest import prompt_ids


def _rows(ids, seed=0, passes=1):
    """6-12 rollouts per prompt id, grouped by prompt; ``passes`` > 1: the ids again after
    the first pass (a prompt then has one run per pass)."""
    rng = random.Random(seed)
    return [{"prompt_id": p, "correct": rng.choice([True, False, None]),
             "reasoning": rng.choice(["on", "off"]), "generator": rng.choice(["g2", "g1"])}
            for _ in range(passes) for p in ids for _ in range(rng.randint(6, 12))]


def _files(tmp_path, rows, parts=2, row_group_size=7):
    """Parquet shards of ``rows`` in their order, small row groups (prompts straddle them)."""
    table, paths, step = pa.Table.from_pylist(rows), [], -(-len(rows) // parts)
    for i in range(parts):
        paths.append(str(tmp_path / f"r{i}.parquet"))
        pq.write_table(table.slice(i * step, step), paths[-1], row_group_size=row_group_size)
    return paths


def _aggregate(paths, reasoning=None, where="true"):
    mode = f"reasoning = '{reasoning}'" if reasoning else "true"
    return duckdb.connect().execute(
        "SELECT prompt_id, count(*), count(correct), count(*) FILTER (WHERE correct) "
        f"FROM read_parquet(?, file_row_number=true) WHERE {mode} AND {where} GROUP BY 1 "
        "ORDER BY 1", [paths]).fetchall()


def _summed(runs: pa.Table):
    con = duckdb.connect()
    con.register("runs", runs)
    return con.execute("SELECT prompt_id, sum(n_rollouts), sum(n_samples), sum(n_correct) "
                       "FROM runs GROUP BY 1 ORDER BY 1").fetchall()


def test_runs_straddling_row_groups_and_shards_are_joined(tmp_path):
    ids = [f"p{i}" for i in range(40)]
    paths = _files(tmp_path, _rows(ids))
    assert any(pq.ParquetFile(p).metadata.row_group(0).num_rows == 7 for p in paths)
    for reasoning in (None, "off"):
        made = counts_by_runs(paths, reasoning=reasoning, generators=True, threads=2)
        whole = _aggregate(paths, reasoning)
        assert made.table.num_rows == len(whole)  # one run a prompt: every cut joined again
        assert _summed(made.table) == whole
        assert made.generators == {"g1", "g2"}  # of every row, whatever the mode
    # a range of rows (a Dask task's), cut inside a prompt's rollouts, then merged in order
    rows = pq.ParquetFile(paths[0]).metadata.num_rows
    cut = [[(0, 0, 25)], [(0, 25, rows), (1, 0, 40)]]
    tables = [counts_by_runs(paths, rows=r).table for r in cut]
    assert tables[0].column("prompt_id")[-1] == tables[1].column("prompt_id")[0]
    assert _summed(merge_in_order(tables)) == _aggregate(
        paths, where="file_index = 0 OR file_row_number < 40")


def test_rollouts_not_grouped_by_prompt_count_the_same(tmp_path):
    ids = [f"p{i}" for i in range(40)]
    paths = _files(tmp_path, _rows(ids, passes=2))
    twice = counts_by_runs(paths)
    assert twice.table.num_rows == 2 * len(ids)  # a run a pass: the aggregate sums them
    assert _summed(twice.table) == _aggregate(paths)
    shuffled = _rows(ids)
    random.Random(1).shuffle(shuffled)
    assert counts_by_runs(_files(tmp_path, shuffled)) is None  # a run a row: DuckDB's turn
    table = pa.Table.from_pylist([{"prompt_id": None, "correct": True}])
    pq.write_table(table, tmp_path / "n.parquet")
    assert counts_by_runs([str(tmp_path / "n.parquet")]) is None  # a NULL prompt id


def _rollouts(store, prompts, rows, name):
    full = [{"sample": i, "output": "o", "answer": "1", "format_ok": True, "reward": 0.0,
             "output_tokens": 1, "finish_reason": "stop", **r} for i, r in enumerate(rows)]
    with store.writer(name, "rollouts", step={"type": "test.rollouts", "config": {}},
                      parents=[prompts]) as w:
        w.write(full)
    return w.manifest


def _published(store, m):
    """What a version holds, whatever its inputs: rows, rejections, files' sha256."""
    files = {p.relative_to(store.version_dir(m)).as_posix():
             hashlib.sha256(p.read_bytes()).hexdigest()
             for p in store.version_dir(m).rglob("*.parquet")}
    return (sorted(read_table(store, m).to_pylist(), key=lambda r: r["id"]),
            sorted(read_rejected(store, m).to_pylist(), key=lambda r: r["id"]), m.stats,
            m.provenance["samples_per_prompt_observed"], m.provenance["generators_observed"],
            files)


def test_pass_rate_the_same_whatever_the_rollouts_order(store, gsm8k):
    in_order = [r for path in store.shard_paths(gsm8k)
                for r in pq.ParquetFile(path).read(columns=["id"]).column(0).to_pylist()]
    assert sorted(in_order) == prompt_ids(store, gsm8k)
    rows, twice = _rows(in_order, seed=4), _rows(in_order, seed=5, passes=2)
    versions = {"prompt order": rows, "shuffled": list(rows), "two passes": twice,
                "two passes shuffled": list(twice)}
    for i, key in enumerate(("shuffled", "two passes shuffled")):
        random.Random(i).shuffle(versions[key])
    versions = {k: _rollouts(store, gsm8k, v, f"r{i}") for i, (k, v) in enumerate(versions.items())}
    paths = {k: [str(p) for p in store.shard_paths(m)] for k, m in versions.items()}
    runs = counts_by_runs(paths["prompt order"])
    shards = [str(p) for p in store.shard_paths(gsm8k)]
    assert beside_prompts(runs.table, shards, [f.rows for f in gsm8k.files]) is not None
    assert counts_by_runs(paths["shuffled"]) is None
    assert counts_by_runs(paths["two passes"]).table.num_rows == 2 * len(in_order)
    pools = {k: _published(store, run_passrate(store, m, gsm8k, f"pool-{i}"))
             for i, (k, m) in enumerate(versions.items())}
    # in prompt order: no aggregate, no join; two passes: the runs summed; shuffled: DuckDB's
    assert pools["prompt order"] == pools["shuffled"]
    assert pools["two passes"] == pools["two passes shuffled"]
    assert pools["two passes"][0] != pools["prompt order"][0]
    # one reasoning mode: the runs of that mode (some prompts have none: not in order)
    off = PassRateConfig(reasoning="off", drop_at_or_above=None)
    assert (_published(store, run_passrate(store, versions["prompt order"], gsm8k, "off-a", off))
            == _published(store, run_passrate(store, versions["shuffled"], gsm8k, "off-b", off)))
