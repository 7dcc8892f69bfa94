"""The logic of ``bench/dask_scale.py`` (no timing): the machine ceiling, Amdahl's serial
fraction and bound it prints, and its document generator's texts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "dask_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("dask_scale_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ceiling_is_two_on_idle_cores_and_one_on_a_shared_one(bench):
    assert bench.ceiling(0.5, 0.5) == pytest.approx(2.0)  # two copies in one copy's time
    assert bench.ceiling(0.5, 1.0) == pytest.approx(1.0)  # the two ran one after the other
    assert bench.ceiling(0.5, 0.625) == pytest.approx(1.6)


def test_serial_fraction_inverts_amdahl(bench):
    for f in (0.0, 0.1, 0.35, 1.0):
        for limit in (1.6, 2.0):
            speedup = 1 / (f + (1 - f) / limit)
            assert bench.serial_fraction(speedup, limit) == pytest.approx(f)


def test_amdahl_bound(bench):
    assert bench.amdahl_bound(10.0, 0.0, 10.0, 2.0) == pytest.approx(2.0)
    assert bench.amdahl_bound(10.0, 10.0, 0.0, 2.0) == pytest.approx(1.0)
    # 1 s on the driver, 9 s of tasks on 2 cores: 10 / (1 + 4.5)
    assert bench.amdahl_bound(10.0, 1.0, 9.0, 2.0) == pytest.approx(10 / 5.5)
    # the bound and the fraction agree: a step at its bound has the serial share as f
    speedup = bench.amdahl_bound(10.0, 1.0, 9.0, 1.8)
    assert bench.serial_fraction(speedup, 1.8) == pytest.approx(0.1)
    # tasks that do less work than the one-worker step (no sort, no publish) can beat 2x
    assert bench.amdahl_bound(10.0, 0.5, 7.0, 2.0) > 2.0


def test_burn_returns_its_span(bench):
    start, end = bench.burn(1000)
    assert 0 <= end - start < 60


def test_generated_texts_are_the_joined_word_ids(bench):
    tokens = bench._tokens(np.random.default_rng(3), 500, words=7, vocab=50)
    assert tokens.shape == (500, 7) and tokens.max() < 100  # near copies: ids >= vocab
    texts = bench._join(tokens).to_pylist()
    assert texts == [" ".join(f"w{t}" for t in row) for row in tokens]
    table = bench._prompts([f"d{i}" for i in range(500)], texts)
    assert table.column("input").to_pylist()[7] == [{"role": "user", "content": texts[7]}]
    copies = {t for t in texts if texts.count(t) > 1}
    assert copies  # the exact copies dedup should find
