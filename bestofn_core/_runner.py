"""Running the async core from sync code: one background event loop, shared by the whole process.

The library is async-native; the sync API submits coroutines to a single daemon thread that runs an
event loop for the life of the process. One loop (not ``asyncio.run`` per call) keeps connection pools of
HTTP clients alive between calls and starts exactly one thread, however many calls are made.
The caller's ``contextvars`` context is copied into the task, so settings overrides are seen.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None

RUNNER_THREAD_NAME = "bestofn-event-loop"


def _start() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=RUNNER_THREAD_NAME, daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread = loop, thread
        return loop


def _forget_after_fork() -> None:
    # a forked child has the loop and pool objects but not the threads that ran them
    global _loop, _thread, _pool
    _loop, _thread, _pool = None, None, None


os.register_at_fork(after_in_child=_forget_after_fork)


def runner_loop() -> asyncio.AbstractEventLoop:
    """The shared background event loop, started on first use."""
    return _start()


def on_runner_thread() -> bool:
    """Whether the caller is running on the shared loop's thread."""
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result (or raise its exception).

    Safe from any thread, including one whose own event loop is running (e.g. a notebook): the work runs
    on the shared loop while the caller waits. Called from the shared loop's own thread (sync code
    running inside the async core), it runs the coroutine on a private loop in a helper thread instead,
    since waiting on the shared loop from inside it would deadlock.
    """
    ctx = contextvars.copy_context()
    if on_runner_thread():
        return _run_in_private_loop(coro, ctx)
    loop = runner_loop()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def submit() -> None:
        task = ctx.run(loop.create_task, coro)

        def done(t: asyncio.Task[T]) -> None:
            if t.cancelled():
                future.cancel()
            elif (exc := t.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(t.result())

        task.add_done_callback(done)
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)

    loop.call_soon_threadsafe(submit)
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


def _run_in_private_loop(coro: Coroutine[Any, Any, T], ctx: contextvars.Context) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(ctx.run(asyncio.run, coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name="bestofn-nested-call")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


#: Upper bound on worker threads for blocking user code (sync forward, sync rewards) run from async code.
MAX_WORKER_THREADS = 64
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            # one bounded pool for the process (not the loop's default, which is sized by CPU count and
            # would cap concurrency of sync user code at a handful of threads on small machines)
            _pool = concurrent.futures.ThreadPoolExecutor(
                MAX_WORKER_THREADS, thread_name_prefix="bestofn-worker"
            )
        return _pool


async def run_in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking ``fn`` in the shared worker pool with the caller's context, and await it."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_worker_pool(), functools.partial(ctx.run, fn, *args, **kwargs))


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` if it is awaitable, else return it as is."""
    if isinstance(value, Awaitable):
        return await value
    return value
