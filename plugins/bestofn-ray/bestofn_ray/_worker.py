"""What runs on a Ray worker: load the shipped program and settings, run one call, return its result.

This module is imported by the worker processes (by reference, as ``bestofn_ray._worker.run_call``), so
``bestofn-ray`` and ``bestofn-core`` must be installed on every node of the cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any

from bestofn_ray.errors import ShippingError

#: How many shipped objects (programs, settings) a worker keeps unpickled, most recently used first.
CACHED_OBJECTS = 16

#: How long a waiting worker may take to notice a cancellation (see ``_wait``).
_POLL_SECONDS = 0.05

_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()


def run_call(
    program: list[Any],
    settings: list[Any],
    index: int,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    """Run ``program(*args, **kwargs)`` in the shipped settings, as the kernel runs a call in process.

    ``program`` and ``settings`` each hold one ``ObjectRef`` of cloudpickled bytes; they are wrapped in a
    list so that Ray passes the reference instead of the value, and a worker that already unpickled that
    object (an earlier example of the same batch) neither fetches nor unpickles it again.

    The call goes through the kernel's own per-call path (``BatchCall.arun``, as in the asyncio
    executor: per-example usage tracking, native ``acall`` for async modules) on the library's event
    loop, while this thread waits for it.
    """
    _accept_cancellation()
    fn = _load(program[0], "program")
    overrides, trace_enabled = _load(settings[0], "settings")
    # a fresh trace per call: the worker keeps the settings across calls, and a shared list would grow
    context = {**overrides, "trace": [] if trace_enabled else None}
    return _wait(_call(fn, context, index, attempt, tuple(args), dict(kwargs)))


async def _call(
    fn: Any, context: dict[str, Any], index: int, attempt: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    from bestofn_core.parallel.calls import Job
    from bestofn_core.settings import DEFAULTS, settings

    # a driver on a newer bestofn-core may know settings this worker does not: those cannot matter here
    known = {name: value for name, value in context.items() if name in DEFAULTS}
    with settings.context(**known):  # inside the task: this call's settings, and only this call's
        return await Job(index, None, fn, args, kwargs).call(attempt).arun()


def _accept_cancellation() -> None:
    """Let ``ray.cancel`` interrupt this worker even if it was started with SIGINT ignored.

    Ray cancels a running task with a keyboard interrupt, which Python delivers only when SIGINT has a
    handler. A driver started with SIGINT ignored (a background job of a script, ``nohup``) passes that
    on to its workers, and cancellation then silently did nothing: stragglers and the tasks ``max_errors``
    stops ran on to the end. Only the main thread may set a handler; Ray runs tasks there.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        None,
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _wait(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the library's event loop; a ``KeyboardInterrupt`` (``ray.cancel``) cancels it.

    Ray cancels a running task by raising ``KeyboardInterrupt`` in its thread, which Python delivers only
    between bytecodes: a thread blocked in one long ``Future.result()`` would not see it until the call
    ended. Waiting in short slices lets the interrupt through at once, and the call is then cancelled on
    the loop (its HTTP requests with it) instead of running on to completion.
    """
    from bestofn_core.runtime import runner_loop

    future = asyncio.run_coroutine_threadsafe(coro, runner_loop())
    try:
        while True:
            try:
                return future.result(timeout=_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        future.cancel()
        raise


def _load(ref: Any, what: str) -> Any:
    import ray
    from ray import cloudpickle

    key = ref.hex()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    blob = ray.get(ref)
    try:
        value = cloudpickle.loads(blob)
    except Exception as exc:
        raise ShippingError(
            f"The batch's {what} could not be unpickled on the Ray worker: {type(exc).__name__}: {exc}. "
            "Code it references must be importable on every node: install your package there, ship it "
            "with RayExecutor(runtime_env={'py_modules': [...]}) or {'working_dir': ...}, or have "
            "Ray's cloudpickle pickle its module by value (ray.cloudpickle.register_pickle_by_value(module))."
        ) from exc
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > CACHED_OBJECTS:
            _cache.popitem(last=False)
    return value
