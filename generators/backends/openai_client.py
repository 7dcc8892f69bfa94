"""The openai backend: any OpenAI-compatible chat server, through the official async client.

Requests run concurrently (at most ``concurrency`` in flight).  The client's own retries
are switched off (``max_retries=0``) so that one policy, ours, covers every failure: 429,
5xx, 408/409, timeouts, connection errors and malformed replies (a body that is not the
expected JSON) are retried up to ``max_retries`` times with exponential backoff and full
jitter, waiting ``Retry-After`` when the server sends it; other 4xx errors (bad request,
auth) are not retried.  After the last try the request becomes an error completion
(``error_kind``) instead of crashing the run; the step records it in ``rejected/`` and a
rerun retries it.

Several endpoints (``base_url`` + ``endpoints`` / ``endpoints_file``: replicas of one
teacher): requests are spread round-robin over this backend's own endpoints (all of them;
on a Dask worker, its share: ``spread``), with at most ``concurrency`` in flight per
endpoint (a request holds its slot through its retries).  A connection error (refused,
reset, unreachable) marks an endpoint down for ``DOWN_FOR_S`` and the request goes at
once to an endpoint it has not tried (that failover is not one of its ``max_retries``);
other errors follow the retry policy.  When
every endpoint is down the request fails like a single dead server: its error names the
endpoint, and the run stops as "max error rate exceeded" with that error first.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from thinkforge.manifests.errors import ConfigError, require

from .base import ChatRequest, Completion

RETRYABLE_STATUS = {408, 409, 429}
DOWN_FOR_S = 30.0  # an endpoint that refused a connection is skipped this long


def endpoint_share(urls: list[str], rank: int, workers: int) -> list[str]:
    """The endpoints worker ``rank`` of ``workers`` sends to: every endpoint goes to some
    worker and every worker gets at least one (fewer endpoints than workers: shared)."""
    if workers <= 1 or not urls:
        return list(urls)
    if len(urls) <= workers:
        return [urls[rank % len(urls)]]
    return urls[rank % workers::workers]


class OpenAIBackend:
    def __init__(self, config, model: str):
        self.openai = require("openai", "gen")
        self.urls = config.endpoint_urls()
        if not self.urls:
            raise ConfigError("the openai backend needs --base-url",
                              hint="e.g. --base-url http://127.0.0.1:8000/v1 (vLLM, SGLang, NIM...)")
        self.config, self.model = config, model
        self.api_key = os.environ.get(config.api_key_env) or "EMPTY"  # local servers ignore it
        self._down: dict[str, float] = {}  # endpoint -> monotonic time to try it again
        self.spread(0, 1)
        self.identity: dict[str, Any] = {"backend": "openai", "model": model,
                                         "base_url": self.urls[0],
                                         "openai": self.openai.__version__}
        if len(self.urls) > 1:
            self.identity["endpoints"] = list(self.urls)

    def spread(self, rank: int, workers: int) -> None:
        """Send to the share of the endpoints of worker ``rank`` of ``workers`` (the other
        endpoints only take over a dead one's requests)."""
        self.own = endpoint_share(self.urls, rank, workers)
        # one call should feed every connection a few times before the next checkpoint
        self.preferred_batch_size = max(self.config.batch_size,
                                        self.config.concurrency * 4 * len(self.own))

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: list[ChatRequest]) -> list[Completion]:
        clients: dict[str, Any] = {}  # endpoint -> AsyncOpenAI, made on first use
        # a request holds a slot of its own endpoint's from its first try to its last
        # (backoff included), so at most `concurrency` per endpoint are under way
        limits = {url: asyncio.Semaphore(self.config.concurrency) for url in self.own}

        def client(url: str):
            if url not in clients:
                clients[url] = self.openai.AsyncOpenAI(
                    base_url=url, api_key=self.api_key, max_retries=0,
                    timeout=self.config.request_timeout_s)
            return clients[url]

        try:
            return list(await asyncio.gather(*(self._with_retries(client, limits, r, i)
                                               for i, r in enumerate(requests))))
        finally:
            for c in clients.values():
                await c.close()

    def _pick(self, index: int, tried: set[str]) -> str:
        """This request's endpoint: its own round-robin turn, else an endpoint that is up
        (own first) and not yet tried, else any that is up, else its turn anyway."""
        now = time.monotonic()
        turn = index % len(self.own)
        order = self.own[turn:] + self.own[:turn] + [u for u in self.urls if u not in self.own]
        up = [u for u in order if self._down.get(u, 0.0) <= now]
        return next((u for u in up if u not in tried), up[0] if up else order[0])

    async def _with_retries(self, client, limits, request: ChatRequest, index: int) -> Completion:
        async with limits[self.own[index % len(self.own)]]:
            return await self._tries(client, request, index)

    async def _tries(self, client, request: ChatRequest, index: int) -> Completion:
        tried: set[str] = set()
        attempt = calls = 0
        while True:
            url = self._pick(index, tried)
            calls += 1
            try:
                completion = await self._call(client(url), request)
                completion.attempts = calls
                return completion
            except Exception as exc:  # classified below; anything unknown is not retried
                kind, retry, retry_after = self._classify(exc)
                error = f"{url}: {type(exc).__name__}: {exc}"[:500]  # names the endpoint
            tried.add(url)
            if kind == "connection":  # refused / unreachable: fail over now, not a retry
                self._down[url] = time.monotonic() + DOWN_FOR_S
                now = time.monotonic()
                if any(u not in tried and self._down.get(u, 0.0) <= now for u in self.urls):
                    continue
            if not retry or attempt >= self.config.max_retries:
                return Completion(key=request.key, text="", finish_reason="error",
                                  error_kind=kind, error=error, attempts=calls)
            await asyncio.sleep(self._delay(attempt, retry_after))
            attempt += 1

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
