"""Selection policies for self-consistency: majority vote, reward-weighted vote, top-k.

Each policy is a frozen dataclass holding only its configuration: one instance (the registered
``voting:majority``, say) is shared by every BestOfN call, concurrent ones included, so nothing about a
call may be kept on it. Every decision is recomputed from the candidates the kernel passes in, which are
in rollout order; that is what makes the winner the same whatever order the attempts finish in.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bestofn_core.best_of_n.candidates import BestOfNPrediction, Candidate
from bestofn_core.errors import ConfigurationError
from bestofn_voting.normalize import normalize_answer

#: A normaliser: maps an output value to the hashable key votes are counted by.
Normalizer = Callable[[Any], Hashable]
#: What the inspection helpers accept: a BestOfN result or candidates (in any order).
CandidatesLike = BestOfNPrediction | Iterable[Candidate]


@dataclass(frozen=True)
class Vote:
    """One distinct value's standing in a vote; ``policy.tally(pred)`` returns these, the winner first.

    Attributes:
        key: the normalised value the votes were counted by.
        value: the value as the earliest candidate holding it wrote it (before normalising).
        votes: how many successful candidates hold it.
        score: what the vote ranks by: ``votes`` for ``MajorityVote``, the sum of the holders' rewards
            for ``WeightedVote``.
        candidates: the successful candidates holding it, in rollout order.
    """

    key: Hashable
    value: Any
    votes: int
    score: float
    candidates: tuple[Candidate, ...]


# ---------------------------------------------------------------- helpers shared by the policies


def successful(candidates: CandidatesLike) -> list[Candidate]:
    """The candidates that produced a prediction and a reward (``candidate.ok``), in rollout order."""
    return sorted((c for c in _candidates_of(candidates) if c.ok), key=lambda c: c.index)


def ranked(candidates: CandidatesLike) -> list[Candidate]:
    """The successful candidates, highest reward first, the earliest rollout first among equals.

    Accepts a BestOfN result (``ranked(pred)``) or a sequence of candidates; failed ones are left out.
    """
    return sorted(successful(candidates), key=lambda c: (-_reward(c), c.index))


def _candidates_of(candidates: CandidatesLike) -> list[Candidate]:
    if isinstance(candidates, BestOfNPrediction):
        return list(candidates.candidates)
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Iterable):
        raise TypeError(
            "Expected a BestOfN result (the prediction BestOfN returned) or a sequence of Candidate "
            f"objects; got {type(candidates).__name__}."
        )
    items = list(candidates)
    strangers = sorted({type(item).__name__ for item in items if not isinstance(item, Candidate)})
    if strangers:
        raise TypeError(
            "Expected bestofn_core Candidate objects (pred.candidates of a BestOfN result); got "
            f"{', '.join(strangers)}."
        )
    return items


def _reward(candidate: Candidate) -> float:
    # only called on successful candidates, whose reward the kernel has checked to be a finite float
    assert candidate.reward is not None
    return candidate.reward


def _earliest_best(candidates: Sequence[Candidate]) -> Candidate:
    """The highest reward among ``candidates`` (in rollout order), the earliest among equals."""
    best = candidates[0]
    for candidate in candidates[1:]:
        if _reward(candidate) > _reward(best):
            best = candidate
    return best


def _no_winner(policy: object) -> ValueError:
    # the kernel never selects without a successful candidate; a direct caller might
    return ValueError(f"{policy!r}.select needs at least one successful candidate (candidate.ok).")


def _threshold_number(policy: object, threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ConfigurationError(
            f"{policy!r} got threshold={threshold!r}; BestOfN's threshold must be a number or None."
        )
    value = float(threshold)
    if not math.isfinite(value):
        raise ConfigurationError(f"{policy!r} got threshold={value}; it must be a finite number or None.")
    return value


# ---------------------------------------------------------------- votes over an output field


@dataclass(frozen=True, repr=False)
class _FieldVote:
    """What majority and weighted votes share: which field is voted on and how values are compared."""

    field: str = "answer"
    normalizer: Normalizer | None = normalize_answer

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.field, str) or not self.field.strip():
            raise ConfigurationError(
                f"{name}(field=...) must name an output field of the module, such as 'answer'; "
                f"got {self.field!r}."
            )
        if self.normalizer is not None and not callable(self.normalizer):
            raise ConfigurationError(
                f"{name}(normalizer=...) must be a function value -> hashable key, or None to compare "
                f"values exactly; got {type(self.normalizer).__name__}."
            )

    def __repr__(self) -> str:
        if self.normalizer is None:
            shown = "None"
        else:
            shown = getattr(self.normalizer, "__qualname__", None) or repr(self.normalizer)
        return f"{type(self).__name__}(field={self.field!r}, normalizer={shown})"

    def tally(self, candidates: CandidatesLike) -> list[Vote]:
        """Every distinct value among the successful candidates with its votes, the winner first.

        Values are ranked by ``score``; among equal scores the value whose first holder is the earliest
        rollout comes first. Failed candidates do not vote. Accepts a BestOfN result or candidates, so
        ``policy.tally(pred)`` shows how the call's vote went (e.g. ``tally[0].votes / len(...)`` as an
        agreement rate).
        """
        groups: dict[Hashable, list[Candidate]] = {}
        for candidate in successful(candidates):
            groups.setdefault(self._key(candidate), []).append(candidate)
        # dicts keep first-appearance order and sort() is stable, so equal scores stay earliest first
        votes = [
            Vote(key, self._value(group[0]), len(group), self._score(group), tuple(group))
            for key, group in groups.items()
        ]
        votes.sort(key=lambda vote: -vote.score)
        return votes

    def _score(self, group: Sequence[Candidate]) -> float:
        raise NotImplementedError

    def _value(self, candidate: Candidate) -> Any:
        prediction = candidate.prediction
        assert prediction is not None  # only successful candidates vote
        if self.field not in prediction:
            fields = list(prediction.keys())
            hint = f" e.g. {type(self).__name__}(field={fields[0]!r})" if fields else ""
            raise ConfigurationError(
                f"{type(self).__name__} votes on the output field {self.field!r}, but the prediction of "
                f"rollout {candidate.rollout_id} has no such field; its fields are: "
                f"{', '.join(repr(f) for f in fields) or 'none'}. Pass field=<one of them>{hint}."
            )
        return prediction[self.field]

    def _key(self, candidate: Candidate) -> Hashable:
        value = self._value(candidate)
        key = value if self.normalizer is None else self.normalizer(value)
        try:
            hash(key)
        except TypeError:
            if self.normalizer is None:
                fix = "pass a normalizer (the default, normalize_answer, handles lists and dicts)"
            else:
                fix = "the normalizer must return a hashable key (a str, number or tuple)"
            raise TypeError(
                f"{self!r} cannot count votes for {value!r} (rollout {candidate.rollout_id}): its key is an "
                f"unhashable {type(key).__name__}; {fix}."
            ) from None
        return key

    def _check_fields(self, candidates: Sequence[Candidate]) -> None:
        # without a threshold nothing needs counting yet, but a wrong field name should fail at the
        # first prediction, not after all N attempts were paid for
        for candidate in candidates:
            if candidate.ok:
                self._value(candidate)


class MajorityVote(_FieldVote):
    """Self-consistency: the most frequent value of an output field wins; rewards are ignored.

    Args:
        field: the output field voted on (default ``"answer"``).
        normalizer: maps each value to the key votes are counted by (default ``normalize_answer``:
            strip, casefold, collapse whitespace, drop trailing ``. , ; : ! ?``, so ``"Paris"``,
            ``"paris."`` and ``"Paris "`` agree). ``None`` compares values exactly. It is called for
            each candidate every time the policy looks, so keep it cheap (or ``functools.lru_cache`` it).

    Only successful candidates vote. Ties go to the value seen at the earliest rollout, and the winner is
    the earliest candidate holding the winning value. Rewards play no part in the vote, so BestOfN needs
    no ``reward_fn`` with this policy (``needs_rewards`` is false); given one, it is still called, and a
    candidate whose reward failed counts as failed.

    Early stopping reads BestOfN's ``threshold`` as a **vote count**: sampling stops as soon as one value
    has ``threshold`` votes (a whole number >= 2); ``None`` samples all N. A policy is not told N, so a
    share of N cannot be checked during the call; a count can, and it is exact: with
    ``threshold = N // 2 + 1`` (N >= 2) the call stops as soon as one value holds a strict majority of N,
    which no later attempt can overturn, so the winner is the one a full run would pick. A lower count
    trades that guarantee for fewer attempts (the first value to reach it wins). Either way the decision
    follows rollout order, so it does not depend on which attempts finish first.
    """

    #: The vote ignores rewards: ``BestOfN(module, N, policy=MajorityVote())`` needs no ``reward_fn``.
    needs_rewards: ClassVar[bool] = False

    def should_stop(self, candidates: Sequence[Candidate], threshold: float | None) -> bool:
        """Whether one value already has ``threshold`` votes among the finished candidates."""
        needed = self._votes_needed(threshold)
        if needed is None:
            self._check_fields(candidates)
            return False
        tally = self.tally(candidates)
        return bool(tally) and tally[0].votes >= needed

    def select(self, candidates: Sequence[Candidate]) -> Candidate:
        """The earliest candidate holding the most frequent value (ties: the value seen first)."""
        tally = self.tally(candidates)
        if not tally:
            raise _no_winner(self)
        return tally[0].candidates[0]

    def _score(self, group: Sequence[Candidate]) -> float:
        return float(len(group))

    def _votes_needed(self, threshold: float | None) -> int | None:
        value = _threshold_number(self, threshold)
        if value is None:
            return None
        if value < 2 or not value.is_integer():
            raise ConfigurationError(
                f"{self!r} reads BestOfN's threshold as a vote count (stop once one value has that many "
                f"votes), so it must be a whole number >= 2; got threshold={threshold!r}. Use "
                "threshold=N // 2 + 1 to stop as soon as a majority of N is certain, or threshold=None to "
                "sample all N. A share such as 0.6 cannot be checked (the policy is not told N): pass "
                "math.ceil(0.6 * N) instead."
            )
        return int(value)


class WeightedVote(_FieldVote):
    """Reward-weighted vote: each value scores the sum of its candidates' rewards; the top score wins.

    Args:
        field: the output field voted on (default ``"answer"``).
        normalizer: as for ``MajorityVote`` (default ``normalize_answer``; ``None`` compares exactly).

    Only successful candidates vote. Ties go to the value seen at the earliest rollout. The winner is
    the candidate with the highest reward among those holding the winning value (the earliest among
    equals), so the returned prediction is the best-judged version of the agreed answer. Rewards are
    summed as they are: a negative reward counts against its value, so a reward in ``[0, 1]`` (a
    probability, a grade) is what this vote is meant for.

    Early stopping reads BestOfN's ``threshold`` as a **score**: sampling stops as soon as one value's
    summed reward reaches it (it must be > 0); ``None`` samples all N. With rewards in ``[0, 1]`` and
    ``threshold > N / 2``, no other value can overtake the one that reached it, so the winner is the one
    a full run would pick.
    """

    #: Votes are weighted by reward: ``BestOfN`` needs a ``reward_fn`` with this policy.
    needs_rewards: ClassVar[bool] = True

    def should_stop(self, candidates: Sequence[Candidate], threshold: float | None) -> bool:
        """Whether one value's summed reward already reaches ``threshold``."""
        needed = self._score_needed(threshold)
        if needed is None:
            self._check_fields(candidates)
            return False
        tally = self.tally(candidates)
        return bool(tally) and tally[0].score >= needed

    def select(self, candidates: Sequence[Candidate]) -> Candidate:
        """The best-rewarded candidate holding the value with the highest summed reward."""
        tally = self.tally(candidates)
        if not tally:
            raise _no_winner(self)
        return _earliest_best(tally[0].candidates)

    def _score(self, group: Sequence[Candidate]) -> float:
        # fsum: the exact sum, so equal totals tie however the rewards happen to be grouped
        return math.fsum(_reward(c) for c in group)

    def _score_needed(self, threshold: float | None) -> float | None:
        value = _threshold_number(self, threshold)
        if value is not None and value <= 0:
            raise ConfigurationError(
                f"{self!r} reads BestOfN's threshold as a summed reward to reach (stop once one value's "
                f"rewards add up to it), so it must be > 0; got threshold={threshold!r}. Use "
                "threshold=None to sample all N."
            )
        return value


# ---------------------------------------------------------------- top-k


@dataclass(frozen=True)
class TopK:
    """Best-of-N keeping the ``k`` best: the highest reward wins, and ``policy.top(pred)`` lists the k best.

    Args:
        k: how many of the best candidates matter (default 3).

    A BestOfN call returns one prediction: here the highest-rewarded candidate (the earliest among
    equals), as with the built-in ``threshold`` policy. The k best candidates, best first, are
    ``policy.top(pred)`` (or ``ranked(pred)[:k]``); each has its ``prediction``, ``reward`` and
    ``rollout_id``.

    Early stopping: with a ``threshold``, sampling stops once ``k`` finished candidates have a reward of
    at least ``threshold``, so the k best of the call are then exactly the first k rollouts to clear it.
    ``None`` samples all N. With ``k=1`` this is the ``threshold`` policy.
    """

    k: int = 3
    #: It ranks by reward: ``BestOfN`` needs a ``reward_fn`` with this policy.
    needs_rewards: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigurationError(f"TopK(k=...) must be a whole number >= 1; got {self.k!r}.")

    def should_stop(self, candidates: Sequence[Candidate], threshold: float | None) -> bool:
        """Whether ``k`` finished candidates already have a reward of at least ``threshold``."""
        needed = _threshold_number(self, threshold)
        if needed is None:
            return False
        return sum(1 for c in successful(candidates) if _reward(c) >= needed) >= self.k

    def select(self, candidates: Sequence[Candidate]) -> Candidate:
        """The successful candidate with the highest reward, the earliest among equals."""
        best = ranked(candidates)
        if not best:
            raise _no_winner(self)
        return best[0]

    def top(self, result: CandidatesLike) -> list[Candidate]:
        """The ``k`` best successful candidates of a BestOfN result (or of candidates), best first.

        Fewer than ``k`` when fewer succeeded (or the call stopped early before k did).
        """
        return ranked(result)[: self.k]
