"""Resumable runs: completed requests are checkpointed under ``<store>/runs/<run-id>/``.

Every request has a deterministic key: a hash of (prompt id, mode, sample index, request
config hash), where the request config is what decides the text (backend, model, sampling,
reasoning format, seed, and a reasoning teacher's wire settings).  Completions are
appended in small Parquet chunks, each written to a temporary name, fsynced and renamed,
so a process killed at any instant leaves only whole chunks (and perhaps a ``.tmp`` file,
removed on the next start).  On a rerun the engine loads the successful keys and
generates only what is missing; failed requests are tried again.

The run id, like the keys, comes only from what decides the outputs: the step record
(the config without its run-control fields, which are ``exclude=True``: batch size,
concurrency, endpoints, retries, rate limits, prices) and the prompts' fingerprint.
``--executor`` is not part of the config at all.  So resuming with other run control
finds the same run and its finished work, and a finished version is reused
(docs/teachers.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

RESULT_SCHEMA = pa.schema([
    ("key", pa.string()), ("prompt_id", pa.string()), ("mode", pa.string()),
    ("sample", pa.int64()), ("model", pa.string()), ("text", pa.string()),
    ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("finish_reason", pa.string()), ("error_kind", pa.string()), ("error", pa.string()),
    ("attempts", pa.int64()), ("seconds", pa.float64()), ("finished_at", pa.float64()),
    # how the reasoning arrived (openai: reasoning / reasoning_content; None: in the text);
    # chunks written before this column read it as None
    ("wire", pa.string()),
])


def stable_hash(value: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys), as hex."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def request_key(prompt_id: str, mode: str, sample: int, request_config_hash: str) -> str:
    return stable_hash([prompt_id, mode, sample, request_config_hash], 24)


def default_run_id(name: str, step: dict[str, Any], parent_fingerprint: str) -> str:
    """The same command on the same prompts gets the same run id, so a rerun resumes."""
    return f"{name}-{stable_hash([step, parent_fingerprint], 12)}"


class RunCheckpoint:
    def __init__(self, runs_dir: Path, run_id: str, meta: dict[str, Any]):
        from thinkforge.manifests.store import validate_run_id

        self.dir = Path(runs_dir) / validate_run_id(run_id)  # never a path out of the store
        self.dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.dir.glob("*.tmp"):  # a chunk whose writer was killed mid-write
            leftover.unlink(missing_ok=True)
        info = self.dir / "run.json"
        previous = json.loads(info.read_text()) if info.is_file() else {}
        attempts = previous.get("attempts", 0) + 1
        self._write_json(info, {**meta, "attempts": attempts, "started_at": time.time()})
        self.attempt = attempts

    @classmethod
    def attach(cls, run_dir: str | Path) -> RunCheckpoint:
        """The checkpoint of a run another process owns (a Dask worker writing one partition
        of it): appends and reads chunks, never touches ``run.json`` nor other writers'
        ``.tmp`` files."""
        self = cls.__new__(cls)
        self.dir, self.attempt = Path(run_dir), 0
        return self

    def chunk_paths(self, tag: str | None = None) -> list[Path]:
        """Every chunk, or those appended with ``tag`` (one partition of a fanned-out run)."""
        return sorted(self.dir.glob(f"chunk-*-{tag}-*.parquet" if tag else "chunk-*.parquet"))

    def load_successes(self, tag: str | None = None,
                       columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Successful results of earlier attempts by key (a key written twice: first wins)."""
        done: dict[str, dict[str, Any]] = {}
        schema = RESULT_SCHEMA if columns is None else pa.schema(
            [RESULT_SCHEMA.field(c) for c in columns])
        for path in self.chunk_paths(tag):
            for row in pq.read_table(path, schema=schema, columns=columns).to_pylist():
                if row["error_kind"] is None and row["key"] not in done:
                    done[row["key"]] = row
        return done

    def append(self, rows: list[dict[str, Any]], tag: str | None = None) -> None:
        if not rows:
            return
        middle = f"-{tag}" if tag else ""  # chunk names still sort by time first
        name = f"chunk-{time.time_ns():020d}{middle}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            pq.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)

    def mark_published(self, ref: str) -> None:
        info = self.dir / "run.json"
        meta = json.loads(info.read_text())
        self._write_json(info, {**meta, "published": ref, "published_at": time.time()})

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)


def size_of(plan) -> int:
    """Characters a request sends (batches group similar lengths: little padding)."""
    return sum(len(m["content"]) for m in plan.messages)


def checkpoint_row(plan, completion, seconds: float) -> dict[str, Any]:
    """The checkpoint row of one answered (or failed) request (``RESULT_SCHEMA``)."""
    return {"key": plan.key, "prompt_id": plan.prompt["id"], "mode": plan.mode,
            "sample": plan.sample, "model": plan.model, "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason, "error_kind": completion.error_kind,
            "error": completion.error, "attempts": completion.attempts, "seconds": seconds,
            "finished_at": time.time(), "wire": completion.extra.get("wire")}
