"""Batch execution: ``Parallel``, behind ``Module.batch`` and ``Module.abatch``.

``parallel.py`` is the user-facing API (arguments, defaults, choosing the executor), ``engine.py`` the
batch semantics shared by every executor, ``calls.py`` what one call runs, ``executors.py`` the built-in
``asyncio`` and ``threads`` executors, ``progress.py`` the progress bar. See docs/batch.md.
"""

from bestofn_core.parallel.executors import AsyncioExecutor, ThreadsExecutor
from bestofn_core.parallel.parallel import BatchResult, Parallel

__all__ = ["AsyncioExecutor", "BatchResult", "Parallel", "ThreadsExecutor"]
