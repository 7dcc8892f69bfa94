"""Filters split into partitions across a 2-worker distributed.LocalCluster and merged into
one version (filters/partitioned.py): exact provenance where one partition's figure is not
the whole's (passrate's rollouts-per-prompt mode)."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from tests.steps.test_dask_executor import _files, _run  # noqa: E402


def _skewed_rollouts(store):
    """Prompts whose rollouts-per-prompt mode is 1 in the first of 2 partitions (by
    position: the first 8 prompts) but 3 overall (and K recorded nowhere, so passrate takes
    K from that mode too)."""
    ids = [f"q{i:03d}" for i in range(16)]
    ones = set(ids[:6])
    prompts = [{"id": i, "source": "t", "category": "math",
                "input": [{"role": "user", "content": f"question {i}?"}], "ground_truth": "1",
                "verifier": "math", "license": "MIT"} for i in ids]
    rows = [{"prompt_id": i, "sample": k, "generator": "g", "reasoning": "on", "output": "1",
             "answer": "1", "correct": k % 2 == 0, "format_ok": True, "reward": 0.0,
             "output_tokens": 1, "finish_reason": "stop"}
            for i in ids for k in range(1 if i in ones else 3)]
    with store.writer("sk-prompts", "prompts", step={"type": "import", "config": {}}) as w:
        w.write(prompts)
    with store.writer("sk-rollouts", "rollouts", step={"type": "import", "config": {}},
                      parents=[w.manifest]) as r:
        r.write(rows)
    return w.manifest, r.manifest


def test_passrate_provenance_exact_across_partitions(store, cluster):
    prompts, rollouts = _skewed_rollouts(store)
    inputs = {"rollouts": rollouts, "prompts": prompts}
    config = {"drop_at_or_above": None}
    local = _run(store, "passrate", inputs, "sk-local", config)
    assert local.provenance["samples_per_prompt_observed"] == {"min": 1, "max": 3, "mode": 3}
    assert local.provenance["K"] == 3
    remote = _run(store, "passrate", inputs, "sk-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": 2})
    assert remote.provenance == local.provenance
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)


def test_samples_observed_mode_is_deterministic():
    from thinkforge.filters.passrate import samples_observed

    assert samples_observed([(3, 2), (2, 2)]) == {"min": 2, "max": 3, "mode": 2}
    assert samples_observed([(2, 2), (3, 1), (3, 2)]) == {"min": 2, "max": 3, "mode": 3}
    assert samples_observed([]) == {"min": None, "max": None, "mode": None}


def _graded_pool(store, n: int = 300):
    """An rl_pool (a selection, as passrate writes it) of ``n`` prompts over 5 pass-rate
    levels of unequal size."""
    prompts = [{"id": f"g{i:04d}", "source": "t", "category": "math",
                "input": [{"role": "user", "content": f"question {i}?"}], "ground_truth": "1",
                "verifier": "math", "license": "MIT"} for i in range(n)]
    rows = [{"prompt_id": f"g{i:04d}", "sample": k, "generator": "g", "reasoning": "on",
             "output": "1", "answer": "1", "correct": k < (i * i) % 5, "format_ok": True,
             "reward": 0.0, "output_tokens": 1, "finish_reason": "stop"}
            for i in range(n) for k in range(4)]
    with store.writer("gr-prompts", "prompts", step={"type": "import", "config": {}}) as w:
        w.write(prompts)
    with store.writer("gr-rollouts", "rollouts", step={"type": "import", "config": {"k": 4}},
                      parents=[w.manifest]) as r:
        r.write(rows)
    return _run(store, "passrate", {"rollouts": r.manifest, "prompts": w.manifest}, "gr-pool",
                {"drop_at_or_above": None})


@pytest.mark.parametrize("partitions,config,resources", [
    (2, {"batch_size": 7}, {}),
    (3, {"batch_size": 16, "sigma": 0.2, "schedule": "cosine", "seed": 5}, {}),
    (3, {"batch_size": 7}, {"materialize": True}),
])
def test_curriculum_two_phases_equals_local(store, cluster, monkeypatch, partitions, config,
                                            resources):
    """Curriculum split in phases (per-partition narrow keys and cell counts, the plan on
    the driver, batch ranges placed per task, one merge): the local bytes, fingerprint and
    provenance."""
    import thinkforge.filters  # noqa: F401  (fills PHASED)
    from thinkforge.manifests.partitions import PHASED

    pool = _graded_pool(store)
    assert len(pool.provenance) and pool.rows == 300
    calls = []
    phased = PHASED["curriculum"]
    monkeypatch.setitem(PHASED, "curriculum", lambda ph: calls.append(ph.count) or phased(ph))
    local = _run(store, "curriculum", {"pool": pool}, "cur-local", config, resources)
    remote = _run(store, "curriculum", {"pool": pool}, "cur-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": partitions, **resources})
    assert calls == [partitions]
    assert local.stats.get("curriculum_batches") and local.provenance["batches"] > partitions
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert list(remote.provenance) == list(local.provenance)
    assert remote.step == local.step and remote.parents == local.parents
    assert not list((store.root / ".staging").glob("partitions-*"))


@pytest.mark.parametrize("step_type", ["passrate", "quality", "decontam"])
def test_partitioned_materialized_equals_local(store, versions, cluster, step_type):
    """Full copies instead of selections (``materialize``): the merge writes a column as
    ``optional`` where the local run does (DuckDB proves ``required`` from statistics)."""
    from tests.steps.test_dask_executor import CASES

    inputs, config = CASES[step_type]
    res = {"materialize": True}
    local = _run(store, step_type, inputs(versions), f"{step_type}-ml", config, res)
    remote = _run(store, step_type, inputs(versions), f"{step_type}-md", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": 3, **res})
    assert local.selection is None and remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance


def _near_texts(n: int = 120) -> list[str]:
    """Texts with exact copies, near copies (and chains of them), a bucket of 40 copies
    (exact=False: more than 32 rows share every band) and texts without words."""
    import random

    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(n)]
    texts = list(base)
    for i in range(0, n, 7):
        texts.append(base[i].upper() + "!")               # exact once normalised
        texts.append(base[i] + " one two")                 # near
        texts.append(base[i] + " one two three four")      # near of the near (a chain)
    texts += [base[5]] * 40 + ["", "?!", "..."]
    return texts


def _near_versions(store):
    texts = _near_texts()
    prompts = [{"id": f"n{i:04d}", "source": "t", "category": "math",
                "input": [{"role": "user", "content": t}], "ground_truth": "1",
                "verifier": "math", "license": "MIT"} for i, t in enumerate(texts)]
    with store.writer("nd-prompts", "prompts", step={"type": "import", "config": {}}) as w:
        w.write(prompts)
    def question(j: int) -> str:  # prompts 45.. are the copies and near copies of 0, 7, ..
        return texts[j] if j < 45 else texts[120 + j - 45]

    rows = []
    for i in range(150):
        for mode in ("on", "off"):
            out = texts[(i * 7 + (mode == "on")) % len(texts)]
            rows.append({"id": f"s{i:04d}-{mode}", "prompt_id": f"n{i // 2:04d}",
                         "pair_id": f"pair{i}", "category": "math", "reasoning": mode,
                         "system_prompt": f"detailed thinking {mode}",
                         "input": [{"role": "user", "content": question(i // 2)}],
                         "output": out,
                         "generator": "g", "license": "MIT", "ground_truth": "1",
                         "verified": True, "answer": "1", "output_tokens": 3,
                         "finish_reason": "stop"})
    with store.writer("nd-sft", "sft", step={"type": "import", "config": {}},
                      parents=[w.manifest]) as s:
        s.write(rows)
    return {"prompts": w.manifest, "sft": s.manifest}


@pytest.mark.parametrize("kind,config,partitions", [
    ("prompts", {}, 3),
    ("prompts", {"exact": False, "threshold": 0.7}, 2),
    ("sft", {"on": "output"}, 3),
    ("sft", {"on": "input"}, 2),
])
def test_near_dedup_by_band_hash_equals_local(store, cluster, monkeypatch, kind, config,
                                              partitions):
    """Near dedup in phases (signatures per row partition, buckets per (band, key)
    partition, clusters on the driver, marking per row partition): the local bytes,
    fingerprint and provenance (candidate and verified pair counts included)."""
    import thinkforge.filters  # noqa: F401  (fills PHASED)
    from thinkforge.manifests.partitions import PHASED

    data = _near_versions(store)[kind]
    calls = []
    phased = PHASED["dedup"]
    monkeypatch.setitem(PHASED, "dedup", lambda ph: calls.append(ph.count) or phased(ph))
    local = _run(store, "dedup", {"data": data}, "nd-local", config)
    assert local.provenance["near_duplicates"] > 0 and local.rejected.rows > 0
    remote = _run(store, "dedup", {"data": data}, "nd-dask", config,
                  {"executor": "dask", "scheduler": cluster.scheduler_address,
                   "partitions": partitions})
    assert calls == [partitions]
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
    assert list(remote.provenance) == list(local.provenance)
    assert not list((store.root / ".staging").glob("partitions-*"))


def test_worker_killed_mid_phase_still_exact(store, cluster, tmp_path):
    """Kill the worker process running a *place* task of the phased curriculum: Dask reruns
    that task on the other worker (it writes afresh; the dead one's files are never read)
    and the version is the local one."""
    import os
    import threading
    import time

    from distributed import Client

    pool = _graded_pool(store)
    config = {"batch_size": 7}
    local = _run(store, "curriculum", {"pool": pool}, "kill-local", config)
    marker = tmp_path / "started"
    os.environ["TF_TEST_SLOW_MARKER"] = str(marker)
    import tests.steps.slow_step  # noqa: F401  (registers `slow_curriculum` here)

    with Client(cluster.scheduler_address) as client:
        client.run(_set_env, "TF_TEST_SLOW_MARKER", str(marker))
        pids = client.run(os.getpid)
        result: dict = {}

        def go():
            result["m"] = _run(store, "slow_curriculum", {"pool": pool}, "kill-dask", config,
                               {"executor": "dask", "scheduler": cluster.scheduler_address,
                                "partitions": 2})

        thread = threading.Thread(target=go)
        thread.start()
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "no place task started on a worker"
        victim = int(marker.read_text())
        assert victim in pids.values()
        os.kill(victim, 9)
        thread.join(120)
    remote = result["m"]
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance


def _set_env(key, value):
    import os

    os.environ[key] = value
