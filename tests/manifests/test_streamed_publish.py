"""A version written through ``VersionWriter.write`` is checked, digested and counted as
its rows come (``manifests/streaming.py``): the same fingerprint, digests, stats and
errors as the publish that scans the shards afterwards, and the version verifies from its
rows."""

import random

import numpy as np
import pytest
import thinkforge.manifests.streaming as streaming
from thinkforge.manifests import DatasetStore
from thinkforge.manifests.errors import InputDataError
from thinkforge.manifests.stats import Histogram, quantile_cont

from .test_store import prompt_rows


def sft_rows(n, start=0, seed=0):
    rnd = random.Random(seed + start)
    rows = []
    for i in range(start, start + n):
        mode = rnd.choice(["on", "off"])
        rows.append({
            "id": f"s{i}", "prompt_id": f"p{i // 2}", "pair_id": f"p{i // 2 if rnd.random() < 0.9 else i}",
            "category": rnd.choice(["math", "code", "chat"]), "reasoning": mode,
            "system_prompt": f"detailed thinking {mode}",
            "input": [{"role": "user", "content": f"q {i}"}],
            "output": "ünï " * rnd.randint(0, 40), "generator": rnd.choice(["t1", "t2"]),
            "verified": rnd.choice([True, False, None]), "output_tokens": rnd.choice([None, rnd.randint(1, 90)]),
            "finish_reason": rnd.choice(["stop", "length", None])})
    return rows


def rollout_rows(n, start=0):
    rnd = random.Random(start)
    return [{"prompt_id": f"p{i // 4}", "sample": i % 4, "generator": "g", "reasoning": rnd.choice(["on", "off"]),
             "output": "x" * rnd.randint(1, 30), "correct": rnd.choice([True, False, None]),
             "format_ok": rnd.choice([True, None]), "reward": rnd.random(), "output_tokens": rnd.randint(1, 9)}
            for i in range(start, start + n)]


def publish_both(tmp_path, kind, batches):
    """(streamed, scanned) manifests of the same rows: the scanned side declares a shard of
    its own first (``new_shard_path``), which sends its publish to the full scan."""
    out = []
    for side in ("stream", "scan"):
        store = DatasetStore(tmp_path / side)
        with store.writer("v", kind, step={"type": "test", "config": {}}) as w:
            if side == "scan":
                w.new_shard_path()  # declared, never written: only the path changes
            for rows in batches:
                w.write(rows)
        out.append((store, w.manifest))
    return out


@pytest.mark.parametrize("kind, make", [("sft", sft_rows), ("rollouts", rollout_rows), ("prompts", prompt_rows)])
def test_streamed_publish_matches_the_scanning_publish(tmp_path, kind, make):
    (s_store, s), (_, c) = publish_both(tmp_path, kind, [make(700, 0), make(1, 700), make(1300, 701)])
    assert s.fingerprint == c.fingerprint
    assert s.stats == c.stats and s.rows == c.rows == 2001
    s_store.verify(s, use_cache=False, rows=True)  # raises when the rows do not give the fingerprint


def test_quantiles_match_duckdb_quantile_cont():
    import duckdb

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 101, 1000):
        values = rng.integers(0, 50, n)
        h = Histogram()
        import pyarrow as pa

        h.add(pa.array(values))
        v, c = h.arrays()
        for q in (0.5, 0.9, 0.99):
            want = duckdb.sql(f"SELECT quantile_cont(x, {q}) FROM (SELECT unnest(?) AS x)",
                              params=[values.tolist()]).fetchall()[0][0]
            assert quantile_cont(v, c, q) == want


def test_a_duplicate_key_across_writes_is_refused_with_the_key(store):
    with pytest.raises(InputDataError, match=r"duplicate row key.*'p7'"):
        with store.writer("d", "prompts", step={"type": "test", "config": {}}) as w:
            w.write(prompt_rows(100))
            w.write(prompt_rows(1, 7))
    assert not store.version_dirs("d")


def test_a_hash_collision_is_not_a_duplicate(store, monkeypatch):
    """Two keys sharing a 64-bit hash only send the publish to the exact check."""
    monkeypatch.setattr(streaming.HashRuns, "add", lambda self, hashes: True)
    with store.writer("c", "prompts", step={"type": "test", "config": {}}) as w:
        w.write(prompt_rows(50))
    assert w.manifest.rows == 50


def test_an_invalid_value_is_refused_as_before(store):
    rows = prompt_rows(30)
    rows[17]["category"] = "poetry"
    with pytest.raises(InputDataError, match=r"column 'category' has invalid value\(s\) \['poetry'\]"):
        with store.writer("b", "prompts", step={"type": "test", "config": {}}) as w:
            w.write(rows[:10])
            w.write(rows[10:])
