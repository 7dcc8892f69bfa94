"""A real RL pool for the hand-off tests: gsm8k demo prompts -> scripted prompted rollouts
(right for every other sample) -> pass rate -> curriculum."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def pool(store, data_dir, monkeypatch):
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.filters.curriculum import CurriculumConfig, run_curriculum
    from thinkforge.filters.passrate import PassRateConfig, run_passrate
    from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts

    from tests.scripted_teacher import install

    prompts = import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                          ImportOptions(name="gsm8k", preset="gsm8k"))
    import pyarrow.parquet as pq

    gold = {r["input"][0]["content"]: r["ground_truth"]
            for p in store.shard_paths(prompts) for r in pq.read_table(p).to_pylist()}

    def answer(request) -> str:
        question = request.messages[-1]["content"]
        right = next((g for q, g in gold.items() if question.startswith(q)), "0")
        sample = int(re.findall(r"\d+", request.key)[-1]) if re.findall(r"\d+", request.key) else 0
        rank = sum(map(ord, question)) % 4  # prompts differ in difficulty
        final = right if (sample + rank) % 4 < 2 else "-1"
        return f"I work it out step by step.\n\nFinal answer: {final}"

    install(monkeypatch, answer)
    rollouts = generate_rollouts(store, prompts, "gsm8k-rollouts",
                                 RolloutConfig(k=4, limit=12), progress=False)
    scored = run_passrate(store, rollouts, prompts, "gsm8k-rl",
                          PassRateConfig(drop_at_or_above=None))
    return run_curriculum(store, scored, "gsm8k-rl-cur", CurriculumConfig(batch_size=4))

