"""``Module.batch`` and ``Module.abatch``: the batch entry points every module inherits.

Kept apart from ``primitives/module.py`` so the Module class stays about calling and structure; the
batch semantics themselves live in ``parallel/parallel.py`` and ``parallel/engine.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from bestofn_core.parallel.parallel import BatchResult
    from bestofn_core.protocols import Executor


class Batching:
    """Mixin giving a module ``batch`` (sync) and ``abatch`` (async) over many examples."""

    # overloads: the return type follows return_failed_examples, so results[i].field type-checks
    @overload
    def batch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        return_failed_examples: Literal[False] = ...,
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        *,
        executor: str | Executor | None = ...,
    ) -> list[Any]: ...

    @overload
    def batch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        *,
        return_failed_examples: Literal[True],
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        executor: str | Executor | None = ...,
    ) -> tuple[list[Any], list[Any], list[BaseException]]: ...

    @overload
    def batch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        return_failed_examples: bool = ...,
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        *,
        executor: str | Executor | None = ...,
    ) -> BatchResult: ...

    def batch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = None,
        max_errors: int | None = None,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = 120,
        straggler_limit: int = 3,
        *,
        executor: str | Executor | None = None,
    ) -> BatchResult:
        """Run the module on every example concurrently; results come back in input order.

        An ``Example`` is passed as ``module(**example.inputs())``, a dict as ``module(**example)``.
        A failed example's slot is ``None``. Arguments are those of ``bestofn_core.Parallel``
        (see docs/batch.md): ``num_threads`` (default ``settings.num_threads``), ``max_errors`` (default
        ``settings.max_errors``, ``None``: no limit; reaching it cancels the rest and raises
        ``BatchError``), ``return_failed_examples`` (return ``(results, failed_examples, exceptions)``),
        ``provide_traceback``, ``disable_progress_bar``, ``timeout`` and ``straggler_limit`` (a call
        running past ``timeout`` once at most ``straggler_limit`` examples remain gets a second try; the
        first to succeed wins) and ``executor`` (``"asyncio"``, ``"threads"``, a plugin's name or an
        executor object; default ``"asyncio"`` when this module has its own ``aforward``, else
        ``"threads"``). Blocks the calling thread, never an event loop: use ``abatch`` in async code.
        """
        from bestofn_core.parallel.parallel import batch

        return batch(
            self,
            examples,
            f"{type(self).__name__}.batch(...)",
            num_threads=num_threads,
            max_errors=max_errors,
            return_failed_examples=return_failed_examples,
            provide_traceback=provide_traceback,
            disable_progress_bar=disable_progress_bar,
            timeout=timeout,
            straggler_limit=straggler_limit,
            executor=executor,
        )

    @overload
    async def abatch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        return_failed_examples: Literal[False] = ...,
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        *,
        executor: str | Executor | None = ...,
    ) -> list[Any]: ...

    @overload
    async def abatch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        *,
        return_failed_examples: Literal[True],
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        executor: str | Executor | None = ...,
    ) -> tuple[list[Any], list[Any], list[BaseException]]: ...

    @overload
    async def abatch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = ...,
        max_errors: int | None = ...,
        return_failed_examples: bool = ...,
        provide_traceback: bool | None = ...,
        disable_progress_bar: bool = ...,
        timeout: float | None = ...,
        straggler_limit: int = ...,
        *,
        executor: str | Executor | None = ...,
    ) -> BatchResult: ...

    async def abatch(
        self,
        examples: Sequence[Any],
        num_threads: int | None = None,
        max_errors: int | None = None,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = 120,
        straggler_limit: int = 3,
        *,
        executor: str | Executor | None = None,
    ) -> BatchResult:
        """``batch`` for async code: runs on the running event loop, at most ``num_threads`` at once."""
        from bestofn_core.parallel.parallel import abatch

        return await abatch(
            self,
            examples,
            f"{type(self).__name__}.abatch(...)",
            num_threads=num_threads,
            max_errors=max_errors,
            return_failed_examples=return_failed_examples,
            provide_traceback=provide_traceback,
            disable_progress_bar=disable_progress_bar,
            timeout=timeout,
            straggler_limit=straggler_limit,
            executor=executor,
        )
