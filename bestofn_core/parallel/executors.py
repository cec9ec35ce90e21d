"""The built-in executors: ``asyncio`` (tasks on the batch's event loop) and ``threads`` (worker threads).

Both only start and cancel calls (``bestofn_core.protocols.Executor``); the batch semantics live in
``bestofn_core.parallel.engine``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import threading
from typing import Any

from bestofn_core.protocols import BatchCall

__all__ = ["AsyncioExecutor", "ThreadsExecutor"]

logger = logging.getLogger(__name__)


class AsyncioExecutor:
    """Runs each call natively (``module.acall``) as a task on the batch's event loop: no threads.

    The best choice for modules with their own ``aforward`` (``Predict``, ``ChainOfThought``,
    ``BestOfN``): thousands of calls in flight cost a few kilobytes each. Cancelling a call cancels its
    task, and with it the HTTP request.
    """

    def open(self, *, num_workers: int) -> _TaskSession:
        """A session creating tasks on the running loop (the kernel bounds how many run at once)."""
        return _TaskSession()

    def __repr__(self) -> str:
        return "AsyncioExecutor()"


class _TaskSession:
    def submit(self, call: BatchCall, /) -> asyncio.Future[Any]:
        # the task copies the current context: the caller's settings, isolated per call
        return asyncio.ensure_future(call.arun())

    async def aclose(self) -> None:
        pass  # tasks hold nothing beyond themselves, and the kernel awaited or cancelled each one


class ThreadsExecutor:
    """Runs each call's sync ``__call__`` on a worker thread; the threads of a batch end with it.

    For modules whose code is sync (a ``forward`` that blocks). Threads are started on demand and reused
    within the batch, so there are never more than the calls in flight (``num_threads``, plus a straggler's
    second try). They are not the library's shared worker pool: a batch that filled that pool with
    blocked calls would starve the sync code those calls run inside (sync rewards, sync ``forward``), a
    deadlock. When the batch ends, idle workers are joined; a worker still running a cancelled call (a
    thread cannot be interrupted) is a daemon thread that exits as soon as the call returns.
    """

    _batches = itertools.count(1)

    def open(self, *, num_workers: int) -> _ThreadSession:
        """A session starting daemon worker threads on demand, named ``bestofn-batch<N>-<i>``."""
        return _ThreadSession(asyncio.get_running_loop(), next(self._batches))

    def __repr__(self) -> str:
        return "ThreadsExecutor()"


_Work = tuple[BatchCall, "concurrent.futures.Future[Any]"]


class _ThreadSession:
    def __init__(self, loop: asyncio.AbstractEventLoop, batch: int) -> None:
        self._loop = loop
        self._name = f"bestofn-batch{batch}"
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting on the queue that no queued work has claimed yet
        self._workers: list[threading.Thread] = []
        self._current: dict[threading.Thread, concurrent.futures.Future[Any]] = {}

    def submit(self, call: BatchCall, /) -> asyncio.Future[Any]:
        work: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            start_worker = self._idle == 0
            if not start_worker:
                self._idle -= 1  # that idle worker will take this work
        self._queue.put((call, work))
        if start_worker:
            worker = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()
        # cancelling the asyncio future cancels `work`, which a worker then never starts
        return asyncio.wrap_future(work, loop=self._loop)

    def _work(self) -> None:
        me = threading.current_thread()
        while (item := self._queue.get()) is not None:
            call, work = item
            if work.set_running_or_notify_cancel():
                with self._lock:
                    self._current[me] = work
                try:
                    work.set_result(call.run())
                except BaseException as exc:  # the call's failure is the future's, not the worker's
                    work.set_exception(exc)
            with self._lock:
                self._idle += 1

    async def aclose(self) -> None:
        with self._lock:
            # a running future at this point belongs to a call the batch cancelled (it cannot stop)
            busy = {worker for worker, work in self._current.items() if not work.done()}
        for _ in self._workers:
            self._queue.put(None)  # one stop sign per worker; a busy one reads its sign when done
        idle = [worker for worker in self._workers if worker not in busy]
        # joining blocks, so wait on the loop until the idle workers (which exit at once) are gone
        while any(worker.is_alive() for worker in idle):
            await asyncio.sleep(0.001)
        for worker in idle:
            worker.join()
        if busy:
            logger.debug("%d worker thread(s) still run cancelled calls; they exit when done", len(busy))
