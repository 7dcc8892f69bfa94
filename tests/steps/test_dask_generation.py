"""generate rollouts with --executor dask against an OpenAI-compatible endpoint: the worker
running it is killed after its first checkpoint; Dask reruns the step on the other worker,
which resumes from the same run directory: only unwritten rows are asked again and the
version has every (prompt, mode, sample) key exactly once."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("openai")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "generators"))
from fault_proxy import FakeOpenAIServer, _FakeHandler  # noqa: E402


class _SlowHandler(_FakeHandler):
    def do_POST(self):
        time.sleep(0.15)
        super().do_POST()


class SlowServer(FakeOpenAIServer):
    handler = _SlowHandler


def test_generation_survives_a_killed_worker(store, data_dir, tmp_path):
    from distributed import Client, LocalCluster

    from curation.importer import ImportOptions, import_file
    from curation.steps import load_steps
    from manifests.selection import read_table
    from manifests.steps import RunContext, build_config, execute

    prompts = import_file(store, data_dir / "gsm8k_train_demo.jsonl",
                          ImportOptions(name="gsm8k", preset="gsm8k"))
    desc = load_steps()["generate_rollouts"]
    with SlowServer() as server, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, \
            Client(cluster.scheduler_address) as client:
        config = build_config(desc.config_model(), {
            "teacher": {"backend": "openai", "base_url": server.url, "model": "teacher",
                        "concurrency": 2}, "k": 2, "limit": 12, "modes": ["off"]})
        pids = set(client.run(os.getpid).values())
        result: dict = {}

        def go():
            made = execute(RunContext(store, quiet=True, resources={
                "executor": "dask", "scheduler": cluster.scheduler_address}),
                desc, {"prompts": prompts}, "gsm8k-ro", config)
            result["m"] = next(iter(made.values()))

        thread = threading.Thread(target=go)
        thread.start()
        deadline = time.time() + 60
        while time.time() < deadline and not list(store.root.glob("runs/**/chunk-*.parquet")):
            time.sleep(0.02)
        chunks = list(store.root.glob("runs/**/chunk-*.parquet"))
        assert chunks, "no checkpoint was written"
        # the worker that runs the step is the one that is busy
        busy = [addr for addr, keys in client.processing().items() if keys]
        assert busy
        victim = client.run(os.getpid, workers=busy)[busy[0]]
        assert victim in pids
        asked_before_kill = len(server.requests)
        os.kill(victim, 9)
        thread.join(120)
        manifest = result["m"]
    expected = 12 * 2
    table = read_table(store, manifest)
    keys = list(zip(table.column("prompt_id").to_pylist(), table.column("sample").to_pylist(),
                    strict=True))
    assert manifest.rows == expected and len(set(keys)) == expected
    # resumed, not redone: at most the requests in flight when the worker died are asked twice
    assert asked_before_kill < len(server.requests) <= expected + 2
