"""Pacing of an HTTP teacher: rate limits, adaptive concurrency, dead-teacher detection.

Each keeps its state on the backend across ``generate`` calls (every call runs its own
event loop), so a limit learnt in one batch holds in the next.  Clocks are injectable so
tests can drive them without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets for requests and tokens per minute (None: unlimited).

    Each bucket holds one second's worth (at least one request) and starts full, so calls
    are spread evenly instead of a minute's quota going out in a burst.  A request larger
    than the bucket waits for a full bucket and leaves it in debt: the average holds.
    """

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep):
        self.clock, self.sleep = clock, sleep
        self.buckets = {name: _Bucket(per_minute / 60.0, clock)
                        for name, per_minute in (("requests", requests_per_minute),
                                                 ("tokens", tokens_per_minute)) if per_minute}
        self.waited_s = 0.0

    async def acquire(self, tokens: int) -> None:
        want = {"requests": 1.0, "tokens": float(tokens)}
        while True:
            wait = max((b.wait_for(want[name]) for name, b in self.buckets.items()), default=0.0)
            if wait <= 0:
                for name, bucket in self.buckets.items():
                    bucket.take(want[name])
                return
            self.waited_s += wait
            await self.sleep(wait)

    def refund(self, tokens: int) -> None:
        """Give back what a request was charged beyond its real usage (or charge more)."""
        if "tokens" in self.buckets:
            self.buckets["tokens"].take(-tokens)


class _Bucket:
    def __init__(self, per_second: float, clock):
        self.rate, self.clock = per_second, clock
        self.capacity = max(1.0, per_second)
        self.level, self.at = self.capacity, clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` (at most a full bucket) is there; 0 when it is."""
        self._refill()
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 1e-9 else need / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level - amount)


class AdaptiveLimit:
    """At most ``limit`` calls in flight: halved on a 429/503, grown by one after ``limit``
    successes in a row, never above ``ceiling``.  Only calls sent under the current limit
    cut it (``generation``), so one burst of 429s halves it once, not once per call."""

    def __init__(self, ceiling: int):
        self.ceiling = self.limit = max(1, ceiling)
        self.generation = self.streak = 0
        self.lowest = self.limit
        self._cond: asyncio.Condition | None = None
        self._in_flight = 0

    def bind(self) -> None:
        """Fresh waiting state for a new event loop (one per generate call)."""
        self._cond, self._in_flight = asyncio.Condition(), 0

    async def enter(self) -> int:
        async with self._cond:
            await self._cond.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
            return self.generation

    async def leave(self) -> None:
        async with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def throttled(self, generation: int) -> None:
        if generation == self.generation:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self.generation += 1
            self.streak = 0

    def succeeded(self) -> None:
        self.streak += 1
        if self.limit < self.ceiling and self.streak >= self.limit:
            self.limit += 1
            self.streak = 0


class Health:
    """Connection failures in a row, and how long since the last success: a teacher is dead
    after ``failures`` in a row, or failures with no success for ``seconds``."""

    def __init__(self, failures: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = failures, seconds, clock
        self.in_a_row = 0
        self.last_ok = clock()
        self.dead: dict | None = None  # {"endpoint", "reason", "error"} once dead

    def succeeded(self) -> None:
        self.in_a_row, self.last_ok = 0, self.clock()

    def connection_failed(self, endpoint: str, error: str) -> None:
        self.in_a_row += 1
        quiet = self.clock() - self.last_ok
        if self.dead is None and (self.in_a_row >= self.limit or quiet >= self.window):
            reason = (f"{self.in_a_row} connection failures in a row" if self.in_a_row >= self.limit
                      else f"connection failures and no answer for {quiet:.0f} s")
            self.dead = {"endpoint": endpoint, "reason": reason, "error": error}
