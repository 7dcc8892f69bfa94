"""A fault-injecting HTTP proxy and a fake OpenAI-compatible server, for the retry tests.

``FaultProxy(upstream)`` forwards requests to ``upstream`` except that the first requests
meet the faults given in order: ``500``, ``429`` and ``503`` (with ``Retry-After``), ``timeout``
(the reply comes after the client gave up), ``reset`` (TCP reset, no reply), ``malformed``
(200 with a body that is not JSON), ``fatal`` (400, which must not be retried).
``FakeOpenAIServer`` answers chat completions with "Final answer: 42" (or the reply
shape a test gives it, e.g. a reasoning server's separate reasoning field).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

from tests.local_server import LocalServer


class _Server(LocalServer):
    handler: type

    def __init__(self):
        super().__init__(self.handler)


class _FakeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        owner: FakeOpenAIServer = self.server.owner
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with owner.lock:
            if owner.die_after is not None and len(owner.requests) >= owner.die_after:
                # dying: until the listening socket is closed, connections are reset
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            owner.requests.append(body)
            answered = len(owner.requests)
        message, finish = owner.reply(body)
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": finish,
                              "message": {"role": "assistant", **message}}],
                 "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if owner.die_after is not None and answered >= owner.die_after:
            threading.Thread(target=owner.kill, daemon=True).start()


def plain_reply(body: dict) -> tuple[dict, str]:
    return {"content": "2 + 40 = 42.\n\nFinal answer: 42"}, "stop"


class FakeOpenAIServer(_Server):
    """``reply(body) -> (message fields, finish_reason)`` shapes the answer (the reasoning
    wire formats: ``content`` only, ``reasoning`` / ``reasoning_content`` + ``content``);
    ``die_after=N``: the server stops listening after its N-th answer (a teacher that dies
    mid-run: later connections are refused)."""

    handler = _FakeHandler

    def __init__(self, reply=plain_reply, die_after: int | None = None):
        self.requests: list[dict] = []
        self.reply, self.die_after = reply, die_after
        self.lock = threading.Lock()
        super().__init__()

    def kill(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        owner: FaultProxy = self.server.owner
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fault = owner.next_fault()
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault == "timeout":
            time.sleep(owner.hang_s)  # the client has given up by now: nothing to forward
            return self._reply(504, b'{"error": {"message": "too late"}}')
        if fault in ("500", "503", "429", "fatal"):
            status = {"500": 500, "503": 503, "429": 429, "fatal": 400}[fault]
            extra = {"Retry-After": str(owner.retry_after_s)} if fault in ("429", "503") else {}
            return self._reply(status, b'{"error": {"message": "injected"}}', extra)
        if fault == "malformed":
            return self._reply(200, b'{"choices": [ this is not json')
        upstream = owner.upstream.rstrip("/") + self.path[len("/v1"):]
        request = urllib.request.Request(upstream, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": self.headers.get("Authorization", "")})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:  # pass the upstream's error status through
            status, data = exc.code, exc.read()
        except OSError:  # upstream dropped the request (its client gave up): drop ours too
            self.close_connection = True
            return
        self._reply(status, data)

    def _reply(self, status: int, data: bytes, headers: dict | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout fault): nothing to deliver


class FaultProxy(_Server):
    handler = _ProxyHandler

    def __init__(self, upstream: str, faults: list[str], hang_s: float = 3.0,
                 retry_after_s: float = 1.0):
        self.upstream, self.faults = upstream, list(faults)
        self.hang_s, self.retry_after_s = hang_s, retry_after_s
        self.seen: list[str] = []
        self.lock = threading.Lock()
        super().__init__()

    def next_fault(self) -> str:
        with self.lock:
            fault = self.faults.pop(0) if self.faults else "pass"
            self.seen.append(fault)
            return fault
