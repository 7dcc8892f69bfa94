"""One real two-process CPU run of a few SFT steps through `accelerate launch` (torchrun,
gloo); its run record shows world size 2.  Slow: two processes load TRL (a minute+).

accelerate 1.15's `--cpu` alone starts ONE process unless MPI is installed (its simple
launcher); `--multi_gpu --num_processes 2` on a machine without CUDA is torchrun with two
CPU processes, and the trainer (use_cpu on a CUDA-less host) joins them over gloo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_process_cpu_sft_records_world_size_2(store, sft_version, tiny_model, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "thinkforge", "--store", str(store.root), "-q", "train", "sft",
           "--data", sft_version.ref, "--model", str(tiny_model), "--output", str(out),
           "--max-steps", "2", "--per-device-train-batch-size", "2", "--max-length", "64",
           "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads(done.stdout)             # only rank 0 prints and publishes
    assert record["world_size"] == 2 and record["config"]["world_size"] == 2
    assert record["final_metrics"]["global_step"] == 2
    from thinkforge.manifests.training_runs import TrainingRuns

    assert [r.run_id for r in TrainingRuns(store)] == [record["run_id"]]


@pytest.mark.slow
def test_two_process_cpu_grpo_records_the_global_prompt_order(store, pool_version, tiny_model,
                                                              tmp_path):
    """Each rank scores only its share of a generation batch; the record holds the prompts
    of every rank in the order TRL's sampler drew them (curriculum order)."""
    from thinkforge.manifests.selection import read_table

    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "thinkforge", "--store", str(store.root), "-q", "train", "grpo",
           "--data", pool_version.ref, "--model", str(tiny_model), "--output", str(tmp_path / "g"),
           "--max-steps", "3", "--num-generations", "2", "--per-device-train-batch-size", "2",
           "--max-completion-length", "8", "--no-gradient-checkpointing", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads(done.stdout)
    assert record["world_size"] == 2
    rows = read_table(store, pool_version).to_pylist()
    curriculum = [r["id"] for r in sorted(rows, key=lambda r: r["curriculum_position"])]
    # 3 steps x one curriculum batch of 2 prompts, one prompt from each rank per step
    assert record["extra"]["sampled_prompt_ids"] == curriculum[:6]
    assert record["extra"]["follows_curriculum"] is True
