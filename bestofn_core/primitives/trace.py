"""The execution trace: ``(predictor, inputs, prediction)`` entries of the calls that ran, for optimizers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bestofn_core.settings import settings

__all__ = ["extend_trace"]


def extend_trace(entries: Iterable[tuple[Any, dict[str, Any], Any]]) -> None:
    """Append ``entries`` to ``settings.trace`` (unless tracing is off: ``trace=None``).

    The trace keeps the newest ``settings.max_trace_size`` entries: it is on by default, so without a
    bound a long-running process would keep every prediction it ever made.
    """
    trace = settings.trace
    if trace is None:
        return
    trace.extend(entries)
    excess = len(trace) - settings.max_trace_size
    if excess > 0:
        del trace[:excess]
