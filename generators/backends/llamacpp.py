"""The llamacpp backend: llama.cpp's server core in this process (PyPI ``xllamacpp``).

It reads a GGUF file directly: the embedded teacher's Q4_1 file as it ships (no
conversion to safetensors, no dequantizing), or any local ``.gguf`` path.  One
``xllamacpp.Server`` holds ``batch_size`` slots; a batch's requests are sent from as many
threads at once, so the server decodes them together and hands a finished slot the next
request straight away (continuous batching: a short answer never waits for the longest
of its batch, as it does in one transformers ``generate`` call).

The server is llama.cpp's own: it applies the chat template stored in the GGUF (for
SmolLM2 it renders the same text as transformers' template, checked in the tests),
and continues a final assistant message instead of opening a new turn: a request's
``prefill`` (answer forcing) is sent as that message, and the server's reply, which
repeats it, is cut back to what follows it.  Its sampler
chain adds top-k 40 and min-p 0.05 by default; both are switched off per request, so
a request samples with exactly the temperature / top-p the recipe asks, as the other
backends do.  Each request carries its own seed: a sampled answer does not depend on
its batch or its slot (measured; see docs/generation.md).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from thinkforge.manifests.errors import require

from .base import ChatRequest, Completion
from .model_cache import resolve_gguf
from .placement import idle_cores

CONTEXT_PER_SLOT = 2048  # tokens of prompt + completion per slot unless max_model_len says
CHUNKS_PER_CALL = 4      # requests per generate() = slots x this: fewer idle slots at a chunk's end


class LlamaCppBackend:
    def __init__(self, config, model: str):
        xllamacpp = require("xllamacpp", "gen")
        path = resolve_gguf(model)
        threads = config.cpu_threads or idle_cores()
        slots = config.batch_size
        per_slot = config.max_model_len or CONTEXT_PER_SLOT
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel, params.n_ctx = slots, slots * per_slot
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
        params.verbosity = 0  # per-request slot logs would bury our progress line on stderr
        params.sampling.seed = 0  # a request without a seed still decodes reproducibly
        self.server = xllamacpp.Server(params)
        self.pool = ThreadPoolExecutor(slots, thread_name_prefix="llamacpp")
        self.preferred_batch_size = slots * CHUNKS_PER_CALL
        self.on_completion = None  # the engine's per-request progress callback
        self.identity: dict[str, Any] = {
            "backend": "llamacpp", "model": model, "path": str(path),
            "gguf_sha256": _sha256(path), "gguf_bytes": path.stat().st_size,
            "xllamacpp": xllamacpp.__version__, "cpu_threads": threads, "slots": slots,
            "context_per_slot": per_slot}

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if not requests:
            return []
        return list(self.pool.map(self._one, requests))

    def _one(self, request: ChatRequest) -> Completion:
        try:
            reply = self.server.handle_chat_completions(request_body(request))
            if isinstance(reply, str):  # older bindings hand back the JSON text
                reply = json.loads(reply)
            completion = read_reply(request, reply)
        except Exception as exc:  # the bindings raise ValueError on a request they refuse
            completion = Completion(key=request.key, text="", finish_reason="error",
                                    error_kind="invalid_request" if isinstance(exc, ValueError)
                                    else "unexpected", error=f"{type(exc).__name__}: {exc}"[:500])
        if self.on_completion is not None:
            self.on_completion(completion)
        return completion

    def close(self) -> None:
        """Stop the threads and free the server (its model, KV cache and loop thread)."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.server = None


def request_body(request: ChatRequest) -> dict[str, Any]:
    """llama.cpp's chat-completions arguments for one request."""
    s = request.sampling
    messages = request.messages
    if request.prefill is not None:  # an open assistant turn: llama.cpp continues it
        messages = [*messages, {"role": "assistant", "content": request.prefill}]
    body: dict[str, Any] = {"messages": messages, "max_tokens": s.max_new_tokens,
                            "temperature": s.temperature,
                            # its extra samplers off: the recipe's temperature / top-p only
                            "top_p": s.top_p if s.temperature > 0 else 1.0,
                            "top_k": 0, "min_p": 0.0}
    if s.seed is not None:
        body["seed"] = s.seed
    return body


def read_reply(request: ChatRequest, reply: dict[str, Any]) -> Completion:
    """A Completion from the server's reply: text and usage, or an error completion."""
    error = reply.get("error") if isinstance(reply, dict) else None
    if error is None and isinstance(reply, dict) and "choices" not in reply and "type" in reply:
        error = reply  # the bindings' own failure (a reply they could not parse): flat
    if error is not None:
        error = error if isinstance(error, dict) else {"message": error}
        return Completion(key=request.key, text="", finish_reason="error",
                          error_kind=str(error.get("type") or "server_error"),
                          error=str(error.get("message", error))[:500])
    try:
        choice = reply["choices"][0]
        content = choice["message"].get("content") or ""
        usage = reply.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return Completion(key=request.key, text="", finish_reason="error",
                          error_kind="malformed_reply",
                          error=f"reply has no usable choices: {str(reply)[:200]}")
    if request.prefill and content.startswith(request.prefill):
        content = content[len(request.prefill):]  # the reply repeats the prefill: only what follows
    return Completion(key=request.key, text=content.strip(),
                      prompt_tokens=int(usage.get("prompt_tokens", 0)),
                      completion_tokens=int(usage.get("completion_tokens", 0)),
                      finish_reason="length" if choice.get("finish_reason") == "length" else "stop")


def _sha256(path: Path) -> str:
    """The GGUF's digest for the manifest, cached by (path, size, mtime): ~0.3 s per 100 MB."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


_DIGESTS: dict[tuple[str, int, int], str] = {}
