"""Token usage tracking, summed per model across threads and asyncio tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bestofn_core.settings import settings


class UsageTracker:
    """Accumulates token usage per model. Thread-safe: one tracker is shared by every worker of a call.

    A tracker with a ``parent`` also adds everything to the parent, so a part of a call (one BestOfN
    attempt, say) can be measured on its own while the whole call's total stays right.
    """

    def __init__(self, parent: UsageTracker | None = None) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, dict[str, Any]] = {}
        self.parent = parent

    def add(self, model: str, usage: Mapping[str, Any]) -> None:
        """Add one LM call's usage (numbers are summed, nested dicts merged recursively)."""
        if not usage:
            return
        with self._lock:
            _merge(self._usage.setdefault(model, {}), usage)
        if self.parent is not None:
            self.parent.add(model, usage)

    def get_total_tokens(self) -> dict[str, dict[str, Any]]:
        """The summed usage per model, as a copy."""
        with self._lock:
            return {model: _copy(values) for model, values in self._usage.items()}


def _merge(into: dict[str, Any], usage: Mapping[str, Any]) -> None:
    for key, value in usage.items():
        if isinstance(value, Mapping):
            _merge(into.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value


def _copy(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in values.items()}


@contextmanager
def track_usage() -> Iterator[UsageTracker]:
    """Collect the usage of every LM call in the block; ``tracker.get_total_tokens()`` sums it per model."""
    tracker = UsageTracker()
    with settings.context(usage_tracker=tracker, track_usage=True):
        yield tracker
