"""Calling reward functions: sync or async callables, Modules (LM judges), or ``"plugin:name"`` references."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

from bestofn_core._runner import run_in_thread
from bestofn_core.errors import ConfigurationError, RewardError
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Prediction


def resolve_reward(reward_fn: Any) -> Callable[..., Any]:
    """The callable behind ``reward_fn`` (a ``"plugin:name"`` string is looked up in the registry)."""
    if isinstance(reward_fn, str):
        from bestofn_core.plugins import get_registry

        reward: Callable[..., Any] = get_registry().get("reward", reward_fn)
        return reward
    if not callable(reward_fn):
        raise ConfigurationError(
            f"reward_fn must be a callable reward_fn(inputs, prediction) -> float, an async callable, a "
            f"Module, or a 'plugin:name' reference; got {type(reward_fn).__name__}."
        )
    return reward_fn


def reward_name(reward: Any) -> str:
    """A readable name for error messages."""
    return getattr(reward, "__qualname__", None) or type(reward).__name__


async def score(reward: Callable[..., Any], inputs: dict[str, Any], prediction: Prediction) -> float:
    """Run ``reward(inputs, prediction)`` without blocking the event loop and check its value.

    Async rewards are awaited, Modules run through ``acall``, and sync callables run in a worker thread.
    """
    if isinstance(reward, Module):
        value = await reward.acall(inputs, prediction)
    elif inspect.iscoroutinefunction(reward) or inspect.iscoroutinefunction(type(reward).__call__):
        value = await reward(inputs, prediction)
    else:
        value = await run_in_thread(reward, inputs, prediction)
        if inspect.isawaitable(value):
            value = await value
    return reward_value(value, reward)


def reward_value(value: Any, reward: Any) -> float:
    """``value`` as a finite float; ``RewardError`` naming the reward otherwise.

    Booleans count as 1.0 / 0.0 and a Prediction with a ``score`` field counts as its score.
    """
    if isinstance(value, Prediction) and "score" in value:
        value = value["score"]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, numbers.Real):
        raise RewardError(
            f"Reward {reward_name(reward)} returned {value!r} ({type(value).__name__}); a reward must return "
            "a number (int, float or bool)."
        )
    result = float(value)
    if not math.isfinite(result):
        raise RewardError(
            f"Reward {reward_name(reward)} returned {result}; a reward must be a finite number."
        )
    return result
