"""The tutorial's rewards, which prefer short answers.

bestofn-core calls a reward as ``reward(inputs, prediction)``: the program's inputs and what it
returned. It returns a float, and higher is better.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bestofn_core import Prediction

#: What a reward is: ``reward(inputs, prediction) -> float``.
Reward = Callable[[dict[str, Any], Prediction], float]


def _answer_words(prediction: Prediction) -> int:
    # A program without an `answer` output field gets a message that says so, not an AttributeError.
    if "answer" not in prediction:
        fields = ", ".join(prediction.keys()) or "none"
        raise ValueError(f"tutorial rewards score the output field 'answer'; this prediction has: {fields}")
    return len(str(prediction.answer).split())


def shortest(inputs: dict[str, Any], prediction: Prediction) -> float:
    """``1 / (1 + words in the answer)``: 1.0 for an empty answer, 0.5 for one word, 0.25 for three."""
    return 1.0 / (1 + _answer_words(prediction))


def shorter_than(words: int) -> Reward:
    """Build a reward that is 1.0 when the answer has fewer than ``words`` words, else 0.0.

    This is a reward factory: users build the reward with their parameter,
    ``bon.reward("tutorial:shorter_than", words=5)``.
    """
    # Checked once, when the user builds the reward, rather than on every call of it.
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise ValueError(
            f'shorter_than needs an int words >= 1, as in bon.reward("tutorial:shorter_than", words=5); '
            f"got {words!r}"
        )

    def reward(inputs: dict[str, Any], prediction: Prediction) -> float:
        return 1.0 if _answer_words(prediction) < words else 0.0

    return reward
