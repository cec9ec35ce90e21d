"""Callbacks: hooks into module, LM and adapter calls, for logging, tracing and metrics.

A callback is a ``BaseCallback`` subclass overriding the handlers it cares about. Callbacks come from
``settings.callbacks`` (global or per-context) and from an instance's own ``callbacks`` list. A callback
that raises is logged and ignored: observability must never break the program it observes.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, overload

from bestofn_core.lm.credentials import without_secrets
from bestofn_core.settings import settings

logger = logging.getLogger(__name__)

EventKind = Literal["module", "lm", "adapter_format", "adapter_parse"]
F = TypeVar("F", bound=Callable[..., Any])

#: The ``call_id`` of the call running now (``None`` outside any observed call), as in DSPy: a handler
#: reading it in ``on_*_start`` gets the id of the enclosing call, so it can nest calls into a tree.
ACTIVE_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bestofn_active_call_id", default=None
)


class BaseCallback:
    """Base class for callbacks; override any handler. Every handler receives a ``call_id`` that pairs
    a start event with its end event.

    Handlers:
        on_module_start(call_id, instance, inputs) / on_module_end(call_id, outputs, exception)
        on_lm_start(call_id, instance, inputs) / on_lm_end(call_id, outputs, exception)
        on_adapter_format_start(call_id, instance, inputs)
        on_adapter_format_end(call_id, outputs, exception)
        on_adapter_parse_start(call_id, instance, inputs)
        on_adapter_parse_end(call_id, outputs, exception)

    ``inputs`` is a dict of the call's arguments; for LM calls, credentials are never included.

    ``on_tool_*`` and ``on_evaluate_*`` exist so that callbacks written for DSPy, which override them, work
    unchanged; bestofn-core has no tools nor evaluator, so they are never called.
    """

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A module's ``__call__``/``acall`` is starting."""

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """A module call finished with ``outputs`` or raised ``exception``."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An LM call is starting."""

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """An LM call finished."""

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter is about to format a signature and inputs into messages."""

    def on_adapter_format_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """An adapter finished formatting."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter is about to parse an LM completion."""

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """An adapter finished parsing."""

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """DSPy's tool event; never called here (there are no tools)."""

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """DSPy's tool event; never called here (there are no tools)."""

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """DSPy's ``Evaluate`` event; never called here (there is no evaluator)."""

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """DSPy's ``Evaluate`` event; never called here (there is no evaluator)."""


def active_callbacks(instance: Any) -> list[BaseCallback]:
    """The callbacks that apply to a call on ``instance``: the settings' ones, then the instance's."""
    return [*(settings.callbacks or ()), *(getattr(instance, "callbacks", None) or ())]


def _bind_inputs(
    fn: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict:
    try:
        bound = inspect.signature(fn).bind(instance, *args, **kwargs)
    except TypeError:
        return {"args": args, **kwargs}
    inputs = dict(bound.arguments)
    inputs.pop("self", None)
    extra = inputs.pop("kwargs", None)
    if isinstance(extra, dict):
        inputs.update(extra)
    return inputs


def _notify(callbacks: list[BaseCallback], handler: str, *args: Any) -> None:
    for cb in callbacks:
        try:
            getattr(cb, handler)(*args)
        except Exception:
            logger.warning("Callback %s.%s raised; ignoring it", type(cb).__name__, handler, exc_info=True)


@overload
def with_callbacks(kind: EventKind) -> Callable[[F], F]: ...


@overload
def with_callbacks(kind: F) -> F: ...


def with_callbacks(kind: EventKind | F) -> Callable[[F], F] | F:
    """Decorate a sync or async method so callbacks hear its ``on_<kind>_start`` / ``_end`` events.

    ``@with_callbacks("lm")`` names the event kind; bare ``@with_callbacks``, as DSPy programs write it on
    their own module methods, means ``"module"``. While the method runs, ``ACTIVE_CALL_ID`` holds its
    ``call_id``.
    """
    if callable(kind):
        return with_callbacks("module")(kind)
    event_kind: EventKind = kind

    def decorate(fn: F) -> F:
        start, end = f"on_{event_kind}_start", f"on_{event_kind}_end"

        def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list, str]:
            callbacks = active_callbacks(instance)
            call_id = uuid.uuid4().hex if callbacks else ""
            if callbacks:
                inputs = _bind_inputs(fn, instance, args, kwargs)
                if event_kind == "lm":
                    inputs = without_secrets(inputs)
                _notify(callbacks, start, call_id, instance, inputs)
            return callbacks, call_id

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
                callbacks, call_id = begin(instance, args, kwargs)
                if not callbacks:
                    return await fn(instance, *args, **kwargs)
                token = ACTIVE_CALL_ID.set(call_id)
                try:
                    result = await fn(instance, *args, **kwargs)
                except BaseException as exc:
                    ACTIVE_CALL_ID.reset(token)  # end handlers see the enclosing call's id, as in DSPy
                    _notify(callbacks, end, call_id, None, exc)
                    raise
                ACTIVE_CALL_ID.reset(token)
                _notify(callbacks, end, call_id, result, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
            callbacks, call_id = begin(instance, args, kwargs)
            if not callbacks:
                return fn(instance, *args, **kwargs)
            token = ACTIVE_CALL_ID.set(call_id)
            try:
                result = fn(instance, *args, **kwargs)
            except BaseException as exc:
                ACTIVE_CALL_ID.reset(token)  # end handlers see the enclosing call's id, as in DSPy
                _notify(callbacks, end, call_id, None, exc)
                raise
            ACTIVE_CALL_ID.reset(token)
            _notify(callbacks, end, call_id, result, None)
            return result

        return cast(F, sync_wrapper)

    return decorate
