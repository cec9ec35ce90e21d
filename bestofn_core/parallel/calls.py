"""Turning ``(module, example)`` pairs into the ``BatchCall`` objects executors run."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from bestofn_core._runner import maybe_await, run_in_thread, run_sync
from bestofn_core.primitives.example import Example
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.primitives.usage import UsageTracker
from bestofn_core.protocols import BatchCall
from bestofn_core.settings import settings


@dataclass(frozen=True)
class Job:
    """One example of a batch, ready to be called (possibly twice, when it straggles)."""

    index: int
    example: Any
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    def call(self, attempt: int) -> BatchCall:
        """A ``BatchCall`` for this try; call it in the caller's context (it captures that context)."""
        context = contextvars.copy_context()
        return BatchCall(
            index=self.index,
            attempt=attempt,
            fn=self.fn,
            args=self.args,
            kwargs=self.kwargs,
            # each try gets its own copy: a context can be entered by one thread at a time
            run=lambda: context.run(_run, self.fn, self.args, self.kwargs),
            arun=lambda: _arun(self.fn, self.args, self.kwargs),
        )


def call_arguments(example: Any, access_examples: bool = True) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How an example is passed to the module: ``(args, kwargs)``; raises ``TypeError`` for other items.

    An ``Example`` passes its inputs as keyword arguments (the whole Example as the one positional
    argument when ``access_examples`` is false), a dict (any mapping) its items, a tuple its elements as
    positional arguments.
    """
    if isinstance(example, Example):
        if not access_examples:
            return (example,), {}
        try:
            inputs = example.inputs()
        except ValueError:
            raise TypeError("an Example without input keys: call .with_inputs('field', ...) on it") from None
        return (), dict(inputs.items())
    if isinstance(example, Mapping):
        keys = [key for key in example if not isinstance(key, str)]
        if keys:
            raise TypeError(
                f"a mapping with non-string keys ({keys[0]!r}), which cannot be keyword arguments"
            )
        return (), dict(example)
    if isinstance(example, tuple):
        return tuple(example), {}
    raise TypeError(f"a {type(example).__name__}, not an Example, a dict or a tuple of arguments")


def is_natively_async(fn: Any) -> bool:
    """Whether ``fn`` runs on an event loop without a thread: a Module with its own ``aforward``."""
    if isinstance(fn, Module):
        return type(fn).aforward is not Module.aforward
    # an object whose __call__ is `async def` counts too
    return inspect.iscoroutinefunction(fn) or (callable(fn) and inspect.iscoroutinefunction(fn.__call__))


def _usage_tracker() -> UsageTracker | None:
    # one tracker per example, so its Prediction carries its own usage; the parent (an enclosing
    # track_usage block) still sees every token, whichever worker spent it
    return UsageTracker(parent=settings.usage_tracker) if settings.track_usage else None


def _tracking(tracker: UsageTracker | None) -> AbstractContextManager[None]:
    return settings.context(usage_tracker=tracker) if tracker is not None else nullcontext()


def _with_usage(result: Any, tracker: UsageTracker | None) -> Any:
    if tracker is not None and isinstance(result, Prediction):
        result.set_lm_usage(tracker.get_total_tokens())
    return result


def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    tracker = _usage_tracker()
    with _tracking(tracker):
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):  # an async callable given to a thread executor
            result = run_sync(maybe_await(result))
    return _with_usage(result, tracker)


async def _arun(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    tracker = _usage_tracker()
    with _tracking(tracker):
        acall = getattr(fn, "acall", None)
        if callable(acall):
            result = await acall(*args, **kwargs)
        elif is_natively_async(fn):
            result = await fn(*args, **kwargs)
        else:  # a plain sync callable must not block the loop
            result = await run_in_thread(fn, *args, **kwargs)
    return _with_usage(result, tracker)
