"""Generation runs read live from their checkpoints (``<store>/runs/<run-id>/``, written by
``thinkforge.generators.runs.RunCheckpoint``): rows done, errors, tokens/s and an ETA.

Chunks are immutable once renamed into place, so each one is read once and its sums kept
(keyed by path and size); a refresh reads only the chunks written since.  Nothing is
written: ``.tmp`` files of a writer are skipped, never removed.

The verified rate is a live estimate: each answer of a math prompt is shaped and checked
by the math verifier the step uses (``thinkforge.generators``), once per chunk; code
answers are not run here (that needs the sandbox of the step), and the published
version's stats are the final word.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from thinkforge.manifests.errors import ForgeError, NotFoundError
from thinkforge.manifests.store import RUN_ID_RE, StoreReader

from .tokens import Principal

_COLUMNS = ["key", "error_kind", "completion_tokens", "finished_at", "prompt_id", "mode", "text"]
_CACHE: dict[tuple[str, int], list[tuple]] = {}
_LOCK = threading.Lock()


def _chunk_rows(path: Path, judge) -> list[tuple]:
    """(key, error_kind, completion_tokens, finished_at, verdict) of each row of a chunk."""
    key = (str(path), path.stat().st_size)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    table = pq.read_table(path, columns=_COLUMNS)
    rows = [(k, err, tokens, at, judge(prompt_id, mode, text) if err is None else None)
            for k, err, tokens, at, prompt_id, mode, text in
            zip(*(table.column(c).to_pylist() for c in _COLUMNS), strict=True)]
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


def _judge(store: StoreReader | None, meta: dict[str, Any]):
    """verdict(prompt_id, mode, text) -> True/False/None for the run's math prompts."""
    gold = _math_gold(store, meta.get("prompts")) if store is not None else {}
    if not gold:
        return lambda prompt_id, mode, text: None
    from thinkforge.generators.reasoning import shape_output
    from thinkforge.generators.verifiers.math_answers import verify_math

    fmt = ((meta.get("step") or {}).get("config") or {}).get("reasoning_format") or "native"

    def judge(prompt_id: str, mode: str, text: str | None) -> bool | None:
        if prompt_id not in gold or not text:
            return None
        shaped = shape_output(text, mode, fmt)
        answer = f"Final answer: {shaped.answer_text}" if shaped.declared else shaped.answer_text
        try:
            return verify_math(answer, gold[prompt_id], {"id": prompt_id}).correct
        except Exception:  # a verifier failure is "undecided", never a broken page
            return None

    return judge


_GOLD: dict[tuple[str, str], dict[str, str]] = {}


def _math_gold(store: StoreReader, ref: str | None) -> dict[str, str]:
    """Ground truth of the math prompts of a run's prompts version (read once per version)."""
    if not ref:
        return {}
    try:
        m = store.resolve(ref)
    except ForgeError:
        return {}
    key = (str(store.root), m.fingerprint)
    if key not in _GOLD:
        columns = {c["name"] for c in m.schema_}
        if not {"id", "verifier", "ground_truth"} <= columns:
            return {}
        from thinkforge.manifests.duck import quote_ident
        from thinkforge.manifests.sql import run_sql

        rows = run_sql(store, f"SELECT id, CAST(ground_truth AS VARCHAR) FROM {quote_ident(m.ref)} "
                              "WHERE verifier = 'math' AND ground_truth IS NOT NULL").rows()
        _GOLD[key] = dict(rows)
    return _GOLD[key]


def run_status(run_dir: Path, now: float | None = None, store: StoreReader | None = None) -> dict[str, Any]:
    meta = _meta(run_dir)
    judge = _judge(store, meta)
    done: set[str] = set()
    verdicts: list[bool] = []
    failed: dict[str, str] = {}
    tokens = attempt_tokens = attempt_done = 0
    last = None
    started = float(meta.get("started_at") or 0)
    for path in sorted(run_dir.glob("chunk-*.parquet")):
        try:
            chunk = _chunk_rows(path, judge)
        except (OSError, ValueError):  # renamed away or unreadable: the next refresh sees it
            continue
        for key, error_kind, completion_tokens, finished_at, verdict in chunk:
            if error_kind is None:
                if key not in done:
                    done.add(key)
                    if verdict is not None:
                        verdicts.append(verdict)
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
            "verified": sum(verdicts), "verified_rate": sum(verdicts) / len(verdicts) if verdicts else None,
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
                out.append(run_status(run_dir, store=store))
    return sorted(out, key=lambda r: (r["state"] != "running", -(r["started_at"] or 0)))


def run(store: StoreReader, who: Principal, run_id: str) -> dict[str, Any]:
    run_dir = store.runs_dir / run_id
    if not RUN_ID_RE.fullmatch(run_id) or not (run_dir / "run.json").is_file() or \
            not who.allows(str(_meta(run_dir).get("name") or "")):
        raise NotFoundError(f"no generation run {run_id!r}", hint="see /runs for the runs of this store")
    return run_status(run_dir, store=store)
