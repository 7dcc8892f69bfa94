"""Code answers: run HumanEval-style tests against the model's code in a sandboxed subprocess.

The program is the model's code (the last fenced Python block, else the whole answer;
prefixed with the prompt's signature when the answer is a bare function body) followed by
the test program in ``ground_truth`` (HumanEval ``test`` + ``check(entry_point)``).
It runs in a fresh temporary directory under ``python -I`` with an empty environment, a
wall-clock timeout, an address-space and CPU-time limit (``setrlimit``), and no network:
a new network namespace where the kernel allows it (root, or user namespaces), and in any
case a prelude that makes ``socket`` refuse to connect.  Exit code 0 means correct.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import Any

from .verdict import Verdict

FENCE_RE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)
CLONE_NEWNET = 0x40000000
NO_NETWORK_PRELUDE = '''\
import socket as _socket
class _NoNetwork(_socket.socket):
    def __init__(self, *args, **kwargs):
        raise OSError("network access is disabled in the thinkforge code sandbox")
_socket.socket = _NoNetwork
def _refuse(*args, **kwargs):
    raise OSError("network access is disabled in the thinkforge code sandbox")
_socket.create_connection = _refuse
_socket.getaddrinfo = _refuse
del _socket, _NoNetwork, _refuse
'''


def extract_code(answer_text: str) -> str:
    blocks = FENCE_RE.findall(answer_text)
    return (blocks[-1] if blocks else answer_text).strip("\n")


class CodeVerifier:
    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 1024):
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self.version = (f"code-subprocess/1 (python -I, timeout {timeout_s:g}s, memory "
                        f"{memory_mb} MiB, network namespace + socket block)")

    def __call__(self, answer_text: str, ground_truth: str, prompt: dict[str, Any]) -> Verdict:
        code = extract_code(answer_text)
        if not code.strip():
            return Verdict(False, None, "no_answer", "code", "no code in the output")
        program = NO_NETWORK_PRELUDE + "\n" + _with_signature(code, prompt) + "\n\n" + ground_truth
        return replace(self.run(program), answer=code)

    def run(self, program: str) -> Verdict:
        """Run ``program``; True when it exits 0 within the limits."""
        with tempfile.TemporaryDirectory(prefix="thinkforge-code-") as workdir:
            path = os.path.join(workdir, "solution_test.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(program)
            try:
                done = subprocess.run(
                    [sys.executable, "-I", path], cwd=workdir, capture_output=True, text=True,
                    timeout=self.timeout_s, env={"PATH": "/usr/bin:/bin", "HOME": workdir},
                    preexec_fn=self._limit_child, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return Verdict(False, None, "code_tests", "code",
                               f"timed out after {self.timeout_s:g}s")
        if done.returncode == 0:
            return Verdict(True, None, "code_tests", "code")
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return Verdict(False, None, "code_tests", "code", tail[0][:300])

    def _limit_child(self) -> None:
        """Runs in the child before exec: memory and CPU limits, own session, no network."""
        os.setsid()  # a timeout kills the whole group, not just the interpreter
        limit = self.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = int(self.timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:  # a fresh network namespace has only a downed loopback: nothing is reachable
            ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)
        except OSError:
            pass  # not permitted here: the socket prelude still refuses connections


def _with_signature(code: str, prompt: dict[str, Any]) -> str:
    """Prefix the prompt's signature when the model wrote only the body of the function."""
    try:
        metadata = json.loads(prompt.get("metadata") or "{}")
    except (TypeError, ValueError):
        metadata = {}
    entry_point, signature = metadata.get("entry_point"), metadata.get("prompt")
    if entry_point and signature and not re.search(rf"def\s+{re.escape(entry_point)}\s*\(", code):
        return signature + code
    return code
