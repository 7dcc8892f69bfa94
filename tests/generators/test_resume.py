"""Resumable runs: SIGKILL a real generating process mid-run, rerun, lose and repeat nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from thinkforge.generators.runs import RESULT_SCHEMA

WORKER = Path(__file__).with_name("resume_worker.py")
REPO = Path(__file__).resolve().parents[2]


def run_worker(store, model, limit):
    return subprocess.Popen([sys.executable, str(WORKER), str(store.root), str(model), str(limit)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def chunk_keys(run_dir: Path) -> list[str]:
    return [k for p in sorted(run_dir.glob("chunk-*.parquet"))
            for k in pq.read_table(p, schema=RESULT_SCHEMA).column("key").to_pylist()]


def test_sigkill_mid_run_then_rerun_publishes_each_key_once(store, gsm8k, tiny_model):
    limit = 16  # 32 requests, one per checkpoint chunk
    worker = run_worker(store, tiny_model, limit)
    deadline = time.monotonic() + 120
    chunks: list[Path] = []
    while time.monotonic() < deadline and worker.poll() is None:
        chunks = list(store.runs_dir.glob("*/chunk-*.parquet"))
        if len(chunks) >= 3:
            break
        time.sleep(0.02)
    assert worker.poll() is None, f"worker ended before it could be killed: {worker.communicate()}"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (store.datasets_dir / "gsm8k-sft").exists()  # nothing published by the dead run
    [run_dir] = list(store.runs_dir.iterdir())
    (run_dir / "chunk-99999999999999999999-dead.parquet.tmp").write_bytes(b"half a chunk")
    done_before = set(chunk_keys(run_dir))
    assert 3 <= len(done_before) < 2 * limit

    rerun = run_worker(store, tiny_model, limit)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    manifest = store.resolve(out.strip())
    # the tiny model's prompted ON replies have no Final answer line: rejected, not dropped
    ids = [i for p in store.shard_paths(manifest) for i in pq.read_table(p).column("id").to_pylist()]
    ids += [k for p in store.rejected_paths(manifest) for k in pq.read_table(p).column("key").to_pylist()]
    assert len(ids) == len(set(ids)) == 2 * limit                   # each key exactly once
    assert done_before <= set(ids)                                  # nothing finished was lost
    p = manifest.provenance
    assert p["resumed_from_checkpoint"] == len(done_before)         # ... nor generated again
    assert p["generated_this_attempt"] == 2 * limit - len(done_before)
    assert p["run_attempt"] == 2
    assert not list(run_dir.glob("*.tmp"))                          # the torn chunk was removed
