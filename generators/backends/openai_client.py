"""The openai backend: any OpenAI-compatible chat server, through the official async client.

Requests run concurrently (at most ``concurrency`` in flight).  The client's own retries
are switched off (``max_retries=0``) so that one policy, ours, covers every failure: 429,
5xx, 408/409, timeouts, connection errors and malformed replies (a body that is not the
expected JSON) are retried up to ``max_retries`` times with exponential backoff and full
jitter, waiting ``Retry-After`` when the server sends it; other 4xx errors (bad request,
auth) are not retried.  After the last try the request becomes an error completion
(``error_kind``) instead of crashing the run; the step records it in ``rejected/`` and a
rerun retries it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from manifests.errors import ConfigError, require

from .base import ChatRequest, Completion

RETRYABLE_STATUS = {408, 409, 429}


class OpenAIBackend:
    def __init__(self, config, model: str):
        self.openai = require("openai", "gen")
        if not config.base_url:
            raise ConfigError("the openai backend needs --base-url",
                              hint="e.g. --base-url http://127.0.0.1:8000/v1 (vLLM, SGLang, NIM...)")
        self.config, self.model = config, model
        self.api_key = os.environ.get(config.api_key_env) or "EMPTY"  # local servers ignore it
        # one call should feed every connection a few times before the next checkpoint
        self.preferred_batch_size = max(config.batch_size, config.concurrency * 4)
        self.identity: dict[str, Any] = {"backend": "openai", "model": model,
                                         "base_url": config.base_url,
                                         "openai": self.openai.__version__}

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: list[ChatRequest]) -> list[Completion]:
        client = self.openai.AsyncOpenAI(base_url=self.config.base_url, api_key=self.api_key,
                                         max_retries=0, timeout=self.config.request_timeout_s)
        limit = asyncio.Semaphore(self.config.concurrency)

        async def bounded(request: ChatRequest) -> Completion:
            async with limit:
                return await self._with_retries(client, request)

        try:
            return list(await asyncio.gather(*(bounded(r) for r in requests)))
        finally:
            await client.close()

    async def _with_retries(self, client, request: ChatRequest) -> Completion:
        last_kind, last_error = "unknown", ""
        for attempt in range(self.config.max_retries + 1):
            try:
                completion = await self._call(client, request)
                completion.attempts = attempt + 1
                return completion
            except Exception as exc:  # classified below; anything unknown is not retried
                kind, retry, retry_after = self._classify(exc)
                last_kind, last_error = kind, f"{type(exc).__name__}: {exc}"[:500]
                if not retry or attempt == self.config.max_retries:
                    return Completion(key=request.key, text="", finish_reason="error",
                                      error_kind=kind, error=last_error, attempts=attempt + 1)
                await asyncio.sleep(self._delay(attempt, retry_after))
        return Completion(key=request.key, text="", finish_reason="error", error_kind=last_kind,
                          error=last_error, attempts=self.config.max_retries + 1)

    async def _call(self, client, request: ChatRequest) -> Completion:
        s = request.sampling
        response = await client.chat.completions.create(
            model=self.model, messages=request.messages, temperature=s.temperature,
            top_p=s.top_p if s.temperature > 0 else 1.0, max_tokens=s.max_new_tokens, seed=s.seed)
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = response.usage
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion_tokens = usage.completion_tokens if usage else 0
        except (AttributeError, IndexError, TypeError) as exc:
            raise MalformedReply(f"reply has no usable choices: {str(response)[:200]}") from exc
        finish = choice.finish_reason if choice.finish_reason in ("stop", "length") else "stop"
        return Completion(key=request.key, text=text.strip(), prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens, finish_reason=finish)

    def _classify(self, exc: Exception) -> tuple[str, bool, float | None]:
        """(error kind, retry?, Retry-After seconds) of one failed call."""
        o = self.openai
        if isinstance(exc, o.APITimeoutError):  # a subclass of APIConnectionError: test first
            return "timeout", True, None
        if isinstance(exc, o.APIConnectionError):
            return "connection", True, None
        if isinstance(exc, o.APIStatusError):
            status = exc.status_code
            retry_after = _retry_after(exc.response.headers if exc.response is not None else {})
            if status == 429:
                return "rate_limited", True, retry_after
            if status >= 500:
                return "server_error", True, retry_after
            return f"http_{status}", status in RETRYABLE_STATUS, retry_after
        if isinstance(exc, (MalformedReply, o.APIResponseValidationError, ValueError)):
            return "malformed_reply", True, None  # json.JSONDecodeError is a ValueError
        return "unexpected", False, None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.backoff_max_s)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retries of a burst spread out

    def close(self) -> None:
        pass


class MalformedReply(Exception):
    """The server answered 200 but not with a chat completion."""


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after") if headers else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
