"""Deciding a BestOfN call from its candidates, in rollout order, whatever order they finish in.

Attempts may finish in any order; ``Outcome`` only looks at the contiguous prefix of finished rollouts
(0, 1, 2, ... with no gap), the way a sequential run would have seen them. So the failure budget, the early
stop and the winner are the same with ``concurrency=1`` and with all attempts at once.
"""

from __future__ import annotations

from typing import Any

from bestofn_core.best_of_n.candidates import Candidate
from bestofn_core.errors import BestOfNError, SelectionPolicyError


class Outcome:
    """Collects candidates and settles the call: a winner, or a ``BestOfNError``.

    Args:
        total: how many attempts there are (N).
        fail_budget: how many failures are tolerated; one more raises.
        threshold: passed to the policy's ``should_stop``.
        policy: the selection policy (``should_stop`` and ``select``).
        policy_name: how errors name the policy (its ``"plugin:name"`` reference, when it has one).
    """

    def __init__(
        self,
        total: int,
        fail_budget: int,
        threshold: float | None,
        policy: Any,
        policy_name: str | None = None,
    ) -> None:
        self.total = total
        self.fail_budget = fail_budget
        self.threshold = threshold
        self.policy = policy
        self.policy_name = policy_name
        self.considered: list[Candidate] = []
        self.winner: Candidate | None = None
        self.error: BestOfNError | None = None
        self._waiting: dict[int, Candidate] = {}
        self._failures = 0

    @property
    def settled(self) -> bool:
        """Whether the call is decided (remaining attempts can be cancelled)."""
        return self.winner is not None or self.error is not None

    def add(self, candidate: Candidate) -> None:
        """Record a finished attempt and settle the call if the prefix now decides it."""
        if self.settled:
            return
        self._waiting[candidate.index] = candidate
        while not self.settled and len(self.considered) in self._waiting:
            current = self._waiting.pop(len(self.considered))
            self.considered.append(current)
            if not current.ok:
                self._failures += 1
                if self._failures > self.fail_budget:
                    self.error = self._failure(
                        f"{self._failures} of {len(self.considered)} attempts failed, more than "
                        f"fail_count={self.fail_budget} allows"
                    )
                    return
            elif self.policy.should_stop(self.considered, self.threshold):
                self.winner = self._select()
                return
        if len(self.considered) == self.total and not self.settled:
            if any(c.ok for c in self.considered):
                self.winner = self._select()
            else:
                self.error = self._failure(f"all {self.total} attempts failed")

    def _select(self) -> Candidate:
        """The policy's choice, checked: one of the considered candidates, and a successful one."""
        chosen = self.policy.select(self.considered)
        if isinstance(chosen, Candidate) and any(chosen is c for c in self.considered) and chosen.ok:
            return chosen
        if not isinstance(chosen, Candidate):
            what = f"{chosen!r:.80}"
        elif not any(chosen is c for c in self.considered):
            what = f"{chosen!r:.80}..., which is not one of them (a copy, or another call's)"
        else:
            cause = f"{type(chosen.error).__name__}: {chosen.error}" if chosen.error else "no reward"
            what = f"a failed attempt (rollout {chosen.rollout_id}: {cause:.80})"
        kind = type(self.policy).__name__
        name = f"{self.policy_name!r} ({kind})" if self.policy_name else kind
        raise SelectionPolicyError(
            f"The selection policy {name}: select() returned {what}; it must return one of the "
            "successful candidates it was given (a Candidate whose .ok is true)."
        )

    def fail(self, summary: str, candidates: list[Candidate]) -> None:
        """Settle the call as failed, for failures found outside the rollout-order prefix."""
        self.considered = list(candidates)
        self.error = self._failure(summary)

    def _failure(self, summary: str) -> BestOfNError:
        errors = [(c, c.error) for c in self.considered if isinstance(c.error, Exception)]
        causes = "; ".join(f"rollout {c.rollout_id}: {type(e).__name__}: {e}" for c, e in errors)
        return BestOfNError(f"BestOfN: {summary} ({causes})", [e for _, e in errors], self.considered)
