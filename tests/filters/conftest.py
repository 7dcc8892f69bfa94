"""Fixtures for the filter tests: small real prompt versions and rollouts built on the spot."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from thinkforge.curation.importer import ImportOptions, import_file
from thinkforge.manifests import DatasetStore, Manifest


@pytest.fixture
def gsm8k(store: DatasetStore, data_dir) -> Manifest:
    return import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                       ImportOptions(name="gsm8k", preset="gsm8k"))


def prompt_ids(store: DatasetStore, prompts: Manifest) -> list[str]:
    import pyarrow.parquet as pq

    tables = [pq.read_table(p, columns=["id"]) for p in store.shard_paths(prompts)]
    return sorted(pa.concat_tables(tables).column("id").to_pylist())


def write_rollouts(store: DatasetStore, prompts: Manifest, n_correct: dict[str, int], k: int = 8,
                   name: str = "rollouts", provenance: dict | None = None,
                   correct_none: set[str] = frozenset(), extra_ids: list[str] = (),
                   step_config: dict | None = None) -> Manifest:
    """K rollouts per prompt id, the first ``n_correct[id]`` of them correct."""
    rows = []
    for pid, good in [*n_correct.items(), *((e, 1) for e in extra_ids)]:
        for s in range(k):
            rows.append({"prompt_id": pid, "sample": s, "generator": "policy-a", "reasoning": "on",
                         "output": f"<think>t</think>answer {s}", "answer": str(s),
                         "correct": None if pid in correct_none else s < good,
                         "format_ok": True, "reward": float(s < good), "output_tokens": 10,
                         "finish_reason": "stop"})
    with store.writer(name, "rollouts", step={"type": "test.rollouts", "config": step_config or {}},
                      parents=[prompts],
                      provenance=provenance if provenance is not None else
                      {"model": "policy-a", "K": k, "verifier": "math-verify",
                       "verifier_version": "0.7", "seed": 7}) as w:
        w.write(rows)
    return w.manifest


@pytest.fixture
def random_rollouts(store, gsm8k):
    """Rollouts for every gsm8k demo prompt with a random number correct out of 8 (seeded)."""
    rng = random.Random(3)
    return write_rollouts(store, gsm8k, {pid: rng.randint(0, 8) for pid in prompt_ids(store, gsm8k)})
