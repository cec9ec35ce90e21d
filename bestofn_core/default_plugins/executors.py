"""Built-in executors, registered through the same hook as external plugins."""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterExecutor, hookimpl
from bestofn_core.parallel.executors import AsyncioExecutor, ThreadsExecutor


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Register ``asyncio`` (tasks on the event loop) and ``threads`` (worker threads per batch)."""
    register(AsyncioExecutor(), name="asyncio")
    register(ThreadsExecutor(), name="threads")
