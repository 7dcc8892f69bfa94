"""Issue 23 item 3: rate limits, concurrency that adapts to 429s, cost; item 5: dead teacher."""

from __future__ import annotations

import asyncio

import pytest
from thinkforge.generators.backends import ChatRequest, Completion, Sampling, make_backend
from thinkforge.generators.backends.limits import AdaptiveLimit, Health, RateLimiter
from thinkforge.generators.config import BackendConfig
from thinkforge.generators.progress import GenerationProgress

from tests.generators.fault_proxy import FakeOpenAIServer, FaultProxy

pytest.importorskip("openai")


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_requests_per_minute_spreads_calls_evenly():
    clock = FakeClock()
    limiter = RateLimiter(60, None, clock=clock, sleep=clock.sleep)  # one a second

    async def five():
        for _ in range(5):
            await limiter.acquire(100)
    asyncio.run(five())
    assert clock.now == pytest.approx(4.0)  # the first goes at once, then one per second


def test_tokens_per_minute_charges_the_estimate_and_refunds_the_unused_part():
    clock = FakeClock()
    limiter = RateLimiter(None, 600, clock=clock, sleep=clock.sleep)  # 10 tokens a second

    async def run():
        await limiter.acquire(10)      # the full bucket
        limiter.refund(8)              # the reply used 2 of the 10 charged
        await limiter.acquire(10)      # 8 refunded + 0.0 s of refill: waits for 2 tokens
    asyncio.run(run())
    assert clock.now == pytest.approx(0.2)


def test_concurrency_halves_once_per_burst_of_429s_and_grows_back():
    limit = AdaptiveLimit(8)
    generation = limit.generation
    for _ in range(5):                 # five calls sent under the same limit all got 429
        limit.throttled(generation)
    assert limit.limit == 4
    for _ in range(4 + 5 + 6 + 7):     # as many successes as the limit, then one more slot
        limit.succeeded()
    assert limit.limit == 8 and limit.lowest == 4
    for _ in range(10):
        limit.succeeded()
    assert limit.limit == 8            # never above the configured concurrency


def test_dead_after_failures_in_a_row_or_a_quiet_minute():
    clock = FakeClock()
    health = Health(3, 60.0, clock=clock)
    health.connection_failed("u", "refused")
    health.connection_failed("u", "refused")
    health.succeeded()                 # a success resets the count
    health.connection_failed("u", "refused")
    health.connection_failed("u", "refused")
    assert health.dead is None
    health.connection_failed("u", "refused")
    assert health.dead["reason"] == "3 connection failures in a row"
    slow = Health(20, 60.0, clock=clock)
    clock.now += 61
    slow.connection_failed("v", "reset")
    assert slow.dead["reason"] == "connection failures and no answer for 61 s"


def requests(n):
    return [ChatRequest(f"k{i}", [{"role": "user", "content": f"q{i}"}], Sampling(0.0, 1.0, 16, i))
            for i in range(n)]


@pytest.mark.parametrize("status", ["429", "503"])
def test_overload_with_retry_after_lowers_the_concurrency_then_it_recovers(status):
    with FakeOpenAIServer() as server, FaultProxy(server.url, [status] * 3,
                                                  retry_after_s=0.1) as proxy:
        backend = make_backend(BackendConfig(backend="openai", base_url=proxy.url, model="t",
                                             concurrency=4, max_retries=3), "t")
        out = backend.generate(requests(40))
    assert all(c.ok for c in out) and proxy.seen.count(status) == 3
    pacing = backend.pacing()
    assert pacing["concurrency_lowest"] in (1, 2)   # cut on the 429s (once per burst)
    assert pacing["concurrency_now"][proxy.url] == 4  # and grown back by the successes


def test_progress_line_counts_rows_errors_cost_and_eta():
    progress = GenerationProgress("s [on]", total=10, done=2, enabled=False)
    progress.request_done(Completion("a", "x", completion_tokens=5), cost=0.25)
    progress.request_done(Completion("b", "", finish_reason="error", error_kind="connection"))
    line = progress.line()
    assert line.startswith("s [on]: 4/10 rows (40%), ")
    assert "errors 1 (connection 1), $0.2500, ETA " in line
