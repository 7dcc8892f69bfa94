"""Small backend behaviours: thread choice on shared CPUs, Retry-After, missing extras."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from thinkforge.generators.backends.openai_client import _retry_after
from thinkforge.generators.backends.placement import idle_cores


# a load of about 1 is this process's own recent work; beyond that, other jobs
@pytest.mark.parametrize("load,cores,expected", [
    (0.1, 2, 2), (1.2, 2, 2), (2.1, 2, 1), (4.8, 2, 1), (3.0, 8, 6)])
def test_torch_threads_default_to_the_idle_cores(monkeypatch, load, cores, expected):
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert idle_cores() == expected


def test_retry_after_in_seconds_or_as_an_http_date():
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({}) is None and _retry_after({"retry-after": "soon"}) is None
    in_ten = _retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert 8 <= in_ten <= 11


def test_vllm_backend_without_vllm_names_the_extra(cli_run, gsm8k):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed in this environment")
    except ImportError:
        pass
    result = cli_run("generate", "sft", "--prompts", "gsm8k", "--name", "s", "--backend", "vllm",
                     "--limit", "1")
    assert result.exit_code == 9 and "thinkforge[vllm]" in result.output
