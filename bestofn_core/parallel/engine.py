"""The batch kernel: what every executor gets for free, implemented once.

Results in input order, at most ``num_threads`` examples in flight, the ``max_errors`` budget (cancelling
the rest once it is spent), straggler resubmission, the progress bar and the failure list all live here.
An executor only starts a call and cancels it (``bestofn_core.protocols.Executor``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bestofn_core.errors import BatchError, ConfigurationError
from bestofn_core.parallel.calls import Job
from bestofn_core.parallel.progress import Progress
from bestofn_core.protocols import Executor, ExecutorSession

logger = logging.getLogger("bestofn_core.parallel")

#: How many failures a ``BatchError`` message shows (all of them are in ``.failures``).
SHOWN_FAILURES = 3


@dataclass(frozen=True)
class BatchOptions:
    """The resolved options of one batch (defaults from settings already applied)."""

    num_threads: int
    max_errors: int | None
    timeout: float | None
    straggler_limit: int
    provide_traceback: bool
    disable_progress_bar: bool


@dataclass
class BatchOutcome:
    """What a finished batch produced: a slot per example, and what failed."""

    results: list[Any]
    failures: list[tuple[int, Any, BaseException]] = field(default_factory=list)


@dataclass(eq=False)
class _Try:
    job: Job
    attempt: int
    started: float


async def run_batch(jobs: Sequence[Job], executor: Executor, options: BatchOptions) -> BatchOutcome:
    """Run every job through ``executor``; raise ``BatchError`` when failures reach ``max_errors``."""
    session = executor.open(num_workers=options.num_threads)
    if not isinstance(session, ExecutorSession):
        raise ConfigurationError(
            f"The executor {executor!r} returned {session!r} from open(); a session needs submit(call) "
            "and async aclose() (see bestofn_core.protocols.ExecutorSession)."
        )
    batch = _Batch(jobs, session, options)
    try:
        await batch.run()
    finally:
        await batch.shut_down()
    if batch.stopped:
        raise batch.error() from batch.outcome.failures[0][2]
    return batch.outcome


class _Batch:
    def __init__(self, jobs: Sequence[Job], session: ExecutorSession, options: BatchOptions) -> None:
        self.jobs = jobs
        self.session = session
        self.options = options
        self.outcome = BatchOutcome(results=[None] * len(jobs))
        self.progress = Progress(len(jobs), disable=options.disable_progress_bar)
        self.running: dict[asyncio.Future[Any], _Try] = {}
        self.finished: asyncio.Queue[asyncio.Future[Any]] = asyncio.Queue()
        self.tries: dict[int, list[asyncio.Future[Any]]] = {}  # running tries of each example
        self.next_job = 0
        self.settled = 0
        self.resubmitted: set[int] = set()
        self.first_errors: dict[int, BaseException] = {}  # a failed try whose second try still runs
        self.stopped = False

    async def run(self) -> None:
        while True:
            self._fill()
            if not self.running:
                return
            done = await self._next_done(self._straggler_wait())
            # successes first: when both tries of a straggler end together, the result wins
            for future in sorted(done, key=lambda f: f.cancelled() or f.exception() is not None):
                self._finish(future)
                if self.stopped:
                    return
            self._resubmit_stragglers()

    async def _next_done(self, timeout: float | None) -> list[asyncio.Future[Any]]:
        """The tries that finished, waiting up to ``timeout`` seconds for the first one."""
        # a queue fed by done-callbacks costs O(1) per finished try; asyncio.wait would re-register
        # a callback on every running try at each wake-up
        try:
            done = [await asyncio.wait_for(self.finished.get(), timeout)]
        except asyncio.TimeoutError:
            return []
        while not self.finished.empty():
            done.append(self.finished.get_nowait())
        return done

    @property
    def unsettled(self) -> int:
        """Examples without a result or a failure yet, started or not."""
        return len(self.jobs) - self.settled

    def _fill(self) -> None:
        # jobs start in order and each one keeps a running try until it settles
        while self.next_job < len(self.jobs) and self.next_job - self.settled < self.options.num_threads:
            self._submit(self.jobs[self.next_job], attempt=0)
            self.next_job += 1

    def _submit(self, job: Job, attempt: int) -> None:
        future = self.session.submit(job.call(attempt))
        if not isinstance(future, asyncio.Future):
            raise ConfigurationError(
                f"The executor's session {self.session!r} returned {future!r} from submit(); it must return "
                "an asyncio.Future (an asyncio.Task is one) bound to the running loop."
            )
        self.running[future] = _Try(job, attempt, time.monotonic())
        self.tries.setdefault(job.index, []).append(future)
        future.add_done_callback(self.finished.put_nowait)

    def _finish(self, future: asyncio.Future[Any]) -> None:
        attempt = self.running.pop(future)
        index = attempt.job.index
        tries = self.tries.get(index)
        if tries is None:  # settled already: the other try of a straggler won
            return
        tries.remove(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.outcome.results[index] = future.result()
            self._settle(index)
            self.progress.succeeded()
            return
        if tries:
            self.first_errors.setdefault(index, error)  # the other try may still succeed
            return
        error = self.first_errors.pop(index, error)
        self.outcome.failures.append((index, attempt.job.example, error))
        self._settle(index)
        self.progress.failed_one()
        self._log_failure(index, error)
        max_errors = self.options.max_errors
        if max_errors is not None and len(self.outcome.failures) >= max(max_errors, 1):
            self.stopped = True

    def _settle(self, index: int) -> None:
        self.settled += 1
        for future in self.tries.pop(index):
            future.cancel()  # the other try of a straggler lost

    def _straggler_wait(self) -> float | None:
        """Seconds until the next try becomes a straggler, or ``None`` when none can."""
        candidates = self._straggler_candidates()
        if not candidates:
            return None
        timeout = self.options.timeout
        assert timeout is not None
        now = time.monotonic()
        return max(0.0, min(attempt.started + timeout - now for attempt in candidates))

    def _straggler_candidates(self) -> list[_Try]:
        timeout, limit = self.options.timeout, self.options.straggler_limit
        if timeout is None or self.unsettled > limit:
            return []
        return [
            attempt
            for attempt in self.running.values()
            if attempt.attempt == 0 and attempt.job.index not in self.resubmitted
        ]

    def _resubmit_stragglers(self) -> None:
        timeout = self.options.timeout
        now = time.monotonic()
        for attempt in self._straggler_candidates():
            assert timeout is not None
            # asyncio may wake a timer up to its clock resolution early: allow a millisecond
            if now - attempt.started + 1e-3 >= timeout:
                index = attempt.job.index
                logger.warning(
                    "Example %d has run for %.1fs with %d example(s) left; starting a second try "
                    "(the first to succeed wins)",
                    index,
                    now - attempt.started,
                    self.unsettled,
                )
                self.resubmitted.add(index)
                self._submit(attempt.job, attempt=1)

    def _log_failure(self, index: int, error: BaseException) -> None:
        if self.options.provide_traceback:
            logger.error("Example %d failed: %s: %s", index, type(error).__name__, error, exc_info=error)
        else:
            logger.error(
                "Example %d failed: %s: %s (provide_traceback=True logs the traceback)",
                index,
                type(error).__name__,
                error,
            )

    async def shut_down(self) -> None:
        """Cancel what still runs, wait for it to settle, close the session and the progress bar."""
        pending = list(self.running)
        for future in pending:
            future.cancel()
        self.running.clear()
        try:
            # a task needs a turn of the loop to unwind; a cancelled plain future is done at once
            await asyncio.gather(*pending, return_exceptions=True)
            await self.session.aclose()
        finally:
            self.progress.close()

    def error(self) -> BatchError:
        """The ``BatchError`` of a batch stopped by ``max_errors``."""
        failures = self.outcome.failures
        finished = self.settled - len(failures)
        cancelled = self.unsettled
        causes = "\n".join(
            f"  example {index}: {type(error).__name__}: {error}"
            for index, _, error in failures[:SHOWN_FAILURES]
        )
        more = f"\n  ... and {len(failures) - SHOWN_FAILURES} more" if len(failures) > SHOWN_FAILURES else ""
        return BatchError(
            f"The batch stopped after {len(failures)} of {len(self.jobs)} examples failed "
            f"(max_errors={self.options.max_errors}); {finished} finished, {cancelled} were cancelled. "
            f"Failures (all of them are in .failures):\n{causes}{more}",
            failures,
            self.outcome.results,
        )
