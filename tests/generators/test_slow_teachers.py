"""Slow: the real embedded SmolLM2 teacher, and vLLM (offline engine and OpenAI server).

vLLM lives in its own environment (``make vllm-env`` builds ``.venv-vllm``; or point
``THINKFORGE_VLLM_PYTHON`` at a python that has vllm and thinkforge); these tests skip
with that reason when it is absent.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts
from thinkforge.generators.sft import SftConfig, generate_sft

from tests.generators.fault_proxy import FaultProxy
from tests.vllm_env import VLLM_ENV, vllm_python
from tests.vllm_env import vllm_server as serving

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def rows_of(store, manifest):
    return [r for p in store.shard_paths(manifest) for r in pq.read_table(p).to_pylist()]


def test_embedded_smollm2_writes_paired_sft_and_rollouts(store, gsm8k):
    sft = generate_sft(store, gsm8k, "gsm8k-sft", SftConfig(
        limit=2, sampling_on={"max_new_tokens": 96}, sampling_off={"temperature": 0,
                                                                   "max_new_tokens": 96}),
        progress=False)
    rows = rows_of(store, sft)
    assert sft.rows + sft.rejected.rows == 4
    assert all(r["generator"] == "smollm2-135m" and r["output"].strip() for r in rows)
    assert sft.provenance["teachers"]["smollm2-135m"]["backend"] == "transformers"
    rollouts = generate_rollouts(store, gsm8k, "gsm8k-rollouts", RolloutConfig(
        k=2, limit=2, sampling={"max_new_tokens": 64}), progress=False)
    # every rollout is decided, or undecided with the verifier's reason (never a silent NULL)
    assert rollouts.rows == 4 and all(r["correct"] is not None or r["verdict"]
                                      for r in rows_of(store, rollouts))


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """A real vLLM OpenAI-compatible server serving the embedded SmolLM2 on 127.0.0.1."""
    from thinkforge.generators.backends.model_cache import resolve_model

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with serving(resolve_model("smollm2-135m"), "smollm2", log,
                 imports="vllm, thinkforge.generators") as url:
        yield url


def test_openai_backend_survives_faults_in_front_of_a_real_vllm_server(store, gsm8k, vllm_server):
    faults = ["500", "429", "timeout", "reset", "malformed"]
    # the client timeout must outlast a real request on a busy 2-core CPU; the injected
    # timeout fault hangs past it
    with FaultProxy(vllm_server, faults, hang_s=32.0) as proxy:
        config = SftConfig(limit=3, teacher=dict(
            backend="openai", base_url=proxy.url, model="smollm2", concurrency=2,
            request_timeout_s=30.0, backoff_base_s=0.2, max_retries=6),
            sampling_on={"max_new_tokens": 32}, sampling_off={"temperature": 0, "max_new_tokens": 32})
        manifest = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
    assert sorted(proxy.seen[:5]) == sorted(faults)
    assert manifest.provenance["errors_by_kind"] == {}
    assert manifest.rows + manifest.rejected.rows == 6
    assert manifest.provenance["completion_tokens"] > 0
    assert {r["system_prompt"] for r in rows_of(store, manifest)} <= {
        "detailed thinking on", "detailed thinking off"}


def test_a_real_vllm_server_continues_a_forced_reply(vllm_server):
    """Answer forcing's second round (generators/forcing.py) against the real server: the
    partial reply goes as an open assistant turn with continue_final_message, and vLLM
    continues it: the reply is only what follows the partial turn."""
    from thinkforge.generators.backends import ChatRequest, Sampling, make_backend
    from thinkforge.generators.config import BackendConfig

    backend = make_backend(BackendConfig(backend="openai", base_url=vllm_server,
                                         model="smollm2", request_timeout_s=120.0), "smollm2")
    question = [{"role": "user", "content": "What is two plus two? Answer in words."}]
    prefill = "Final answer: Two plus two equals fo"  # cut mid-word: only a continuation ends it
    plain, forced = backend.generate([
        ChatRequest("plain", question, Sampling(0.0, 1.0, 8, 0)),
        ChatRequest("forced", question, Sampling(0.0, 1.0, 8, 0), prefill=prefill)])
    backend.close()
    assert plain.ok and forced.ok, (plain.error, forced.error)
    # the prefill went to the server as part of the prompt, and the reply finishes its word
    # (a new assistant turn, or the prefill echoed back, would not start mid-word)
    assert forced.prompt_tokens > plain.prompt_tokens
    # (measured: SmolLM2-135M ends it "fo|os.")
    assert forced.text[:1].islower() and not forced.text.startswith("Final"), forced.text


def test_offline_vllm_engine_generates_rollouts(store, gsm8k):
    python = vllm_python("vllm, thinkforge.generators")
    thinkforge = python.parent / "thinkforge"  # the console script guards its entry point
    done = subprocess.run(
        [str(thinkforge), "--store", str(store.root), "--quiet", "generate", "rollouts",
         "--prompts", "gsm8k", "--name", "gsm8k-rollouts", "--backend", "vllm", "--k", "2",
         "--limit", "3", "--max-new-tokens", "48"],
        capture_output=True, text=True, timeout=900, env={**os.environ, **VLLM_ENV}, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = store.resolve(done.stdout.strip())
    assert manifest.rows == 6 and manifest.provenance["teachers"]["smollm2-135m"]["backend"] == "vllm"
    assert manifest.provenance["tokens_per_s"] > 0
