"""Generation fanned out over a 2-worker distributed.LocalCluster (issue 12 items 2 and 5).

A deterministic OpenAI-compatible teacher (its answer is a function of the request) lets the
fanned-out version be compared with the local executor's byte for byte; two such servers
are the replicas of one teacher.  A worker killed mid-partition costs only its unwritten
rows; a dead endpoint's requests go to the live one; when every endpoint is dead the run
fails with an error naming the endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("openai")
from tests.generators.fault_proxy import FakeOpenAIServer, _FakeHandler


class _EchoHandler(_FakeHandler):
    """Answers with a function of (prompt, seed): deterministic, different per request."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        owner = self.server.owner
        owner.requests.append(body)
        time.sleep(owner.delay_s)
        digest = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode())
        answer = int(digest.hexdigest()[:4], 16) % 50
        text = f"Thinking about seed {body.get('seed')}.\n\nFinal answer: {answer}"
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop", "message": {
                     "role": "assistant", "content": text}}],
                 "usage": {"prompt_tokens": 11, "completion_tokens": len(text) // 4,
                           "total_tokens": 11 + len(text) // 4}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class EchoServer(FakeOpenAIServer):
    handler = _EchoHandler

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        super().__init__()


def _closed_port_url() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture
def prompts(store, data_dir):
    from thinkforge.curation.importer import ImportOptions, import_file

    return import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                       ImportOptions(name="gsm8k", preset="gsm8k"))


def _run(store, step_type, prompts, name, config, resources=None):
    from thinkforge.manifests.steps import RunContext, build_config, execute, load_steps

    desc = load_steps()[step_type]
    made = execute(RunContext(store, quiet=True, settings=resources), desc,
                   {"prompts": prompts}, name, build_config(desc.config_model(), config))
    return next(iter(made.values()))


def _files(store, manifest) -> dict[str, str]:
    return {f"{role}:{entry.path}": hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for role, entry, path in store.version_files(manifest)}


def _teacher(url: str, *more: str, **extra) -> dict:
    return {"backend": "openai", "base_url": url, "endpoints": list(more), "model": "teacher",
            **extra}


CASES = {
    "generate_sft": {"n": 2, "limit": 10},            # ON sampled, OFF greedy (copied)
    "generate_rollouts": {"k": 3, "limit": 10, "modes": ["on", "off"]},
}


@pytest.mark.parametrize("partitions", [3, 1])
@pytest.mark.parametrize("step_type", list(CASES))
def test_fanned_out_version_equals_local(store, prompts, cluster, step_type, partitions):
    """3 partitions over 2 workers and 2 endpoints: the local version's bytes and
    fingerprint, every key once, both endpoints asked, no endpoint in the step record.
    ``partitions: 1`` runs the whole step as one task (its verifier in a worker's thread:
    the same verdicts as in the main thread)."""
    from thinkforge.manifests.selection import read_table

    with EchoServer() as a, EchoServer() as b:
        local = _run(store, step_type, prompts, "local", {**CASES[step_type],
                                                          "teacher": _teacher(a.url)})
        asked_locally = len(a.requests)
        a.requests.clear()
        remote = _run(store, step_type, prompts, "fanned", {
            **CASES[step_type], "teacher": _teacher(a.url, b.url)},
            {"executor": "dask", "scheduler": cluster.scheduler_address,
             "partitions": partitions})
    assert a.requests and b.requests, "both endpoints serve"
    assert len(a.requests) + len(b.requests) == asked_locally
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.step == local.step and "endpoints" not in json.dumps(remote.step.config)
    table = read_table(store, remote)
    key = ("id",) if step_type == "generate_sft" else ("prompt_id", "reasoning", "sample")
    keys = list(zip(*(table.column(c).to_pylist() for c in key), strict=True))
    assert len(keys) == len(set(keys)) == remote.rows
    assert remote.provenance["teachers"]["teacher"]["endpoints"] == [a.url, b.url]
    assert remote.provenance["generated_this_attempt"] == local.provenance["generated_this_attempt"]


def test_backend_built_once_per_worker(store, prompts, cluster):
    """6 partitions: each worker process builds its teacher backend once, not per task."""
    from distributed import Client
    from thinkforge.generators import fanout

    with Client(cluster.scheduler_address) as client, EchoServer() as server:
        before = client.run(lambda: fanout.BUILT)
        made = _run(store, "generate_rollouts", prompts, "six", {
            "k": 4, "limit": 12, "teacher": _teacher(server.url, concurrency=1, batch_size=2)},
            {"executor": "dask", "scheduler": cluster.scheduler_address, "partitions": 6})
        after = client.run(lambda: fanout.BUILT)
    assert made.rows == 48
    built = {w: after[w] - before[w] for w in after}
    assert all(n <= 1 for n in built.values()) and sum(built.values()) >= 1


def _backends(dask_worker) -> tuple[bool, int]:
    from thinkforge.generators import fanout

    return "thinkforge-close-backends" in dask_worker.plugins, len(fanout._CACHE)


def test_a_worker_keeps_its_backend_until_it_closes(store, prompts, cluster):
    """On a cluster the command did not start, each worker keeps its backend for the next
    run; the plugin every run registers closes it when the worker closes (its teardown:
    what stops a vLLM engine's processes with their worker)."""
    from distributed import Client

    with Client(cluster.scheduler_address) as client, EchoServer() as server:
        _run(store, "generate_sft", prompts, "kept", {"limit": 6, "teacher": _teacher(server.url)},
             {"executor": "dask", "scheduler": cluster.scheduler_address, "partitions": 2})
        kept = client.run(_backends)
        assert {plugin for plugin, _ in kept.values()} == {True}
        assert sum(n for _, n in kept.values()) >= 1
        client.unregister_worker_plugin("thinkforge-close-backends")  # runs its teardown
        assert set(client.run(_backends).values()) == {(False, 0)}


def test_worker_killed_mid_partition(store, prompts, cluster, tmp_path):
    """The worker generating a partition is killed after its first checkpoint chunk: Dask
    reruns the partition on the other worker, which resumes from the partition's chunks.
    The version is the local one; every key once; no checkpointed key was asked again."""
    import pyarrow.parquet as pq
    from distributed import Client

    config = {"k": 2, "limit": 12, "modes": ["on"]}
    with EchoServer(delay_s=0.05) as server:
        local = _run(store, "generate_rollouts", prompts, "kill-local", {
            **config, "teacher": _teacher(server.url)})
        server.requests.clear()
        teacher = _teacher(server.url, concurrency=1, batch_size=1)  # 4 rows per chunk
        with Client(cluster.scheduler_address) as client:
            pids = set(client.run(os.getpid).values())
            runs, seen = store.runs_dir, {}

            def kill_after_first_chunk():
                deadline = time.time() + 60
                # a finished chunk (its .parquet.tmp, still being written, would be lost
                # with the worker: nothing saved to check)
                while time.time() < deadline and not list(runs.glob("kill-dask-*/chunk-*.parquet")):
                    time.sleep(0.01)
                busy = [addr for addr, keys in client.processing().items() if keys]
                seen["victim"] = victim = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(victim, 9)
                seen["saved"] = {k for path in runs.glob("kill-dask-*/chunk-*.parquet")
                                 for k in pq.read_table(path, columns=["key"])
                                 .column("key").to_pylist()}

            # the step runs in the main thread (the math verifier's timeout needs it)
            killer = threading.Thread(target=kill_after_first_chunk)
            killer.start()
            remote = _run(store, "generate_rollouts", prompts, "kill-dask",
                          {**config, "teacher": teacher},
                          {"executor": "dask", "scheduler": cluster.scheduler_address,
                           "partitions": 2})
            killer.join(60)
    assert seen["victim"] in pids
    saved = seen["saved"]
    assert remote.fingerprint == local.fingerprint
    assert _files(store, remote) == _files(store, local)
    assert remote.rows == 24
    # each request carries its key's seed: a key saved before the kill is asked only once
    from thinkforge.generators.runs import stable_hash

    asked: dict[int, int] = {}
    for body in server.requests:
        asked[body["seed"]] = asked.get(body["seed"], 0) + 1
    saved_seeds = {int(stable_hash([0, k], 8), 16) % (2 ** 31) for k in saved}
    assert saved_seeds and all(asked[s] == 1 for s in saved_seeds)
    assert set(asked) == {int(stable_hash([0, k], 8), 16) % (2 ** 31)
                          for k in _keys(store, "kill-dask")}
    assert len(server.requests) < 2 * 24


def _keys(store, name):
    run = next(p for p in store.runs_dir.iterdir() if p.name.startswith(name))
    import pyarrow.parquet as pq

    return {k for path in run.glob("chunk-*.parquet")
            for k in pq.read_table(path, columns=["key"]).column("key").to_pylist()}


def test_dead_endpoint_fails_over_to_the_live_one(store, prompts, cluster):
    """One of two endpoints is dead: its worker's requests go to the other at once (no
    retry spent: max_retries 0); the version is complete."""
    dead = _closed_port_url()
    with EchoServer() as live:
        made = _run(store, "generate_rollouts", prompts, "failover", {
            "k": 2, "limit": 8, "teacher": _teacher(dead, live.url, max_retries=0)},
            {"executor": "dask", "scheduler": cluster.scheduler_address, "partitions": 4})
    assert made.rows == 16 and len(live.requests) == 16
    assert not made.rejected.rows and not made.provenance["errors_by_kind"]


def test_every_endpoint_dead_names_them(store, prompts):
    from thinkforge.manifests.errors import GenerationFailedError

    dead = [_closed_port_url(), _closed_port_url()]
    with pytest.raises(GenerationFailedError) as info:
        _run(store, "generate_rollouts", prompts, "dead", {
            "k": 2, "limit": 2, "teacher": _teacher(*dead, max_retries=0)})
    assert "connection" in str(info.value)
    assert any(url in str(info.value) for url in dead)


def test_cli_repeated_base_url_and_endpoints_file(cli_run, store, prompts, tmp_path):
    """`--base-url A --endpoints FILE` (local executor): every endpoint serves; the step
    records none of them (run control, in provenance.run_control)."""
    with EchoServer() as a, EchoServer() as b, EchoServer() as c:
        listing = tmp_path / "endpoints.txt"
        listing.write_text(f"# replicas\n{c.url}\n")
        result = cli_run("generate", "rollouts", "--prompts", "gsm8k", "--name", "cli",
                         "--limit", "6", "--k", "2", "--backend", "openai", "--model", "teacher",
                         "--base-url", a.url, "--base-url", b.url, "--endpoints", str(listing))
        assert result.exit_code == 0, result.output
        assert a.requests and b.requests and c.requests
    made = store.resolve("cli")
    assert "base_url" not in made.step.config["teacher"]      # the endpoint list is run control
    assert made.provenance["run_control"]["endpoints"] == [a.url, b.url, c.url]
    assert "endpoints" not in made.step.config["teacher"]
    assert "endpoints_file" not in made.step.config["teacher"]
