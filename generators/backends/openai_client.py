"""The openai backend: any OpenAI-compatible chat server, through the official async client.

Requests run concurrently: at most ``concurrency`` calls in flight per endpoint, halved on
a 429 or 503 (once per round of calls) and grown back by one after as many successes as
the limit, and within ``requests_per_minute`` / ``tokens_per_minute`` when set (token
buckets shared by every endpoint).  The client's own retries are switched off
(``max_retries=0``) so that one policy, ours, covers every failure: 429, 5xx, 408/409,
timeouts, connection errors and malformed replies (a body that is not the expected JSON)
are retried up to ``max_retries`` times with exponential backoff and full jitter, waiting
``Retry-After`` when the server sends it (up to ``RETRY_AFTER_MAX_S``); other 4xx errors
(bad request, auth) are not retried.  After the last try the request becomes an error
completion (``error_kind``) instead of crashing the run; the step records it in
``rejected/`` and a rerun retries it.

A dead teacher is noticed in seconds: after ``dead_after_failures`` connection failures in
a row, or connection failures with no success for ``dead_after_s``, ``dead`` is set and
every request still waiting ends at once as ``teacher_dead``; the engine then stops the
run with exit 10, its checkpoint kept (docs/teachers.md).

Reasoning servers (docs/teachers.md): the reasoning is read from ``message.reasoning`` or
``message.reasoning_content`` (``reasoning_field``) and joined with the content into the
canonical ``<think>...</think>answer`` text; a per-request thinking switch is sent as
``chat_template_kwargs`` (``thinking_switch``, ``thinking_key``).

Several endpoints (``base_url`` + ``endpoints`` / ``endpoints_file``: replicas of one
teacher): requests are spread round-robin over this backend's own endpoints (all of them;
on a Dask worker, its share: ``spread``).  A connection error (refused, reset,
unreachable) marks an endpoint down for ``DOWN_FOR_S`` and the request goes at once to an
endpoint it has not tried (that failover is not one of its ``max_retries``); other errors
follow the retry policy.  When every endpoint is down the request fails like a single dead
server: its error names the endpoint.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from thinkforge.manifests.errors import ConfigError, require

from ..reasoning import join_reasoning
from .base import ChatRequest, Completion
from .limits import AdaptiveLimit, Health, RateLimiter

RETRYABLE_STATUS = {408, 409, 429}
DOWN_FOR_S = 30.0  # an endpoint that refused a connection is skipped this long
RETRY_AFTER_MAX_S = 600.0  # a Retry-After beyond this is a broken header, not advice


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
        self.limits = {url: AdaptiveLimit(config.concurrency) for url in self.urls}
        self.rate = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.health = Health(config.dead_after_failures, config.dead_after_s)
        self.on_completion = None  # the engine's per-request progress callback
        self.spread(0, 1)
        self.identity: dict[str, Any] = {"backend": "openai", "model": model,
                                         "base_url": self.urls[0],
                                         "openai": self.openai.__version__}
        if len(self.urls) > 1:
            self.identity["endpoints"] = list(self.urls)

    @property
    def dead(self) -> dict | None:
        """{"endpoint", "reason", "error"} once the teacher stopped answering."""
        return self.health.dead

    def pacing(self) -> dict[str, Any]:
        """What the rate and concurrency limits did (for provenance)."""
        return {"concurrency_now": {u: lim.limit for u, lim in self.limits.items()},
                "concurrency_lowest": min(lim.lowest for lim in self.limits.values()),
                "rate_limit_wait_s": round(self.rate.waited_s, 3)}

    def spread(self, rank: int, workers: int) -> None:
        """Send to the share of the endpoints of worker ``rank`` of ``workers`` (the other
        endpoints only take over a dead one's requests)."""
        self.own = endpoint_share(self.urls, rank, workers)
        # one call should feed every connection a few times before the next checkpoint
        self.preferred_batch_size = max(self.config.batch_size,
                                        self.config.concurrency * 4 * len(self.own))

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        # each call tries again (a Dask worker keeps its backend across runs, and the server
        # may be back); the failure count carries over, so a still-dead one stops at once
        self.health.dead = None
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: list[ChatRequest]) -> list[Completion]:
        clients: dict[str, Any] = {}  # endpoint -> AsyncOpenAI, made on first use
        for limit in self.limits.values():
            limit.bind()

        def client(url: str):
            if url not in clients:
                clients[url] = self.openai.AsyncOpenAI(
                    base_url=url, api_key=self.api_key, max_retries=0,
                    timeout=self.config.request_timeout_s)
            return clients[url]

        try:
            return list(await asyncio.gather(*(self._one(client, r, i)
                                               for i, r in enumerate(requests))))
        finally:
            for c in clients.values():
                await c.close()

    async def _one(self, client, request: ChatRequest, index: int) -> Completion:
        # a request holds a slot of its own endpoint's from its first try to its last
        # (backoff included), so at most the endpoint's limit are under way
        limit = self.limits[self.own[index % len(self.own)]]
        generation = await limit.enter()
        try:
            completion = await self._tries(client, request, index, limit, generation)
        finally:
            await limit.leave()
        if self.on_completion is not None:
            self.on_completion(completion)
        return completion

    def _pick(self, index: int, tried: set[str]) -> str:
        """This request's endpoint: its own round-robin turn, else an endpoint that is up
        (own first) and not yet tried, else any that is up, else its turn anyway."""
        now = time.monotonic()
        turn = index % len(self.own)
        order = self.own[turn:] + self.own[:turn] + [u for u in self.urls if u not in self.own]
        up = [u for u in order if self._down.get(u, 0.0) <= now]
        return next((u for u in up if u not in tried), up[0] if up else order[0])

    def _dead_completion(self, request: ChatRequest, calls: int) -> Completion:
        dead = self.health.dead
        return Completion(key=request.key, text="", finish_reason="error", error_kind="teacher_dead",
                          error=f"{dead['endpoint']}: not answering ({dead['reason']})",
                          attempts=calls)

    async def _tries(self, client, request: ChatRequest, index: int, limit: AdaptiveLimit,
                     generation: int) -> Completion:
        tried: set[str] = set()
        attempt = calls = 0
        estimate = request_tokens(request)
        while True:
            if self.health.dead:  # also ends the requests that waited for a slot
                return self._dead_completion(request, calls)
            url = self._pick(index, tried)
            await self.rate.acquire(estimate)
            calls += 1
            try:
                completion = await self._call(client(url), request)
                completion.attempts = calls
                self.health.succeeded()
                limit.succeeded()
                self.rate.refund(estimate - completion.prompt_tokens - completion.completion_tokens)
                return completion
            except Exception as exc:  # classified below; anything unknown is not retried
                kind, retry, retry_after = self._classify(exc)
                error = f"{url}: {type(exc).__name__}: {exc}"[:500]  # names the endpoint
                status = getattr(exc, "status_code", None)
            tried.add(url)
            if status in (429, 503):
                limit.throttled(generation)  # the server is overloaded: fewer in flight
                generation = limit.generation
            if kind == "connection":  # refused / unreachable: fail over now, not a retry
                self.health.connection_failed(url, error)
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
        response = await client.chat.completions.create(**request_body(self.config, self.model, request))
        try:
            choice = response.choices[0]
            content = choice.message.content or ""
            reasoning, field = read_reasoning(choice.message, self.config.reasoning_field)
            usage = response.usage
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion_tokens = usage.completion_tokens if usage else 0
        except (AttributeError, IndexError, TypeError) as exc:
            raise MalformedReply(f"reply has no usable choices: {str(response)[:200]}") from exc
        finish = choice.finish_reason if choice.finish_reason in ("stop", "length") else "stop"
        return Completion(key=request.key, text=join_reasoning(reasoning, content, finish),
                          prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          finish_reason=finish, extra={"wire": field})

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
        if retry_after is not None:  # the server said when: wait that long, however long
            return min(retry_after, RETRY_AFTER_MAX_S)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: retries of a burst spread out

    def close(self) -> None:
        pass


def request_body(config, model: str, request: ChatRequest) -> dict[str, Any]:
    """The chat-completions arguments of one request (also what a batch file line holds):
    sampling, and the per-request thinking switch when the teacher takes one."""
    s = request.sampling
    messages = request.messages
    extra: dict[str, Any] = {}
    if request.prefill is not None:
        # a reply to continue (answer forcing): the partial assistant turn, left open.  vLLM
        # and SGLang read these two fields; a server that rejects them fails the forcing
        # round, and the reply stays unforced (generators/forcing.py)
        messages = [*messages, {"role": "assistant", "content": request.prefill}]
        extra.update(continue_final_message=True, add_generation_prompt=False)
    body: dict[str, Any] = dict(model=model, messages=messages, temperature=s.temperature,
                                top_p=s.top_p if s.temperature > 0 else 1.0,
                                max_tokens=s.max_new_tokens, seed=s.seed)
    if config.thinking_switch == "chat_template_kwargs" and request.mode in ("on", "off"):
        extra["chat_template_kwargs"] = {config.thinking_key: request.mode == "on"}
    if extra:
        body["extra_body"] = extra
    return body


def request_tokens(request: ChatRequest) -> int:
    """What a tokens-per-minute limit charges a request when it is sent: a prompt estimate
    (4 characters a token) plus its completion budget; the reply's usage corrects it."""
    return sum(len(m["content"]) for m in request.messages) // 4 + request.sampling.max_new_tokens


def read_reasoning(message, reasoning_field: str) -> tuple[str | None, str | None]:
    """(reasoning text, the field it came in) from a reply message; (None, None) inline."""
    fields = {"auto": ("reasoning", "reasoning_content"), "inline": ()}.get(
        reasoning_field, (reasoning_field,))
    for name in fields:
        value = getattr(message, name, None)
        if isinstance(value, str) and value.strip():
            return value, name
    return None, None


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
