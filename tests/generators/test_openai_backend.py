"""The openai backend against a fake OpenAI-compatible server behind a fault-injecting proxy."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest
from thinkforge.generators.backends import ChatRequest, Sampling, make_backend
from thinkforge.generators.config import BackendConfig
from thinkforge.generators.sft import SftConfig, generate_sft

from tests.generators.fault_proxy import FakeOpenAIServer, FaultProxy

pytest.importorskip("openai")


def requests(n):
    return [ChatRequest(f"k{i}", [{"role": "user", "content": f"q{i}"}], Sampling(0.0, 1.0, 16, i))
            for i in range(n)]


def backend(url, **overrides):
    settings = dict(backend="openai", base_url=url, model="teacher", concurrency=2, max_retries=5,
                    request_timeout_s=1.0, backoff_base_s=0.05)
    return make_backend(BackendConfig(**{**settings, **overrides}), "teacher")


def test_every_injected_fault_is_retried_until_success():
    faults = ["500", "429", "timeout", "reset", "malformed"]
    with FakeOpenAIServer() as server, FaultProxy(server.url, faults, hang_s=2.5) as proxy:
        started = time.monotonic()
        out = backend(proxy.url).generate(requests(4))
        elapsed = time.monotonic() - started
    assert [c.error_kind for c in out] == [None] * 4
    assert all(c.text.endswith("Final answer: 42") and c.completion_tokens == 7 for c in out)
    assert sorted(proxy.seen[:5]) == sorted(faults) and proxy.seen.count("pass") == 4
    assert sum(c.attempts for c in out) == 9
    assert elapsed >= 1.0  # the 429's Retry-After: 1 was waited for


def test_after_the_last_try_a_request_becomes_an_error_record():
    with FakeOpenAIServer() as server, FaultProxy(server.url, ["fatal"] + ["500"] * 3) as proxy:
        out = backend(proxy.url, concurrency=1, max_retries=2).generate(requests(3))
    assert (out[0].error_kind, out[0].attempts) == ("http_400", 1)   # a 400 is not retried
    assert (out[1].error_kind, out[1].attempts) == ("server_error", 3)
    assert out[1].finish_reason == "error" and "500" in out[1].error
    assert out[2].ok and proxy.seen == ["fatal", "500", "500", "500", "pass"]


def test_failed_rows_are_rejected_then_retried_by_the_rerun(store, gsm8k, monkeypatch):
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-test")
    with FakeOpenAIServer() as server, FaultProxy(server.url, ["500"] * 2) as proxy:
        config = SftConfig(limit=2, modes=["on"], teacher=dict(
            backend="openai", base_url=proxy.url, model="teacher", concurrency=1, max_retries=1,
            backoff_base_s=0.01, api_key_env="TEST_TEACHER_KEY"))
        first = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
        assert first.rows == 1 and first.rejected.by_reason == {"generation_error:server_error": 1}
        assert first.provenance["errors_by_kind"] == {"server_error": 1}
        calls = len(server.requests)
        second = generate_sft(store, gsm8k, "gsm8k-sft", config, progress=False)
    assert len(server.requests) == calls + 1       # only the failed request was sent again
    assert second.version == "v2" and second.rows == 2 and second.rejected.rows == 0
    rows = [r for p in store.shard_paths(second) for r in pq.read_table(p).to_pylist()]
    assert {r["verified"] for r in rows} == {False} and {r["answer"] for r in rows} == {"42"}
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "detailed thinking on"}
    assert second.provenance["teachers"]["teacher"]["base_url"] == proxy.url


def test_missing_base_url_is_a_config_error():
    from thinkforge.manifests.errors import ConfigError

    with pytest.raises(ConfigError, match="base-url"):
        make_backend(BackendConfig(backend="openai"), "teacher")
