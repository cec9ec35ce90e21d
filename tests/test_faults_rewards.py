"""Bad rewards (issue #7): a reward that raises, returns None, NaN, inf or a string, or takes too long.

Two kinds of failure, counted differently:

- a reward that raises, or runs past ``reward_timeout``, fails its attempt: the attempt's ``error`` says
  why, and it counts against ``fail_count`` like any failed attempt;
- a reward that returns something other than a finite number is a bug in the reward: ``RewardError`` is
  raised at once, whatever ``fail_count`` allows, and no further attempt starts.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import BestOfNError, ConfigurationError, RewardError, RewardTimeoutError
from bestofn_core.testing.openai_server import OpenAICompatServer


def qa() -> bon.Module:
    return bon.ChainOfThought("question -> answer")


class FirstCallFails:
    """A sync reward whose first call (rollout 0, with concurrency=1) raises."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, inputs: dict[str, Any], pred: bon.Prediction) -> float:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("the judge crashed")
        return 0.5


def test_a_reward_that_raises_fails_its_attempt_and_counts_against_fail_count(lm: bon.LM) -> None:
    pred = bon.BestOfN(qa(), N=3, reward_fn=FirstCallFails(), fail_count=1, concurrency=1)(question="q")
    first, *others = pred.candidates
    assert isinstance(first.error, ValueError) and str(first.error) == "the judge crashed"
    assert first.reward is None and first.prediction is not None  # the module's answer is kept
    assert [c.reward for c in others] == [0.5, 0.5] and pred.winner is others[0]

    with pytest.raises(BestOfNError) as info:
        bon.BestOfN(qa(), N=3, reward_fn=FirstCallFails(), fail_count=0, concurrency=1)(question="q")
    assert "1 of 1 attempts failed, more than fail_count=0" in str(info.value)
    assert "rollout 0: ValueError: the judge crashed" in str(info.value)
    [error] = info.value.exceptions
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "returned None (NoneType)"),
        ("0.9", "returned '0.9' (str)"),
        (math.nan, "returned nan"),
        (math.inf, "returned inf"),
        (-math.inf, "returned -inf"),
    ],
)
def test_a_reward_returning_a_non_number_raises_reward_error_at_once_whatever_fail_count(
    value: Any, says: str, lm: bon.LM, server: OpenAICompatServer
) -> None:
    def bad_reward(inputs: dict[str, Any], pred: bon.Prediction) -> Any:
        return value

    best = bon.BestOfN(qa(), N=4, reward_fn=bad_reward, fail_count=4, concurrency=1)
    with pytest.raises(RewardError) as info:
        best(question="q")
    message = str(info.value)
    assert "Reward" in message and "bad_reward" in message and says in message
    assert "number" in message
    assert len(server.requests) == 1  # not counted as a failed attempt: no second attempt started


async def sleepy(inputs: dict[str, Any], pred: bon.Prediction) -> float:
    await asyncio.sleep(5.0)
    return 1.0


def test_a_slow_async_reward_fails_its_attempt_naming_the_reward_and_the_timeout(lm: bon.LM) -> None:
    best = bon.BestOfN(qa(), N=2, reward_fn=sleepy, reward_timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(BestOfNError) as info:
        best(question="q")
    assert time.perf_counter() - started < 2.0  # the attempts ran at once, each cut at 0.2 s
    assert "all 2 attempts failed" in str(info.value)
    assert len(info.value.exceptions) == 2
    for error in info.value.exceptions:
        assert isinstance(error, RewardTimeoutError) and isinstance(error, TimeoutError)
        assert str(error) == (
            "Reward sleepy took longer than reward_timeout=0.2s; the attempt counts as failed."
        )


def test_a_reward_timeout_counts_against_fail_count_like_any_failed_attempt(lm: bon.LM) -> None:
    calls: list[int] = []

    async def slow_first(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(5.0)
        return 1.0

    pred = bon.BestOfN(qa(), N=3, reward_fn=slow_first, reward_timeout=0.2, concurrency=1)(question="q")
    assert isinstance(pred.candidates[0].error, RewardTimeoutError)
    assert pred.winner.rollout_id == 1

    calls.clear()
    best = bon.BestOfN(qa(), N=3, reward_fn=slow_first, reward_timeout=0.2, fail_count=0, concurrency=1)
    with pytest.raises(BestOfNError, match=r"more than fail_count=0 allows \(rollout 0: RewardTimeoutError"):
        best(question="q")
    assert len(calls) == 1  # the budget was spent: no other attempt started


def test_a_slow_sync_reward_fails_its_attempt_and_its_thread_finishes_in_the_background(lm: bon.LM) -> None:
    finished = threading.Event()

    def blocking(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        time.sleep(0.8)  # a thread cannot be interrupted
        finished.set()
        return 1.0

    best = bon.BestOfN(qa(), N=1, reward_fn=blocking, reward_timeout=0.1)
    started = time.perf_counter()
    with pytest.raises(BestOfNError) as info:
        best(question="q")
    assert time.perf_counter() - started < 0.7 and not finished.is_set()  # did not wait for the thread
    [error] = info.value.exceptions
    assert isinstance(error, RewardTimeoutError) and "blocking" in str(error)
    assert finished.wait(5.0)  # the thread ran to its end; its 1.0 was ignored
    assert info.value.attempts[0].reward is None


def test_a_reward_within_its_timeout_and_its_own_timeout_error_are_not_confused(lm: bon.LM) -> None:
    async def quick(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        await asyncio.sleep(0.01)
        return 0.7

    pred = bon.BestOfN(qa(), N=2, reward_fn=quick, reward_timeout=5.0)(question="q")
    assert [c.reward for c in pred.candidates] == [0.7, 0.7]

    async def own_timeout(inputs: dict[str, Any], pred: bon.Prediction) -> float:
        raise TimeoutError("the judge's API timed out")

    with pytest.raises(BestOfNError) as info:
        bon.BestOfN(qa(), N=1, reward_fn=own_timeout, reward_timeout=5.0)(question="q")
    [error] = info.value.exceptions
    assert type(error) is TimeoutError and str(error) == "the judge's API timed out"


def test_reward_timeout_applies_to_batched_sampling_too(lm: bon.LM) -> None:
    best = bon.BestOfN(
        bon.Predict("question -> answer"), N=3, reward_fn=sleepy, reward_timeout=0.1, sampling="batched"
    )
    with pytest.raises(BestOfNError) as info:
        best(question="q")
    assert [type(e) for e in info.value.exceptions] == [RewardTimeoutError] * 3


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, "1", True])
def test_a_bad_reward_timeout_is_a_configuration_error_naming_the_field(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="reward_timeout"):
        bon.BestOfN(qa(), N=2, reward_fn=sleepy, reward_timeout=value)


def test_reward_timeout_is_saved_and_loaded(tmp_path: Any) -> None:
    best = bon.BestOfN(qa(), N=2, reward_fn=sleepy, reward_timeout=2.5)
    assert best.dump_state()["best_of_n"]["reward_timeout"] == 2.5
    best.save(tmp_path / "best.json")
    fresh = bon.BestOfN(qa(), N=2, reward_fn=sleepy)
    assert fresh.reward_timeout is None
    fresh.load(tmp_path / "best.json")
    assert fresh.reward_timeout == 2.5
