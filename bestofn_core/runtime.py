"""The kernel's event loop and worker threads, for plugins that run blocking work or drive the loop.

bestofn-core runs every sync call on one shared background event loop and blocking user code (sync
``forward``, sync rewards) in one bounded pool of worker threads. A plugin uses the same two instead of
starting its own, so that the whole process keeps one loop, one pool and one bound:

- ``run_in_thread(fn, *args, **kwargs)``: await blocking ``fn`` in the worker pool, with the caller's
  context variables (settings, usage tracking) copied into the thread. A backend wrapping a blocking
  client (a local model, a sync SDK) calls it from ``acomplete``.
- ``run_sync(coro)``: run a coroutine to completion from sync code, on the shared loop (or a private one
  when called from the loop's own thread), as the sync API does.
- ``runner_loop()``: the shared loop itself, started on first use, for code that schedules onto it from
  another thread (``asyncio.run_coroutine_threadsafe``), as the Ray executor's workers do.
"""

from __future__ import annotations

from bestofn_core._runner import MAX_WORKER_THREADS, run_in_thread, run_sync, runner_loop

__all__ = ["MAX_WORKER_THREADS", "run_in_thread", "run_sync", "runner_loop"]
