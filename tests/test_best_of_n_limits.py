"""BestOfN at its edges: a custom policy that selects nonsense, and N from 1 to its documented limit.

Through the public API against the session's test server (litellm), like a user's program.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.best_of_n.best_of_n import MAX_N
from bestofn_core.errors import ConfigurationError, SelectionPolicyError
from bestofn_core.testing.openai_server import OpenAICompatServer

QA = "question -> answer"


def always(value: float) -> Any:
    return lambda inputs, prediction: value


# ------------------------------------------------------------------------ a policy that selects nonsense


class NeverStops:
    """A policy that never stops early; ``select`` is each test's."""

    def should_stop(self, candidates: Sequence[bon.Candidate], threshold: float | None) -> bool:
        return False


class SelectsNone(NeverStops):
    def select(self, candidates: Sequence[bon.Candidate]) -> Any:
        return None


class SelectsText(NeverStops):
    def select(self, candidates: Sequence[bon.Candidate]) -> Any:
        return "the first one"


class SelectsACopy(NeverStops):
    def select(self, candidates: Sequence[bon.Candidate]) -> Any:
        return bon.Candidate(index=0, rollout_id=0, prediction=candidates[0].prediction, reward=1.0)


class SelectsAFailure(NeverStops):
    def select(self, candidates: Sequence[bon.Candidate]) -> Any:
        return next(candidate for candidate in candidates if not candidate.ok)


class StopsThenSelectsNone:
    """Stops at once (the early-stop path asks ``select`` too)."""

    def should_stop(self, candidates: Sequence[bon.Candidate], threshold: float | None) -> bool:
        return True

    def select(self, candidates: Sequence[bon.Candidate]) -> Any:
        return None


@pytest.mark.parametrize(
    ("policy", "returned"),
    [
        (SelectsNone(), "None"),
        (SelectsText(), "'the first one'"),
        (SelectsACopy(), "Candidate(index=0, rollout_id=0"),
        (StopsThenSelectsNone(), "None"),
    ],
)
def test_a_policy_selecting_no_candidate_is_an_error_naming_it_and_what_it_returned(
    lm: bon.LM, policy: Any, returned: str
) -> None:
    best = bon.BestOfN(bon.Predict(QA), N=2, reward_fn=always(1.0), policy=policy, concurrency=1)
    with pytest.raises(SelectionPolicyError) as info:
        best(question="q")
    message = str(info.value)
    assert type(policy).__name__ in message
    assert f"select() returned {returned}" in message
    assert "one of the successful candidates it was given" in message


def test_a_policy_selecting_a_failed_attempt_is_an_error(lm: bon.LM) -> None:
    def reward(inputs: dict[str, Any], prediction: bon.Prediction) -> float:
        if inputs["question"] == "q" and not reward.seen:  # type: ignore[attr-defined]
            reward.seen = True  # type: ignore[attr-defined]
            raise ValueError("the first attempt's reward crashed")
        return 1.0

    reward.seen = False  # type: ignore[attr-defined]
    best = bon.BestOfN(bon.Predict(QA), N=2, reward_fn=reward, policy=SelectsAFailure(), concurrency=1)
    with pytest.raises(SelectionPolicyError, match=r"SelectsAFailure.*a failed attempt \(rollout 0"):
        best(question="q")


def test_a_plugin_policy_is_named_by_its_reference(lm: bon.LM) -> None:
    from bestofn_core.plugins import get_plugin_manager

    class Plugin:
        @bon.hookimpl
        def register_selection_policies(self, register: Any) -> None:
            register(SelectsNone(), name="nothing")

    plugin = Plugin()
    get_plugin_manager().register(plugin, name="brokenpolicies")
    try:
        best = bon.BestOfN(bon.Predict(QA), N=2, reward_fn=always(1.0), policy="brokenpolicies:nothing")
        with pytest.raises(SelectionPolicyError, match=r"policy 'brokenpolicies:nothing' \(SelectsNone\)"):
            best(question="q")
    finally:
        get_plugin_manager().unregister(plugin)


# ------------------------------------------------------------------------------------------------ N


def test_n_above_the_documented_limit_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=rf"N: Input should be less than or equal to {MAX_N}"):
        bon.BestOfN(bon.Predict(QA), N=MAX_N + 1, reward_fn=always(1.0))
    with pytest.raises(ConfigurationError, match="N: Input should be less than or equal to"):
        bon.BestOfN(bon.Predict(QA), N=10**7, reward_fn=always(1.0))
    assert bon.BestOfN(bon.Predict(QA), N=MAX_N, reward_fn=always(1.0)).N == MAX_N


def tasks_seen_by(seen: list[int]) -> Any:
    async def reward(inputs: dict[str, Any], prediction: bon.Prediction) -> float:
        seen.append(len(asyncio.all_tasks()))
        return 1.0

    return reward


def test_an_early_stop_at_the_first_attempt_costs_one_attempt_whatever_n(
    lm: bon.LM, server: OpenAICompatServer
) -> None:
    seen: list[int] = []
    best = bon.BestOfN(bon.Predict(QA), N=MAX_N, reward_fn=tasks_seen_by(seen), threshold=1.0, concurrency=1)
    prediction = best(question="q")
    assert prediction.winner.rollout_id == 0 and len(prediction.candidates) == 1
    assert len(server.requests) == 1
    # attempts are created as slots free up: not MAX_N tasks waiting for a slot
    assert seen and seen[0] < 20, seen


def test_attempts_in_flight_never_exceed_the_concurrency(lm: bon.LM, server: OpenAICompatServer) -> None:
    seen: list[int] = []
    server.set_responder(lambda request, index: {"answer": "x"})
    best = bon.BestOfN(bon.Predict(QA), N=40, reward_fn=tasks_seen_by(seen), concurrency=4)
    prediction = best(question="q")
    assert len(prediction.candidates) == 40 and len(server.requests) == 40
    assert max(seen) < 20, seen
