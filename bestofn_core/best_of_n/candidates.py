"""What a BestOfN call shows of its work: every candidate, and the prediction it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bestofn_core.primitives.prediction import Prediction


@dataclass
class Candidate:
    """One attempt of a BestOfN call.

    Attributes:
        index: the attempt's position, 0 to N-1 (attempt ``index`` uses rollout ``start + index``).
        rollout_id: the ``rollout_id`` its LM was given (keys the cache, sets the sample apart).
        prediction: what the module returned, or ``None`` when the attempt failed.
        reward: the reward of ``prediction``, or ``None`` when the attempt or its reward failed.
        error: the exception of a failed attempt (the module or the reward raised), else ``None``.
        usage: token usage per model of this attempt alone (LM calls of the module and the reward).
        latency: seconds from the attempt's start to its reward.
        trace: the ``(predictor, inputs, prediction)`` entries the attempt recorded.
        scored: whether the call scores its candidates with a reward; ``False`` when its policy needs
            none (a majority vote without ``reward_fn``), and then ``reward`` stays ``None``.
    """

    index: int
    rollout_id: int
    prediction: Prediction | None = None
    reward: float | None = None
    error: BaseException | None = None
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: float = 0.0
    trace: list[Any] = field(default_factory=list, repr=False)
    scored: bool = True

    @property
    def ok(self) -> bool:
        """Whether the attempt produced a prediction, and its reward when the call scores candidates."""
        if self.error is not None or self.prediction is None:
            return False
        return self.reward is not None or not self.scored

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (prediction fields, reward, error text, usage, latency)."""
        return {
            "index": self.index,
            "rollout_id": self.rollout_id,
            "prediction": self.prediction.toDict() if self.prediction is not None else None,
            "reward": self.reward,
            "error": f"{type(self.error).__name__}: {self.error}" if self.error is not None else None,
            "usage": self.usage,
            "latency": self.latency,
        }


class BestOfNPrediction(Prediction):
    """The winning prediction, plus the work behind it.

    Its fields are the winner's. ``candidates`` lists every attempt that finished, in rollout order
    (cancelled attempts after an early stop are absent); ``winner`` is the chosen one, with its
    ``reward`` and ``rollout_id``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._candidates: list[Candidate] = []
        self._winner: Candidate | None = None

    @classmethod
    def from_winner(cls, winner: Candidate, candidates: list[Candidate]) -> BestOfNPrediction:
        """Wrap the winner's prediction (fields, completions and usage are kept)."""
        assert winner.prediction is not None
        result = cls(winner.prediction)
        result._completions = winner.prediction._completions
        result._lm_usage = winner.prediction.get_lm_usage()
        result._candidates = candidates
        result._winner = winner
        return result

    @property
    def candidates(self) -> list[Candidate]:
        """Every finished attempt, in rollout order."""
        return self._candidates

    @property
    def winner(self) -> Candidate:
        """The chosen candidate."""
        assert self._winner is not None
        return self._winner
