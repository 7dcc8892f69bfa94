"""Fixtures for the step-registry tests: one small real version of every record kind."""

from __future__ import annotations

import pytest
from thinkforge.manifests import DatasetStore


def scripted_answer(request) -> str:
    """ON answers with a think block, OFF without; always the same final answer."""
    system = request.messages[0]["content"] if request.messages else ""
    body = "Final answer: 42"
    return f"<think>add the numbers</think>\n\n{body}" if system.endswith("on") else body


@pytest.fixture
def kinds(store: DatasetStore, data_dir, monkeypatch) -> dict:
    """kind -> a small version of it (prompts, sft, rollouts, rl_pool), built for real."""

    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.filters.passrate import PassRateConfig, run_passrate
    from thinkforge.generators.config import RolloutConfig, SftConfig
    from thinkforge.generators.rollouts import generate_rollouts
    from thinkforge.generators.sft import generate_sft

    from tests.scripted_teacher import install

    install(monkeypatch, scripted_answer)
    prompts = import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                          ImportOptions(name="prompts", preset="gsm8k"))
    bench = import_file(store, data_dir / "gsm8k_test.jsonl",
                        ImportOptions(name="bench", preset="gsm8k"))
    sft = generate_sft(store, prompts, "sft", SftConfig(limit=6), progress=False)
    rollouts = generate_rollouts(store, prompts, "rollouts", RolloutConfig(limit=6, k=2),
                                 progress=False)
    pool = run_passrate(store, rollouts, prompts, "pool",
                        PassRateConfig(drop_at_or_above=None))
    return {"prompts": prompts, "bench": bench, "sft": sft, "rollouts": rollouts,
            "rl_pool": pool}


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker distributed.LocalCluster, one single-thread process each (one per module:
    the Dask test files share this, not its workers' state)."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as c:
        yield c
