"""A local OpenAI-compatible server with the Batch API, for the batch inference tests.

It speaks the real wire protocol the official client uses: ``POST /v1/files`` (multipart
upload, purpose ``batch``), ``POST /v1/batches``, ``GET /v1/batches/{id}`` (the status
moves validating -> in_progress -> completed over successive polls),
``GET /v1/files/{id}/content``, and ``POST /v1/chat/completions`` for online calls.
Answers are a pure function of the request body (``answer(body)``), so online and batch
runs can be compared row for row.  ``fail`` names custom_ids whose result goes to the
error file with a 500; ``expire_after`` ends every batch ``expired`` after answering only
that many of its lines.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler

from tests.local_server import LocalServer


def default_answer(body: dict) -> str:
    """Right for some seeds, wrong for others: reasoning, then a declared answer."""
    seed = body.get("seed") or 0
    return f"I add the numbers step by step.\n\nFinal answer: {42 if seed % 2 == 0 else 41}"


def chat_completion(body: dict, answer=default_answer) -> dict:
    text = answer(body)
    return {"id": "chatcmpl-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12],
            "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": len(text.split()),
                      "total_tokens": 20 + len(text.split())}}


class BatchServer(LocalServer):
    def __init__(self, answer=default_answer, fail: set[str] = frozenset(),
                 expire_after: int | None = None):
        self.answer, self.fail, self.expire_after = answer, set(fail), expire_after
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.submitted: list[list[str]] = []   # custom_ids of each batch, in order
        self.chat_calls = 0
        self.polls = 0
        self.lock = threading.Lock()
        super().__init__(_Handler)

    # -- what the handler calls -------------------------------------------------------------
    def add_file(self, data: bytes, purpose: str) -> dict:
        with self.lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                "filename": "upload.jsonl", "purpose": purpose, "status": "processed"}

    def create_batch(self, request: dict) -> dict:
        lines = [json.loads(raw) for raw in self.files[request["input_file_id"]].splitlines() if raw.strip()]
        with self.lock:
            batch_id = f"batch-{len(self.batches) + 1}"
            self.submitted.append([line["custom_id"] for line in lines])
            self.batches[batch_id] = {"lines": lines, "polls": 0, "request": request}
        return self.batch_object(batch_id)

    def batch_object(self, batch_id: str) -> dict:
        state = self.batches[batch_id]
        state["polls"] += 1
        self.polls += 1
        status = {1: "validating", 2: "in_progress"}.get(state["polls"], "done")
        out: dict = {"id": batch_id, "object": "batch", "endpoint": state["request"]["endpoint"],
                     "input_file_id": state["request"]["input_file_id"],
                     "completion_window": state["request"]["completion_window"],
                     "created_at": 0, "status": status, "output_file_id": None,
                     "error_file_id": None, "errors": None,
                     "request_counts": {"total": len(state["lines"]), "completed": 0, "failed": 0}}
        if status == "done":
            out.update(self._finish(batch_id, state))
        return out

    def _finish(self, batch_id: str, state: dict) -> dict:
        if "result" not in state:
            answered = state["lines"][:self.expire_after] if self.expire_after is not None else state["lines"]
            good, bad = [], []
            for n, line in enumerate(answered):
                row = {"id": f"{batch_id}-req-{n}", "custom_id": line["custom_id"], "error": None}
                if line["custom_id"] in self.fail:
                    row["response"] = {"status_code": 500, "request_id": f"r{n}",
                                       "body": {"error": {"message": "injected failure"}}}
                    bad.append(row)
                else:
                    row["response"] = {"status_code": 200, "request_id": f"r{n}",
                                       "body": chat_completion(line["body"], self.answer)}
                    good.append(row)
            ids = [self.add_file("".join(json.dumps(r) + "\n" for r in rows).encode(), "batch_output")["id"]
                   if rows else None for rows in (good, bad)]
            state["result"] = {
                "status": "expired" if self.expire_after is not None else "completed",
                "output_file_id": ids[0], "error_file_id": ids[1],
                "request_counts": {"total": len(state["lines"]), "completed": len(good),
                                   "failed": len(bad)}}
        return state["result"]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status: int, payload, content_type: str = "application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        owner: BatchServer = self.server.owner
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/files":
            fields = _multipart(self.headers["Content-Type"], body)
            return self._reply(200, owner.add_file(fields["file"], fields["purpose"].decode()))
        request = json.loads(body)
        if self.path == "/v1/batches":
            if request.get("endpoint") != "/v1/chat/completions":
                return self._reply(400, {"error": {"message": "unsupported endpoint"}})
            return self._reply(200, owner.create_batch(request))
        if self.path == "/v1/chat/completions":
            owner.chat_calls += 1
            return self._reply(200, chat_completion(request, owner.answer))
        self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_GET(self):
        owner: BatchServer = self.server.owner
        parts = self.path.strip("/").split("/")  # v1/batches/<id> or v1/files/<id>/content
        if parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in owner.batches:
            return self._reply(200, owner.batch_object(parts[2]))
        if parts[:2] == ["v1", "files"] and parts[3:] == ["content"] and parts[2] in owner.files:
            return self._reply(200, owner.files[parts[2]], "application/octet-stream")
        self._reply(404, {"error": {"message": f"no route {self.path}"}})


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """Field name -> value of a multipart/form-data body (the stdlib email parser)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}
