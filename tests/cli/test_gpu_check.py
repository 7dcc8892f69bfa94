"""scripts/gpu_check.sh runs on a CPU machine: its setup works offline and every check that
needs CUDA says so on its own line (on a GPU node the same lines carry the figures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("vllm_generation", "grpo_vllm_colocate", "sft_bf16", "distill_cuda")


def test_gpu_check_skips_what_needs_cuda_on_a_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run scripts/gpu_check.sh itself")
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("setup: torch ") and "CUDA none" in lines[0]
    assert lines[1:] == [f"{name}: skipped: no CUDA" for name in CHECKS]
    assert (tmp_path / "store").is_dir()           # the versions the checks would train on
