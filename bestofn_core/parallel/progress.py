"""The progress bar of a batch: tqdm on stderr, with done and failed counts."""

from __future__ import annotations

import sys
from typing import Any

#: Batches smaller than this show no bar: it would flash by and only clutter the output.
MIN_ITEMS_FOR_PROGRESS = 5


class Progress:
    """Counts finished examples and, for batches of ``MIN_ITEMS_FOR_PROGRESS`` or more, shows them.

    Updated from the event loop that runs the batch only, so it needs no lock.
    """

    def __init__(
        self,
        total: int,
        *,
        disable: bool,
        description: str = "batch",
        unit: str = "ex",
        min_items: int = MIN_ITEMS_FOR_PROGRESS,
    ) -> None:
        """A bar of ``total`` items titled ``description`` (none if ``disable`` or ``total < min_items``)."""
        self.done = 0
        self.failed = 0
        self._bar: Any = None
        if not disable and total >= min_items:
            self._bar = _bar_class()(
                total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True
            )
            self._show()

    def succeeded(self) -> None:
        """One more example finished with a result."""
        self.done += 1
        self._advance()

    def failed_one(self) -> None:
        """One more example failed."""
        self.failed += 1
        self._advance()

    def close(self) -> None:
        """Draw the final counts and release the bar."""
        if self._bar is not None:
            self._show()
            self._bar.close()
            self._bar = None

    def _advance(self) -> None:
        if self._bar is not None:
            self._show()
            self._bar.update(1)

    def _show(self) -> None:
        self._bar.set_postfix_str(f"done={self.done}, failed={self.failed}", refresh=False)


_BAR_CLASS: Any = None


def _bar_class() -> Any:
    """tqdm without its monitor thread, which would outlive the batch (a batch leaves no thread behind).

    Imported on first use: ``import bestofn_core`` stays light.
    """
    global _BAR_CLASS
    if _BAR_CLASS is None:
        from tqdm import tqdm

        class Bar(tqdm):
            monitor_interval = 0

        _BAR_CLASS = Bar
    return _BAR_CLASS
