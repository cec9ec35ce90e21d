"""The process-wide bound on in-flight LM requests (settings.max_concurrency)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import ConfigurationError, LMRateLimitError
from bestofn_core.lm.base import BaseLM
from bestofn_core.lm.limiter import RequestLimiter, request_limiter
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_core.testing.dummy_lm import DummyLM


class Gauge:
    """Counts how many holders are inside at once, across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = 0

    async def hold(self, limiter: RequestLimiter, limit: int | None, seconds: float) -> None:
        await limiter.acquire(limit)
        try:
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            await asyncio.sleep(seconds)
            with self.lock:
                self.active -= 1
        finally:
            limiter.release()


async def test_admits_up_to_the_limit_first_come_first_served() -> None:
    limiter = RequestLimiter()
    order: list[int] = []

    async def request(index: int) -> None:
        await limiter.acquire(2)
        order.append(index)
        await asyncio.sleep(0.01)
        limiter.release()

    gauge = Gauge()
    await asyncio.gather(*(request(i) for i in range(8)), *(gauge.hold(limiter, 2, 0.01) for _ in range(4)))
    assert order == list(range(8))
    assert gauge.peak <= 2 and limiter.in_flight == 0 and limiter.waiting == 0


def test_the_bound_holds_across_threads_and_event_loops() -> None:
    limiter = RequestLimiter()
    gauge = Gauge()

    def worker() -> None:
        async def main() -> None:
            await asyncio.gather(*(gauge.hold(limiter, 3, 0.01) for _ in range(5)))

        asyncio.run(main())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gauge.peak == 3 and limiter.in_flight == 0 and limiter.waiting == 0


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    limiter = RequestLimiter()
    await limiter.acquire(1)
    waiter = asyncio.ensure_future(limiter.acquire(1))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.in_flight == 0 and limiter.waiting == 0
    await asyncio.wait_for(limiter.acquire(1), 1)  # a new request gets the slot at once
    limiter.release()


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_woke_is_given_back() -> None:
    limiter = RequestLimiter()
    await limiter.acquire(1)
    waiter = asyncio.ensure_future(limiter.acquire(1))
    await asyncio.sleep(0)
    limiter.release()  # hands the slot over; the waiter's loop has not run it yet
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert limiter.in_flight == 0 and limiter.waiting == 0


async def test_no_limit_never_waits_but_counts() -> None:
    limiter = RequestLimiter()
    for _ in range(5):
        await limiter.acquire(None)
    assert limiter.in_flight == 5
    waiter = asyncio.ensure_future(limiter.acquire(5))  # a bound set now counts the running ones
    await asyncio.sleep(0)
    assert not waiter.done()
    limiter.release()
    await asyncio.wait_for(waiter, 1)
    for _ in range(5):
        limiter.release()
    assert limiter.in_flight == 0


async def test_max_concurrency_bounds_lm_requests_and_changes_apply_to_new_requests() -> None:
    seen: list[int] = []

    def delay(request: LMRequest) -> float:
        seen.append(request_limiter.in_flight)  # called while the request holds its slot
        return 0.03

    lm = DummyLM(["x"] * 12, delay=delay)
    with bon.context(max_concurrency=2):
        await asyncio.gather(*(lm.acall(f"p{i}") for i in range(6)))
    assert max(seen) == 2
    seen.clear()
    await asyncio.gather(*(lm.acall(f"u{i}") for i in range(6)))  # back to unbounded
    assert max(seen) == 6


class RateLimitedOnce(BaseLM):
    """Answers ``a`` only after one 429 asking to wait 0.3 s; records when each request started."""

    def __init__(self) -> None:
        super().__init__("test/rate-limited", num_retries=1, cache=False)
        self.started: list[tuple[str, float]] = []

    async def acomplete(self, request: LMRequest) -> LMResponse:
        prompt = str(request.messages[-1]["content"])
        self.started.append((prompt, time.monotonic()))
        if prompt == "a" and len([p for p, _ in self.started if p == "a"]) == 1:
            raise LMRateLimitError("slow down", retry_after=0.3)
        return LMResponse(outputs=[prompt])


async def test_the_slot_is_not_held_during_retry_backoff() -> None:
    lm = RateLimitedOnce()
    bon.configure(max_concurrency=1)
    first = asyncio.ensure_future(lm.acall("a"))
    await asyncio.sleep(0.05)  # "a" got its 429 and is backing off
    assert await lm.acall("b") == ["b"]
    assert await first == ["a"]
    starts = dict(lm.started[:2])
    assert starts["b"] - starts["a"] < 0.25  # "b" did not wait for "a"'s backoff to end


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
def test_a_bad_max_concurrency_is_a_configuration_error(bad: Any) -> None:
    bon.configure(max_concurrency=bad)
    with pytest.raises(ConfigurationError, match="max_concurrency must be a positive integer"):
        DummyLM(["x"])("p")
