"""Every filter under a tiny memory limit, on inputs that drop nothing, everything and some.

With ``memory_limit`` far below the input's size a filter writes its kept and rejected rows
as several sorted ranges (filters/base.py).  An empty kept or rejected set has no range
bounds; that used to build ``... WHERE  ORDER BY id`` and crash (issue 13 item 9).
"""

from __future__ import annotations

import pytest
from thinkforge.filters import base
from thinkforge.filters.base import Resources
from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
from thinkforge.filters.decontam import run_decontam
from thinkforge.filters.dedup import DedupConfig, run_dedup
from thinkforge.filters.passrate import PassRateConfig, run_passrate
from thinkforge.filters.quality import run_quality

from .conftest import write_rollouts

ROWS = 600
TINY = Resources(memory_limit="128MiB")  # sort budget 16 MiB


@pytest.fixture(autouse=True)
def big_inputs(monkeypatch):
    """Inputs that look 16x their size (~50 MB for ~3 MB), so that every kept and rejected set
    is written as several sorted ranges without making the test slow."""
    real = base.uncompressed_bytes
    monkeypatch.setattr(base, "uncompressed_bytes", lambda store, ms: 16 * real(store, ms))


def filler(i: int) -> str:
    return " ".join(f"w{i}x{j}" for j in range(600))  # ~5 KB of words unique to row i


def prompts(store, name, texts):
    rows = [{"id": f"p{i:05d}", "source": "t", "category": "math",
             "input": [{"role": "user", "content": t}], "ground_truth": "1", "verifier": "math",
             "license": "MIT"} for i, t in enumerate(texts)]
    with store.writer(name, "prompts", step={"type": "test", "config": {"name": name}}) as w:
        w.write(rows)
    return w.manifest


def sft(store, name, good):
    rows = [{"id": f"s{i:05d}", "prompt_id": f"p{i}", "pair_id": f"p{i}", "category": "math",
             "reasoning": "on", "system_prompt": "detailed thinking on",
             "input": [{"role": "user", "content": f"q{i}"}],
             "output": (f"<think>{filler(i)}</think>\n\n4" if good(i) else filler(i)),
             "generator": "t", "output_tokens": 20, "finish_reason": "stop"} for i in range(ROWS)]
    with store.writer(name, "sft", step={"type": "test", "config": {"name": name}}) as w:
        w.write(rows)
    return w.manifest


def counts(store, m):
    from thinkforge.manifests.selection import read_table

    assert read_table(store, m).num_rows == m.rows
    return m.rows, m.rejected.rows


CASES = {"nothing": lambda i: True, "everything": lambda i: False, "some": lambda i: i % 3 == 0}


@pytest.mark.parametrize("case", sorted(CASES))
def test_quality(store, case):
    m = run_quality(store, sft(store, "sft", CASES[case]), "q", resources=TINY)
    kept = sum(map(CASES[case], range(ROWS)))
    assert counts(store, m) == (kept, ROWS - kept)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dedup(store, case):
    # nothing: all distinct; everything: one text ROWS times (one row must stay); some: pairs
    text = {"nothing": filler, "everything": lambda i: filler(0), "some": lambda i: filler(i // 2)}
    data = prompts(store, "p", [text[case](i) for i in range(ROWS)])
    m = run_dedup(store, data, "d", DedupConfig(near=False), resources=TINY)
    kept = {"nothing": ROWS, "everything": 1, "some": ROWS // 2}[case]
    assert counts(store, m) == (kept, ROWS - kept)


@pytest.mark.parametrize("case", sorted(CASES))
def test_decontam(store, tmp_path, case):
    data = prompts(store, "p", [filler(i) for i in range(ROWS)])
    hit = {"nothing": [], "everything": list(range(ROWS)), "some": list(range(0, ROWS, 3))}[case]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(f'{{"id": "b{i}", "question": "{filler(i)}"}}\n' for i in hit)
                     or '{"id": "b", "question": "nothing in common here at all"}\n')
    m = run_decontam(store, data, [bench], "c", resources=TINY)
    assert counts(store, m) == (ROWS - len(hit), len(hit))


@pytest.mark.parametrize("case", sorted(CASES))
def test_passrate_and_curriculum(store, case):
    data = prompts(store, "p", [filler(i) for i in range(ROWS)])
    # pass rate >= 0.75 drops a prompt: 'nothing' solves none, 'everything' solves all
    solved = {"nothing": lambda i: 0, "everything": lambda i: 8, "some": lambda i: 8 * (i % 2)}[case]
    rollouts = write_rollouts(store, data, {f"p{i:05d}": solved(i) for i in range(ROWS)}, k=8)
    pool = run_passrate(store, rollouts, data, "pool", PassRateConfig(), resources=TINY)
    kept = {"nothing": ROWS, "everything": 0, "some": ROWS // 2}[case]
    assert counts(store, pool) == (kept, ROWS - kept)
    if kept:
        ordered = run_curriculum(store, pool, "cur", CurriculumConfig(batch_size=32), resources=TINY)
        assert counts(store, ordered) == (kept, 0)
