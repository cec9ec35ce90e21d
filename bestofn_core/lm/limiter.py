"""The process-wide bound on in-flight LM requests (``settings.max_concurrency``).

Concurrency comes from several places at once (examples of a batch, BestOfN attempts, ``n`` split into
single requests, user threads), so the bound is enforced where every request passes: ``BaseLM`` holds a
slot of :data:`request_limiter` around each backend call, and only around the call, never during a
retry's backoff sleep.

Requests run on many event loops: the shared runner loop, the user's loops, private loops of nested sync
calls. An ``asyncio.Semaphore`` belongs to one loop, so the limiter is a thread-safe counter with a FIFO
queue of waiters; each waiter is a future of its own loop, woken with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bestofn_core.errors import ConfigurationError
from bestofn_core.settings import settings

__all__ = ["RequestLimiter", "request_limiter", "request_slot"]


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    limit: int
    #: Set under the limiter's lock when a slot is handed to this waiter.
    granted: bool = field(default=False)


class RequestLimiter:
    """Counts in-flight requests across threads and event loops; admits a request while under its limit.

    Every request is counted, bounded or not, so a bound set while requests are running counts them.
    Waiters are served first come, first served; a new request never overtakes a waiting one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def in_flight(self) -> int:
        """How many requests hold a slot now."""
        with self._lock:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """How many requests wait for a slot now."""
        with self._lock:
            return len(self._waiters)

    async def acquire(self, limit: int | None) -> None:
        """Take a slot, waiting while ``limit`` or more are taken (``None``: never wait)."""
        with self._lock:
            if limit is None or (self._in_flight < limit and not self._waiters):
                self._in_flight += 1
                return
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, loop.create_future(), limit)
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if not waiter.granted:
                    self._waiters.remove(waiter)
            # A slot handed over before the cancellation is ours to give back, unless the future was
            # cancelled first: then _wake (which runs on this loop later) gives it back.
            if waiter.granted and not waiter.future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the first waiters that fit under their limit."""
        woken: list[_Waiter] = []
        with self._lock:
            self._in_flight -= 1
            while self._waiters and self._in_flight < self._waiters[0].limit:
                waiter = self._waiters.popleft()
                waiter.granted = True
                self._in_flight += 1
                woken.append(waiter)
        for waiter in woken:
            try:
                waiter.loop.call_soon_threadsafe(self._wake, waiter)
            except RuntimeError:  # its loop is closed: nobody awaits the slot any more
                self.release()

    def _wake(self, waiter: _Waiter) -> None:
        if waiter.future.cancelled():
            self.release()
        else:
            waiter.future.set_result(None)

    def _reset(self) -> None:
        # a forked child inherits the parent's count but none of the requests behind it
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters = deque()


#: The limiter of the process: every ``BaseLM`` request goes through it.
request_limiter = RequestLimiter()
os.register_at_fork(after_in_child=request_limiter._reset)


def current_limit() -> int | None:
    """``settings.max_concurrency``, checked (read per request, so a change applies to new requests)."""
    limit = settings.max_concurrency
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(
            f"settings.max_concurrency must be a positive integer or None (unbounded), not {limit!r}."
        )
    return limit


@asynccontextmanager
async def request_slot() -> AsyncIterator[None]:
    """Hold one of the ``settings.max_concurrency`` request slots for the duration of the block."""
    await request_limiter.acquire(current_limit())
    try:
        yield
    finally:
        request_limiter.release()
