"""Issue 9 item 3: a dead teacher fails the run instead of publishing an empty version."""

from __future__ import annotations

import socket

import pytest

from tests.generators.fault_proxy import FakeOpenAIServer, FaultProxy

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


def test_a_teacher_killed_mid_run_stops_the_run_in_seconds_and_the_rerun_resumes(
        cli_run, store, gsm8k, monkeypatch):
    """Issue 23 item 5: the server dies after 3 answers.  With the default retries (5, with
    backoff) the run would grind on request by request; instead 20 connection failures in
    a row stop it: exit 10, the endpoint and the resume command named, the 3 answers kept,
    progress lines on the (non-TTY) stderr.  The rerun, with other run control (another
    server, concurrency, batch size), finds the same run and asks only the rest."""
    from click.testing import CliRunner

    from thinkforge.cli import cli

    monkeypatch.setenv("THINKFORGE_PROGRESS_INTERVAL_S", "0.2")
    args = ["generate", "sft", "--prompts", "gsm8k", "--name", "gsm8k-sft", "--limit", "10",
            "--backend", "openai", "--model", "teacher", "--backoff-base-s", "0.05"]
    with FakeOpenAIServer(die_after=3) as server:  # not --quiet: the progress lines show
        result = CliRunner().invoke(cli, ["--store", str(store.root), *args, "--base-url",
                                          server.url, "--concurrency", "1"])
    assert result.exit_code == 10, result.output
    assert f"the teacher at {server.url} is not answering" in result.stderr
    assert "20 connection failures in a row" in result.stderr
    assert "resume" in result.stderr and "nothing was published" in result.stderr
    # progress lines: every interval, and the last one at the end (one request at a time:
    # requests 4-6 fail after their retries, the 20th failure ends 7-10 as teacher_dead)
    assert "gsm8k-sft [on]: 3/20 rows (15%), " in result.stderr
    assert "gsm8k-sft [on]: 10/20 rows (50%), " in result.stderr
    assert "errors 7 (teacher_dead 4, connection 3)" in result.stderr
    assert not (store.datasets_dir / "gsm8k-sft").exists()
    (run,) = store.runs_dir.iterdir()
    with FakeOpenAIServer() as again:
        done = cli_run(*args, "--base-url", again.url, "--concurrency", "3", "--batch-size", "5")
    assert done.exit_code == 0, done.output
    assert len(again.requests) == 20 - 3                    # only what the dead one left
    assert [p.name for p in store.runs_dir.iterdir()] == [run.name]   # the same run id
    made = store.resolve("gsm8k-sft")
    assert made.provenance["run_attempt"] == 2 and made.rows == 20
    assert made.provenance["run_control"]["concurrency"] == 3


def test_run_control_changes_no_run_id_and_reuse_the_version(cli_run, store, gsm8k):
    """Issue 23 item 6: concurrency, batch size and endpoints decide no output: changing them
    reuses the published version (no request sent, no second version)."""
    args = ["generate", "rollouts", "--prompts", "gsm8k", "--name", "r", "--limit", "2",
            "--k", "2", "--backend", "openai", "--model", "teacher"]
    with FakeOpenAIServer() as first:
        made = cli_run(*args, "--base-url", first.url, "--concurrency", "1", "--batch-size", "2")
    assert made.exit_code == 0 and made.stdout.strip() == "r@v1"
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        again = cli_run(*args, "--base-url", a.url, "--base-url", b.url, "--concurrency", "7",
                        "--batch-size", "9", "--max-retries", "1")
        assert again.exit_code == 0 and again.stdout.strip() == "r@v1"
        assert a.requests == [] and b.requests == []
    assert [m.version for m in store.versions("r")] == ["v1"]
    assert len(list(store.runs_dir.iterdir())) == 1
