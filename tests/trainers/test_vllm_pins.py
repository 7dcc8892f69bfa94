"""The `vllm` extra installs beside the pinned torch and inside TRL's supported vLLM range:
pip's resolver, dry run (metadata only: no CUDA wheel is downloaded)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _online() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def _trl_vllm_range():
    for line in metadata.requires("trl") or []:
        req = Requirement(line)
        if req.name == "vllm" and req.marker and req.marker.evaluate({"extra": "vllm"}):
            return req.specifier
    pytest.skip("this TRL declares no vllm extra")


@pytest.mark.slow  # asks the package index
def test_vllm_extra_resolves_with_the_torch_pin_and_trl(tmp_path):
    if not _online():
        pytest.skip("no network: the resolver needs the package index")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = extras["vllm"] + extras["train"]
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                           "--ignore-installed", "--only-binary=:all:", "--report", str(report),
                           *wanted], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    got = {i["metadata"]["name"].lower(): Version(i["metadata"]["version"])
           for i in json.loads(report.read_text())["install"]}
    torch_pin = next(Requirement(r) for r in extras["gen"] if r.startswith("torch"))
    assert got["torch"].public in torch_pin.specifier, got["torch"]
    assert got["vllm"] in _trl_vllm_range(), got["vllm"]
    assert got["vllm"] in Requirement(extras["vllm"][0]).specifier
    assert got["trl"] in next(Requirement(r) for r in extras["train"] if r.startswith("trl")).specifier
