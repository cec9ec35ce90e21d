"""The tutorial's selection policy: the first attempt that succeeds wins."""

from __future__ import annotations

from collections.abc import Sequence

from bestofn_core import Candidate


class FirstOK:
    """The first attempt that succeeds wins, and sampling stops there.

    An attempt succeeds when neither the program nor the reward raised. Use it when failing is the risk
    (a program that raises on output it cannot parse) and any answer that gets through will do. The
    reward's value and the threshold are not used.
    """

    def should_stop(self, candidates: Sequence[Candidate], threshold: float | None) -> bool:
        """Stop as soon as a candidate succeeded; ``candidates`` are the finished ones, in rollout order."""
        return any(candidate.ok for candidate in candidates)

    def select(self, candidates: Sequence[Candidate]) -> Candidate:
        """The first candidate that succeeded."""
        for candidate in candidates:
            if candidate.ok:
                return candidate
        # BestOfN only asks once an attempt succeeded; anyone else calling this gets a clear error.
        raise ValueError("first_ok: no candidate succeeded, so there is none to select")

    def __repr__(self) -> str:
        return "FirstOK()"
