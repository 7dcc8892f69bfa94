"""Issue 9 item 3: a dead teacher fails the run instead of publishing an empty version."""

from __future__ import annotations

import socket

import pytest
from fault_proxy import FakeOpenAIServer, FaultProxy

pytest.importorskip("openai")


def _closed_port_url() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _args(url: str, *extra: str) -> list[str]:
    return ["generate", "sft", "--prompts", "gsm8k", "--name", "gsm8k-sft", "--limit", "2",
            "--backend", "openai", "--base-url", url, "--model", "teacher", "--max-retries", "0",
            "--request-timeout", "2", "--run-id", "dead-teacher", *extra]


def test_unreachable_server_fails_publishes_nothing_and_the_rerun_resumes(cli_run, store, gsm8k):
    result = cli_run(*_args(_closed_port_url()))
    assert result.exit_code == 10, result.output
    assert "4 of 4 requests failed" in result.stderr and "nothing was published" in result.stderr
    assert "connection" in result.stderr.lower()          # the first error, summarised
    assert result.stdout == ""
    assert not (store.datasets_dir / "gsm8k-sft").exists()
    assert (store.runs_dir / "dead-teacher").is_dir()     # checkpoint kept for the rerun
    with FakeOpenAIServer() as server:
        again = cli_run(*_args(server.url))
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "gsm8k-sft@v1" and len(server.requests) == 4
    assert store.resolve("gsm8k-sft").provenance["run_attempt"] == 2


def test_error_rate_at_or_below_the_limit_publishes_the_rest(store, gsm8k, monkeypatch):
    from thinkforge.generators.sft import SftConfig, generate_sft
    from thinkforge.manifests.errors import GenerationFailedError

    monkeypatch.setenv("K", "x")
    teacher = dict(backend="openai", model="teacher", concurrency=1, max_retries=0,
                   backoff_base_s=0.01, api_key_env="K")
    with FakeOpenAIServer() as server, FaultProxy(server.url, ["500"] * 3) as proxy:
        config = SftConfig(limit=2, teacher={**teacher, "base_url": proxy.url})
        with pytest.raises(GenerationFailedError, match="3 of 4 requests failed"):
            generate_sft(store, gsm8k, "a", config, progress=False)
    with FakeOpenAIServer() as server, FaultProxy(server.url, ["500"] * 3) as proxy:
        config = SftConfig(limit=2, max_error_rate=0.75, teacher={**teacher, "base_url": proxy.url})
        published = generate_sft(store, gsm8k, "b", config, progress=False)
    assert published.rows == 1 and published.rejected.by_reason == {
        "generation_error:server_error": 3}
    assert "max_error_rate" not in published.step.config   # run control, not the recipe of rows


def test_an_empty_result_is_never_published(store, gsm8k, scripted):
    from thinkforge.generators.sft import SftConfig, generate_sft
    from thinkforge.manifests.errors import GenerationFailedError

    scripted(lambda r: "   ")  # every answer empty: all rejected, no error
    with pytest.raises(GenerationFailedError, match="nothing to publish.*empty_output"):
        generate_sft(store, gsm8k, "s", SftConfig(limit=2), progress=False)
    assert not (store.datasets_dir / "s").exists()
