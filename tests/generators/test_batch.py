"""Batch inference (--batch, --batch-file-only, --batch-results) against a local server that
implements the OpenAI Batch API (/v1/files, /v1/batches, /v1/files/{id}/content)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from thinkforge.generators.batch import BatchClient
from thinkforge.generators.sft import SftConfig, generate_sft
from thinkforge.manifests.errors import GenerationFailedError
from thinkforge.manifests.selection import read_table

from tests.generators.batch_server import BatchServer, chat_completion

pytest.importorskip("openai")

CHAT_LIMIT, N = 3, 2
ASKED = CHAT_LIMIT * (N + 1)  # N sampled ON requests + one greedy OFF request per prompt


def config(url: str | None = None, **teacher) -> SftConfig:
    return SftConfig(limit=CHAT_LIMIT, n=N, teacher=dict(
        backend="openai", base_url=url, model="teacher", batch_poll_s=0.01, max_retries=0,
        **teacher))


def rows(store, manifest) -> list[dict]:
    return sorted(read_table(store, manifest).to_pylist(), key=lambda r: r["id"])


def test_a_batch_job_gives_the_rows_online_calls_give(store, gsm8k):
    with BatchServer() as server:
        online = generate_sft(store, gsm8k, "online", config(server.url), progress=False)
        assert server.chat_calls == ASKED and not server.submitted
        batched = generate_sft(store, gsm8k, "batched", config(server.url, batch=True),
                               progress=False)
    assert server.chat_calls == ASKED  # the batch run made no online call
    assert len(server.submitted) == 1 and len(server.submitted[0]) == ASKED
    assert server.polls >= 3  # polled through validating and in_progress to the end
    # custom_id is the request key: the same keys, rows and verdicts as the online run
    assert {r["id"] for r in rows(store, batched)} >= set(server.submitted[0])
    assert rows(store, batched) == rows(store, online)
    assert {r["answer"] for r in rows(store, batched)} == {"41", "42"}  # seeds differ
    assert batched.provenance["teachers"]["teacher"]["batch"] == "api"


def test_a_rerun_submits_only_the_keys_a_batch_did_not_answer(store, gsm8k):
    with BatchServer(expire_after=3) as server:
        # 6 of 9 requests unanswered (expired) > max_error_rate 0.5: nothing is published
        with pytest.raises(GenerationFailedError, match="batch_expired"):
            generate_sft(store, gsm8k, "s", config(server.url, batch=True), progress=False)
        server.expire_after = None
        manifest = generate_sft(store, gsm8k, "s", config(server.url, batch=True), progress=False)
    first, second = server.submitted
    assert len(first) == ASKED and sorted(second) == sorted(first[3:])
    assert manifest.provenance["resumed_from_checkpoint"] == 3
    assert not manifest.provenance["errors_by_kind"]


def test_failed_lines_are_rejected_then_resubmitted_alone(store, gsm8k):
    with BatchServer() as server:
        cfg = config(server.url, batch=True)
        failing = generate_keys(store, gsm8k, cfg)[0]
        server.fail = {failing}
        first = generate_sft(store, gsm8k, "s", cfg, progress=False)
        assert first.rejected.by_reason == {"generation_error:server_error": 1}
        server.fail = set()
        second = generate_sft(store, gsm8k, "s", cfg, progress=False)
    assert server.submitted[1] == [failing]
    assert second.version == "v2" and not second.provenance["errors_by_kind"]


def test_a_crash_while_polling_resumes_the_submitted_batch(store, gsm8k, monkeypatch):
    finish = BatchClient._finish

    def crash(self, *args):
        raise KeyboardInterrupt

    with BatchServer() as server:
        monkeypatch.setattr(BatchClient, "_finish", crash)
        with pytest.raises(KeyboardInterrupt):
            generate_sft(store, gsm8k, "s", config(server.url, batch=True), progress=False)
        monkeypatch.setattr(BatchClient, "_finish", finish)
        manifest = generate_sft(store, gsm8k, "s", config(server.url, batch=True), progress=False)
    assert len(server.submitted) == 1  # the batch already paid for was polled, not sent again
    assert manifest.rows == CHAT_LIMIT * N * 2 and not manifest.provenance["errors_by_kind"]


def generate_keys(store, prompts, cfg) -> list[str]:
    """The keys a run asks, in plan order (sample 0 of the first prompt's ON mode first)."""
    from thinkforge.generators.engine import load_prompts, plan_requests

    plans = plan_requests(load_prompts(store, prompts, cfg.limit), cfg, list(cfg.modes), cfg.n)
    return [p.key for p in plans if p.copy_of is None]


def run_batch_like(request_file: Path, out: Path, skip: int = 0) -> None:
    """Answer a request file the way vLLM's run_batch writes its output (all but ``skip``)."""
    lines = [json.loads(raw) for raw in request_file.read_text().splitlines()]
    with open(out, "w") as f:
        for line in lines[skip:]:
            f.write(json.dumps({"id": "vllm-x", "custom_id": line["custom_id"], "error": None,
                                "response": {"status_code": 200, "request_id": "r",
                                             "body": chat_completion(line["body"])}}) + "\n")


def test_batch_file_only_then_results_from_the_cli(cli_run, store, gsm8k, tmp_path):
    args = ["generate", "sft", "--prompts", "gsm8k", "--name", "s", "--backend", "openai",
            "--model", "teacher", "--limit", str(CHAT_LIMIT), "--n", str(N)]
    written = cli_run(*args, "--batch-file-only")
    assert written.exit_code == 0, written.output
    request_file = Path(written.stdout.strip())
    lines = [json.loads(raw) for raw in request_file.read_text().splitlines()]
    assert len(lines) == ASKED and len({line["custom_id"] for line in lines}) == ASKED
    assert {(line["method"], line["url"], line["body"]["model"]) for line in lines} == {
        ("POST", "/v1/chat/completions", "teacher")}
    assert "vllm.entrypoints.openai.run_batch" in written.stderr
    assert "s" not in store.names()  # nothing published yet

    out = tmp_path / "out.jsonl"
    run_batch_like(request_file, out, skip=1)  # one request left unanswered
    imported = cli_run(*args, "--batch-results", str(out))
    assert imported.exit_code == 0, imported.output
    first = store.resolve("s")
    assert first.rejected.by_reason == {"generation_error:batch_missing": 1}

    again = cli_run(*args, "--batch-file-only")  # only the missing request is written
    missing = [json.loads(raw) for raw in Path(again.stdout.strip()).read_text().splitlines()]
    assert [m["custom_id"] for m in missing] == [lines[0]["custom_id"]]
    run_batch_like(Path(again.stdout.strip()), out)
    final = cli_run(*args, "--batch-results", str(out))
    assert final.exit_code == 0, final.output
    assert store.resolve("s").version == "v2" and not store.resolve("s").rejected.rows


def test_bad_results_files_are_one_line_errors(cli_run, gsm8k, tmp_path):
    args = ["generate", "sft", "--prompts", "gsm8k", "--name", "s", "--backend", "openai",
            "--model", "teacher", "--limit", "1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "k", "response": {}}\nnot json\n')
    result = cli_run(*args, "--batch-results", str(bad))
    assert result.exit_code == 6 and f"{bad}:2: not a JSON line" in result.output
    result = cli_run(*args, "--batch", "--backend", "transformers")
    assert result.exit_code == 8 and "needs the openai backend" in result.output
