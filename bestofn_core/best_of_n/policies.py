"""The built-in selection policy: DSPy's rule (highest reward, earliest on ties, stop at the threshold)."""

from __future__ import annotations

from collections.abc import Sequence

from bestofn_core.best_of_n.candidates import Candidate


class ThresholdPolicy:
    """Pick the highest reward (the earliest rollout on ties); stop once a reward reaches the threshold.

    This is the reference behaviour. Candidates arrive in rollout order, so with a threshold the winner is
    the lowest rollout that clears it, whatever order attempts finish in.
    """

    #: It chooses by reward: ``BestOfN`` needs a ``reward_fn`` with it.
    needs_rewards = True

    def should_stop(self, candidates: Sequence[Candidate], threshold: float | None) -> bool:
        """Stop when any finished candidate's reward is at least ``threshold`` (never when it is None)."""
        if threshold is None:
            return False
        return any(c.ok and c.reward is not None and c.reward >= threshold for c in candidates)

    def select(self, candidates: Sequence[Candidate]) -> Candidate:
        """The successful candidate with the highest reward; the earliest one among equals."""
        best: Candidate | None = None
        for candidate in candidates:
            if not candidate.ok or candidate.reward is None:
                continue
            if best is None or candidate.reward > (best.reward or 0.0):
                best = candidate
        if best is None:
            raise ValueError("ThresholdPolicy.select needs at least one successful candidate.")
        return best

    def __repr__(self) -> str:
        return "ThresholdPolicy()"
