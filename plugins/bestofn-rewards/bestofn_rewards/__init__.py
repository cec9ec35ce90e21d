"""bestofn-rewards: reward functions for bestofn-core's ``BestOfN``, installed as the ``text`` plugin.

Use them by name, ``BestOfN(..., reward_fn="text:one_word")`` or
``reward_fn=bestofn_core.reward("text:max_words", n=2)``, or call the factories here directly:
``reward_fn=bestofn_rewards.max_words(2)``. Every factory returns ``reward(inputs, prediction) -> float``
and checks its parameters when called.
"""

from __future__ import annotations

from collections.abc import Callable

from bestofn_rewards._common import MissingFieldError, Reward
from bestofn_rewards.structured import json_schema, pydantic_model, valid_json
from bestofn_rewards.text import (
    contains,
    exact_match,
    length_penalty,
    max_words,
    nonempty,
    normalize_answer,
    normalized_match,
    one_word,
    regex,
)

#: Every reward factory, by the name users write after ``text:``.
REWARDS: dict[str, Callable[..., Reward]] = {
    "one_word": one_word,
    "nonempty": nonempty,
    "max_words": max_words,
    "exact_match": exact_match,
    "normalized_match": normalized_match,
    "contains": contains,
    "regex": regex,
    "length_penalty": length_penalty,
    "valid_json": valid_json,
    "json_schema": json_schema,
    "pydantic_model": pydantic_model,
}

__all__ = [
    "REWARDS",
    "MissingFieldError",
    "Reward",
    "contains",
    "exact_match",
    "json_schema",
    "length_penalty",
    "max_words",
    "nonempty",
    "normalize_answer",
    "normalized_match",
    "one_word",
    "pydantic_model",
    "regex",
    "valid_json",
]
