"""A teacher whose text the test chooses, installed in place of the real backends.

Backends are tested for real (the tiny local model, SmolLM2 and vLLM in slow tests); what
this replaces is only the model's choice of words, so tests can pin answers that are right
or wrong and count teacher calls (a reused step must make none).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.local_server import LocalServer


class ScriptedBackend:
    calls = 0

    def __init__(self, answer: Callable, model: str = "scripted", batch_size: int = 4):
        self.answer, self.model = answer, model
        self.identity = {"backend": "scripted", "model": model}
        self.preferred_batch_size = batch_size

    def generate(self, requests):
        from thinkforge.generators.backends import Completion

        ScriptedBackend.calls += len(requests)
        return [Completion(key=r.key, text=self.answer(r), prompt_tokens=10, completion_tokens=5)
                for r in requests]

    def close(self):
        pass


def install(monkeypatch, answer: Callable) -> type[ScriptedBackend]:
    """Make every teacher answer ``answer(request)``; returns the class (its ``calls``)."""
    import thinkforge.generators.engine as engine

    ScriptedBackend.calls = 0
    monkeypatch.setattr(engine, "make_backend", lambda config, model: ScriptedBackend(answer, model))
    return ScriptedBackend


class ScriptedServer(LocalServer):
    """A real OpenAI-compatible chat server (HTTP, in a thread of the test process) whose
    reply text is ``answer(body)``: ``body`` is the request's JSON (model, messages, seed,
    temperature...).  Used as a teacher with planted answers and as an LLM judge that
    answers from a table.  ``requests`` holds every request body received, ``headers``
    their HTTP headers (names in lower case)."""

    def __init__(self, answer: Callable[[dict], str]):
        import json
        from http.server import BaseHTTPRequestHandler

        owner = self
        self.answer, self.requests, self.headers = answer, [], []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                text = owner.answer(body)
                reply = {"id": "x", "object": "chat.completion", "created": 0,
                         "model": body["model"], "choices": [{
                             "index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": len(text) // 4 + 1,
                                   "total_tokens": 11 + len(text) // 4}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
