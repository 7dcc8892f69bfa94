"""Generation runs read live from their checkpoints (``<store>/runs/<run-id>/``, written by
``thinkforge.generators.runs.RunCheckpoint``): rows done, errors, tokens/s and an ETA.

Chunks are immutable once renamed into place, so each one is read once and its sums kept
(keyed by path and size); a refresh reads only the chunks written since.  Nothing is
written: ``.tmp`` files of a writer are skipped, never removed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from thinkforge.manifests.errors import NotFoundError
from thinkforge.manifests.store import RUN_ID_RE, StoreReader

from .tokens import Principal

_COLUMNS = ["key", "error_kind", "completion_tokens", "finished_at"]
_CACHE: dict[tuple[str, int], list[tuple]] = {}
_LOCK = threading.Lock()


def _chunk_rows(path: Path) -> list[tuple]:
    key = (str(path), path.stat().st_size)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    table = pq.read_table(path, columns=_COLUMNS)
    rows = list(zip(*(table.column(c).to_pylist() for c in _COLUMNS), strict=True))
    with _LOCK:
        if len(_CACHE) > 20_000:  # bounded: a long-lived server watching many runs
            _CACHE.clear()
        _CACHE[key] = rows
    return rows


def _meta(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_status(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    meta = _meta(run_dir)
    done: set[str] = set()
    failed: dict[str, str] = {}
    tokens = attempt_tokens = attempt_done = 0
    last = None
    started = float(meta.get("started_at") or 0)
    for path in sorted(run_dir.glob("chunk-*.parquet")):
        try:
            chunk = _chunk_rows(path)
        except (OSError, ValueError):  # renamed away or unreadable: the next refresh sees it
            continue
        for key, error_kind, completion_tokens, finished_at in chunk:
            if error_kind is None:
                if key not in done:
                    done.add(key)
                    tokens += completion_tokens or 0
                    if finished_at and finished_at >= started:
                        attempt_tokens += completion_tokens or 0
                        attempt_done += 1
            else:
                failed[key] = error_kind
            if finished_at:
                last = max(last or 0.0, finished_at)
    errors = {k: v for k, v in failed.items() if k not in done}
    requests = int(meta.get("requests") or 0)
    now = now if now is not None else time.time()
    published = meta.get("published")
    elapsed = ((now if not published else (last or now)) - started) if started else 0.0
    rate = attempt_done / elapsed if elapsed > 0 else 0.0
    left = max(requests - len(done) - len(errors), 0)
    by_kind: dict[str, int] = {}
    for kind in errors.values():
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return {"run_id": run_dir.name, "name": meta.get("name"), "kind": meta.get("kind"),
            "prompts": meta.get("prompts"), "requests": requests, "done": len(done),
            "errors": len(errors), "errors_by_kind": by_kind, "attempts": meta.get("attempts"),
            "started_at": started or None, "last_answer_at": last,
            "tokens": tokens, "tokens_per_s": attempt_tokens / elapsed if elapsed > 0 else None,
            "requests_per_s": rate or None,
            "eta_s": (left / rate) if rate > 0 and left and not published else (0 if not left else None),
            "progress": (len(done) + len(errors)) / requests if requests else None,
            "published": published, "state": "published" if published else
            ("finished" if requests and not left else "running")}


def runs(store: StoreReader, who: Principal) -> list[dict[str, Any]]:
    """Every generation run the caller may see, running ones first."""
    if not store.runs_dir.is_dir():
        return []
    out = []
    for run_dir in sorted(store.runs_dir.iterdir()):
        if run_dir.is_dir() and RUN_ID_RE.fullmatch(run_dir.name) and (run_dir / "run.json").is_file():
            name = _meta(run_dir).get("name") or ""
            if who.allows(str(name)):
                out.append(run_status(run_dir))
    return sorted(out, key=lambda r: (r["state"] != "running", -(r["started_at"] or 0)))


def run(store: StoreReader, who: Principal, run_id: str) -> dict[str, Any]:
    run_dir = store.runs_dir / run_id
    if not RUN_ID_RE.fullmatch(run_id) or not (run_dir / "run.json").is_file() or \
            not who.allows(str(_meta(run_dir).get("name") or "")):
        raise NotFoundError(f"no generation run {run_id!r}", hint="see /runs for the runs of this store")
    return run_status(run_dir)
