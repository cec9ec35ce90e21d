"""Calling reward functions: sync or async callables, Modules (LM judges), or ``"plugin:name"`` references."""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

from bestofn_core._runner import run_in_thread
from bestofn_core.errors import ConfigurationError, RewardError, RewardTimeoutError
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Prediction


class PluginReward:
    """A reward built from the registry by reference, remembering how (so BestOfN can save it).

    Made by ``bestofn_core.reward("plugin:name", **params)``; calling it calls the built reward.
    """

    def __init__(self, ref: str, params: dict[str, Any], fn: Callable[..., Any]) -> None:
        self.ref = ref
        self.params = params
        self.fn = fn

    def __call__(self, inputs: dict[str, Any], prediction: Prediction) -> Any:
        return self.fn(inputs, prediction)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"reward({self.ref!r}{', ' + shown if shown else ''})"


def reward(ref: str, /, **params: Any) -> PluginReward:
    """The registered reward ``ref`` (``"plugin:name"``), built with ``params`` if it is a factory.

    ``reward("text:max_words", n=1)`` builds a parameterised reward; use it as ``reward_fn=``.
    """
    from bestofn_core.plugins import get_registry

    try:
        built = get_registry().build_reward(ref, **params)
    except TypeError as exc:
        raise ConfigurationError(
            f"Could not build the reward {ref!r} with {params or 'no parameters'}: {exc}. "
            f"Pass its parameters with bestofn_core.reward({ref!r}, name=value, ...)."
        ) from exc
    return PluginReward(ref, dict(params), built)


def resolve_reward(reward_fn: Any) -> Callable[..., Any]:
    """The callable behind ``reward_fn`` (a ``"plugin:name"`` string is built from the registry)."""
    if isinstance(reward_fn, str):
        return reward(reward_fn)
    if not callable(reward_fn):
        raise ConfigurationError(
            f"reward_fn must be a callable reward_fn(inputs, prediction) -> float, an async callable, a "
            f"Module, or a 'plugin:name' reference; got {type(reward_fn).__name__}."
        )
    return reward_fn


def reward_name(reward: Any) -> str:
    """A readable name for error messages."""
    return getattr(reward, "__qualname__", None) or type(reward).__name__


async def score(
    reward: Callable[..., Any],
    inputs: dict[str, Any],
    prediction: Prediction,
    timeout: float | None = None,
) -> float:
    """Run ``reward(inputs, prediction)`` without blocking the event loop and check its value.

    Async rewards are awaited, Modules run through ``acall``, and sync callables run in a worker thread.
    After ``timeout`` seconds the reward is cancelled and ``RewardTimeoutError`` raised. A sync reward's
    thread cannot be stopped: it runs on in the background and its result is ignored.
    """
    if isinstance(reward, PluginReward):
        reward = reward.fn
    if timeout is None:
        value = await _call(reward, inputs, prediction)
        return reward_value(value, reward)
    # not asyncio.wait_for: a TimeoutError raised by the reward itself must stay the reward's own error
    task = asyncio.ensure_future(_call(reward, inputs, prediction))
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        task.cancel()  # no-op once done; cancels it when the timeout passed or the attempt was cancelled
    if not done:
        raise RewardTimeoutError(
            f"Reward {reward_name(reward)} took longer than reward_timeout={timeout:g}s; the attempt counts "
            "as failed."
        )
    return reward_value(task.result(), reward)


async def _call(reward: Callable[..., Any], inputs: dict[str, Any], prediction: Prediction) -> Any:
    if isinstance(reward, Module):
        value = await reward.acall(inputs, prediction)
    elif inspect.iscoroutinefunction(reward) or inspect.iscoroutinefunction(type(reward).__call__):
        value = await reward(inputs, prediction)
    else:
        value = await run_in_thread(reward, inputs, prediction)
        if inspect.isawaitable(value):
            value = await value
    return value


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
