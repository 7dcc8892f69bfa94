"""Batch inference for OpenAI-compatible teachers (docs/teachers.md, "Batch inference").

Instead of one HTTP call per request, the pending requests of a run become one OpenAI
Batch API JSONL file per teacher model: a line per request, whose ``custom_id`` is the
run's request key (``thinkforge.generators.runs.request_key``), so results land in the
same resumable checkpoint as online answers.  Three ways, set on the teacher
(``BackendConfig``: run control, never part of a request key or the run id):

* ``batch``: the file is uploaded (``POST /v1/files``, purpose ``batch``), a batch is
  created (``POST /v1/batches``) and polled until it ends; its output and error files are
  read back into the checkpoint.  Submitted batches are recorded in the run's
  ``batches.json`` first, so a rerun after a crash polls the batch it already paid for,
  then submits only the keys still missing.
* ``batch_file_only``: the files are written to the run directory and the step stops
  (``BatchFilesWritten``), e.g. for vLLM's own ``run_batch`` entry point.
* ``batch_results``: a results file (OpenAI's output/error lines, or vLLM ``run_batch``
  output) is imported instead of calling the teacher.  Requests it does not answer are
  failures (``batch_missing``): the run stops under ``max_error_rate`` as usual and a
  ``batch_file_only`` rerun writes just those.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from thinkforge.manifests.errors import ConfigError, GenerationFailedError, InputDataError, require

from .backends import ChatRequest, Completion
from .backends.openai_client import read_reasoning, request_body
from .reasoning import join_reasoning
from .runs import checkpoint_row, stable_hash

LOG = logging.getLogger(__name__)

CHAT_URL = "/v1/chat/completions"
ENDED = {"completed", "failed", "expired", "cancelled"}


class BatchFilesWritten(Exception):
    """Not a failure: ``batch_file_only`` wrote the request files and the step stops here."""

    def __init__(self, files: dict[str, tuple[Path, int]]):
        self.files = files  # model -> (request file, requests in it)
        super().__init__(f"{sum(n for _, n in files.values())} requests written to "
                         f"{len(files)} batch file(s)")


def batch_mode(teacher) -> str | None:
    """``api``, ``file``, ``results`` or None (online calls) for a teacher config."""
    if getattr(teacher, "batch_results", None):
        return "results"
    if getattr(teacher, "batch_file_only", False):
        return "file"
    return "api" if getattr(teacher, "batch", False) else None


def batch_line(plan, teacher=None) -> dict[str, Any]:
    """One Batch API request line: the chat-completions body an online call would send
    (with ``teacher``: its per-request thinking switch too, docs/teachers.md)."""
    s = plan.sampling
    body = {"model": plan.model, "messages": plan.messages, "temperature": s.temperature,
            "top_p": s.top_p if s.temperature > 0 else 1.0, "max_tokens": s.max_new_tokens,
            "seed": s.seed}
    if teacher is not None:
        sent = request_body(teacher, plan.model, ChatRequest(plan.key, plan.messages, s, plan.mode))
        body.update(sent.get("extra_body") or {})  # a raw JSON body: extra fields go inline
    return {"custom_id": plan.key, "method": "POST", "url": CHAT_URL, "body": body}


def completion_from_line(line: dict[str, Any]) -> Completion:
    """A result line (OpenAI output/error file, vLLM run_batch output) as a completion."""
    key = line.get("custom_id")
    response = line.get("response") or {}
    status, body = response.get("status_code"), response.get("body")
    if line.get("error") or status != 200 or not isinstance(body, dict):
        error = line.get("error") or (body or {}).get("error") or body
        kind = ("rate_limited" if status == 429 else "server_error" if (status or 0) >= 500
                else f"http_{status}" if status else "batch_error")
        return Completion(key=key, text="", finish_reason="error", error_kind=kind,
                          error=f"batch result: {json.dumps(error)[:400]}")
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
        # a reasoning server's thinking in its own field (reasoning / reasoning_content)
        reasoning, field = read_reasoning(SimpleNamespace(**message), "auto")
        usage = body.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return Completion(key=key, text="", finish_reason="error", error_kind="malformed_reply",
                          error=f"batch result has no usable choices: {json.dumps(body)[:200]}")
    finish = choice.get("finish_reason") if choice.get("finish_reason") in ("stop", "length") else "stop"
    return Completion(key=key, text=join_reasoning(reasoning, text, finish),
                      prompt_tokens=usage.get("prompt_tokens") or 0,
                      completion_tokens=usage.get("completion_tokens") or 0, finish_reason=finish,
                      extra={"wire": field})


def run_batched(pending: list, config, checkpoint, result, progress, label: str) -> None:
    """Answer ``pending`` plans the batch way; results go to ``checkpoint`` and ``result``."""
    mode = batch_mode(config.teacher)
    if config.teacher.backend != "openai":
        raise ConfigError(f"batch inference needs the openai backend, not {config.teacher.backend!r}",
                          hint="add --backend openai --model <served model name>")
    by_model: dict[str, list] = defaultdict(list)
    for plan in pending:
        by_model[plan.model].append(plan)
    for model in by_model:
        result.identities[model] = {"backend": "openai", "model": model, "batch": mode}
    if mode == "results":
        _import_results(Path(config.teacher.batch_results).expanduser(), pending, checkpoint,
                        result, progress)
        return
    if mode == "file":
        raise BatchFilesWritten({model: (_write_requests(checkpoint.dir, model, plans,
                                                         config.teacher_for(model)), len(plans))
                                 for model, plans in by_model.items()})
    client = BatchClient(config.teacher)
    client.teacher_for = config.teacher_for
    for model, plans in by_model.items():
        progress.describe(f"{label} [batch]")
        client.run(model, plans, checkpoint, result, progress)


def _write_requests(run_dir: Path, model: str, plans: list, teacher=None) -> Path:
    """The request file of one model's plans (written aside, then renamed: never half)."""
    path = Path(run_dir) / f"batch-{stable_hash([model, sorted(p.key for p in plans)], 12)}.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for plan in plans:
            f.write(json.dumps(batch_line(plan, teacher), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputDataError(f"cannot read the batch results file {path}: {exc}",
                             hint="pass the output file vLLM run_batch (or the Batch API) wrote") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{path}:{number}: not a JSON line ({exc.msg})",
                                 hint="a batch results file has one JSON object per line") from None
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            raise InputDataError(f"{path}:{number}: a batch result line needs a custom_id",
                                 hint="pass the output of run_batch / the Batch API, not its input")
        lines.append(line)
    return lines


def _store(lines: list[dict[str, Any]], plans: dict[str, Any], checkpoint, result,
           progress) -> int:
    """Checkpoint the result lines of keys in ``plans``; returns how many were others'."""
    rows, foreign = [], 0
    for line in lines:
        plan = plans.get(line["custom_id"])
        if plan is None:
            foreign += 1
            continue
        rows.append(checkpoint_row(plan, completion_from_line(line), 0.0))
    checkpoint.append(rows)
    for row in rows:
        (result.completions if row["error_kind"] is None else result.failures)[row["key"]] = row
    good = [r for r in rows if r["error_kind"] is None]
    result.generated_now += len(good)
    result.tokens_now += sum(r["completion_tokens"] or 0 for r in good)
    progress.advance(len(rows), sum(r["completion_tokens"] or 0 for r in good))
    return foreign


def _missing(plans: dict[str, Any], result, kind: str, why: str, checkpoint) -> None:
    """Keys no result line answered become failures (the rerun asks them again)."""
    rows = [checkpoint_row(plan, Completion(key=key, text="", finish_reason="error",
                                            error_kind=kind, error=why), 0.0)
            for key, plan in plans.items()
            if key not in result.completions and key not in result.failures]
    checkpoint.append(rows)
    for row in rows:
        result.failures[row["key"]] = row


def _import_results(path: Path, pending: list, checkpoint, result, progress) -> None:
    plans = {p.key: p for p in pending}
    foreign = _store(_read_lines(path), plans, checkpoint, result, progress)
    if foreign:
        LOG.warning(f"{path}: {foreign} result lines answer requests this run does not ask "
                    "(another config or run?); ignored")
    _missing(plans, result, "batch_missing", f"no line in {path} answers this request", checkpoint)


class BatchClient:
    """Submit, poll and read back OpenAI Batch API jobs, recorded in ``batches.json``."""

    def __init__(self, teacher):
        openai = require("openai", "gen")
        urls = teacher.endpoint_urls()
        if not urls:
            raise ConfigError("--batch needs --base-url (the server with /v1/files and /v1/batches)",
                              hint="or write the file with --batch-file-only and import the "
                                   "results with --batch-results FILE")
        self.client = openai.OpenAI(base_url=urls[0], max_retries=3,
                                    api_key=os.environ.get(teacher.api_key_env) or "EMPTY",
                                    timeout=teacher.request_timeout_s)
        self.base_url, self.poll_s = urls[0], teacher.batch_poll_s
        self.window = teacher.batch_completion_window
        self.teacher_for = lambda model: teacher  # run_batched: each model's own settings

    def run(self, model: str, plans: list, checkpoint, result, progress) -> None:
        by_key = {p.key: p for p in plans}
        ledger = Path(checkpoint.dir) / "batches.json"
        batches = json.loads(ledger.read_text()) if ledger.is_file() else []
        for entry in batches:  # submitted by an earlier attempt and never read back: read it
            if entry["model"] == model and not entry.get("imported"):
                try:
                    self._finish(entry, by_key, checkpoint, result, progress)
                finally:
                    _save(ledger, batches)
        left = [p for p in plans if p.key not in result.completions and p.key not in result.failures]
        if not left:
            return
        path = _write_requests(checkpoint.dir, model, left, self.teacher_for(model))
        with open(path, "rb") as f:
            uploaded = self.client.files.create(file=(path.name, f), purpose="batch")
        batch = self.client.batches.create(input_file_id=uploaded.id, endpoint=CHAT_URL,
                                           completion_window=self.window,
                                           metadata={"thinkforge_run": Path(checkpoint.dir).name})
        entry = {"id": batch.id, "model": model, "input_file": path.name,
                 "input_file_id": uploaded.id, "requests": len(left), "submitted_at": time.time()}
        batches.append(entry)
        _save(ledger, batches)  # before polling: a crash now must not pay for it twice
        LOG.info(f"submitted batch {batch.id} ({len(left)} requests) to {self.base_url}")
        try:
            self._finish(entry, by_key, checkpoint, result, progress)
        finally:
            _save(ledger, batches)

    def _finish(self, entry: dict, by_key: dict, checkpoint, result, progress) -> None:
        """Poll one batch until it ends, then store its output and error lines."""
        while True:
            batch = self.client.batches.retrieve(entry["id"])
            if batch.status in ENDED:
                break
            time.sleep(self.poll_s)
        entry["status"] = batch.status
        if batch.status == "failed":
            errors = "; ".join(e.message or e.code or "" for e in
                               (batch.errors.data if batch.errors and batch.errors.data else []))
            entry["imported"] = True  # nothing to read back: the rerun submits these again
            raise GenerationFailedError(
                f"batch {entry['id']} failed at {self.base_url}: {errors or 'no reason given'}",
                hint=f"fix what the server refused in {Path(checkpoint.dir) / entry['input_file']} "
                     "(model name, body) and run the same command again")
        mine = {k: by_key[k] for k in _keys_of(Path(checkpoint.dir) / entry["input_file"]) if k in by_key}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                text = self.client.files.content(file_id).text
                _store([json.loads(raw) for raw in text.splitlines() if raw.strip()], mine,
                       checkpoint, result, progress)
        # an expired or cancelled batch answers part of its requests: the rest fail for now
        _missing(mine, result, f"batch_{batch.status}",
                 f"batch {entry['id']} ended {batch.status} without this request", checkpoint)
        entry["imported"] = True


def _keys_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(raw)["custom_id"] for raw in f if raw.strip()]


def _save(path: Path, batches: list[dict]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(batches, indent=2))
    os.replace(tmp, path)
