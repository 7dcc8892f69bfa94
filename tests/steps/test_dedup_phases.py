"""Near dedup's phases (filters/partitioned_dedup.py) run in this process, task by task: the
exact duplicates found by pre-key are checked against the local exact key (md5), and when
two different texts share a pre-key the pairs are made again without them: the version is
still the local one."""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from tests.steps.test_dask_executor import _files, _run  # noqa: E402
from tests.steps.test_dask_partitioned import _near_versions  # noqa: E402


class _Inline:
    """Stands in for the Dask client: each task runs at once, here (so a monkeypatch reaches
    it); records the phase of every task."""

    def __init__(self):
        self.phases: list[str] = []

    def submit(self, fn, *args, key: str, **_):
        self.phases.append(key.split("-")[-2].rstrip("0123456789"))
        return fn(*args)

    def gather(self, results):
        return list(results)


def _phased(store, data, config: dict, count: int):
    from thinkforge.filters.dedup import DedupConfig
    from thinkforge.filters.partitioned_dedup import run_near_dedup_phased
    from thinkforge.manifests.partitions import Phases

    client = _Inline()
    out = store.root / ".staging" / "partitions-inline"
    out.mkdir(parents=True)
    made = run_near_dedup_phased(Phases(
        client=client, retries=0, store=store, store_at=(type(store), str(store.root)),
        inputs={"data": data}, name="nd-inline", config=DedupConfig(**config),
        resources={"threads": 1}, count=count, out=out, hosts={"local": 1}, label="dedup-t"))
    return store.resolve(made.ref), client.phases


@pytest.mark.parametrize("collide", [False, True])
@pytest.mark.parametrize("kind,config", [("prompts", {}), ("sft", {"on": "output"})])
def test_pre_key_collision_still_local(store, monkeypatch, kind, config, collide):
    """With ``collide`` the pre-key is the word count (every 30-word text shares one): the
    md5 check finds other exact duplicates than the pre-keys, so pairs, sets and verify run
    again; without, they run once.  Both: the local bytes, fingerprint and provenance."""
    from thinkforge.filters import text

    data = _near_versions(store)[kind]
    local = _run(store, "dedup", {"data": data}, "nd-local", config)
    assert local.provenance["exact_duplicates"] > 0
    if collide:
        monkeypatch.setattr(text, "pre_key_expr",
                            lambda t: f"hash(len({text.words_expr(t)}))::UBIGINT")
    remote, phases = _phased(store, data, config, 2)
    # the verify tasks start beside the md5 check: after a collision, again
    assert phases.count("pairs") == phases.count("sets") == phases.count("verify") \
        == (4 if collide else 2)
    assert phases.count("signatures") == 2
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance


def test_big_bucket_paired_around_its_smallest_id(store):
    """The pair tasks join documents by number (signature task, row), whose order is not
    the ids' order: here the ids fall as the rows go on, so a bucket of 40 copies
    (``exact`` off: more than ``ALL_PAIRS_UP_TO`` rows) must still be paired around its
    smallest *id*, as locally (its smallest number is its largest id); the last text, a
    near copy of the 40 that shares some of their bands only, has the smallest id: the
    buckets it is in pair around it, the others around a copy (other candidate pairs)."""
    from tests.steps.test_dask_partitioned import _near_texts

    texts = _near_texts()
    texts.append(texts[5] + " zzz")
    rows = [{"id": f"n{999 - i:04d}", "source": "t", "category": "math",
             "input": [{"role": "user", "content": t}], "ground_truth": "1",
             "verifier": "math", "license": "MIT"} for i, t in enumerate(texts)]
    with store.writer("nd-falling", "prompts", step={"type": "import", "config": {}}) as w:
        w.write(rows)
    config = {"exact": False, "threshold": 0.7}
    local = _run(store, "dedup", {"data": w.manifest}, "nd-local", config)
    assert local.provenance["near_duplicates"] >= 39
    remote, _ = _phased(store, w.manifest, config, 2)
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance


def test_sets_split_covers_every_position_once_weighed_by_members():
    """``_sets_split``: the sets tasks' runs cover every position of the signature tasks'
    runs once, in order (two parts' runs of one shard joined), cut where rows + members
    weigh the same; each task names the signature parts its positions touch."""
    from thinkforge.filters.near_dedup_tasks import _number
    from thinkforge.filters.partitioned_dedup import _BLOCK_BITS, _MEMBER_WEIGHT, _sets_split

    ranges = [{"v": [(0, 0, 70_000)]}, {"v": [(0, 70_000, 90_000), (1, 0, 50_000)]}]
    block = 1 << _BLOCK_BITS
    # part 0 has members in its first blocks only
    blocks = [(_number(0, b * block) >> _BLOCK_BITS, 1000) for b in range(10)]
    split = _sets_split(ranges, "v", blocks, 2)
    runs = [r for own, _ in split for r in own["v"]]
    positions = [(s, i) for s, f, e in runs for i in range(f, e)]
    assert positions == [(0, i) for i in range(90_000)] + [(1, i) for i in range(50_000)]
    rows = sum(e - f for _, f, e in split[0][0]["v"])
    weight = 140_000 + _MEMBER_WEIGHT * 10_000
    assert abs(rows + _MEMBER_WEIGHT * min(rows, 10 * block) / (10 * block) * 10_000
               - weight / 2) < block
    assert [parts for _, parts in split] == [[0], [0, 1]]
    # no members: even rows; split by key hash (no runs): the signature partitions
    assert [sum(e - f for _, f, e in own["v"]) for own, _ in _sets_split(ranges, "v", [], 2)] \
        == [70_000, 70_000]
    assert _sets_split([{}, {}], "v", blocks, 2) == [({}, [0]), ({}, [1])]


def test_sets_task_across_signature_partitions_still_local(store, monkeypatch):
    """Members weighed so heavily that the cut between the sets tasks falls inside a
    signature partition (each part's members weigh alike through its one block): a task
    finds its documents of two partitions by id; the local bytes."""
    from thinkforge.filters import partitioned_dedup

    data = _near_versions(store)["prompts"]
    local = _run(store, "dedup", {"data": data}, "nd-local", {})
    monkeypatch.setattr(partitioned_dedup, "_MEMBER_WEIGHT", 10**6)
    split = partitioned_dedup._sets_split
    seen = []
    monkeypatch.setattr(partitioned_dedup, "_sets_split",
                        lambda *a: seen.append(split(*a)) or seen[-1])
    remote, _ = _phased(store, data, {}, 2)
    assert [0, 1] in [parts for _, parts in seen[0]]  # a task reads rows of both
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.provenance == local.provenance
