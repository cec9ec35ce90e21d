"""BestOfN: run a module up to N times at temperature 1.0 and keep the best prediction.

Attempts run concurrently on the event loop (bounded by ``concurrency``); the sync call runs the same
engine. Decisions are taken in rollout order (see ``outcome.py``), so the result does not depend on
which attempt finishes first. With ``sampling="batched"`` one request asks the backend for N choices.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bestofn_core._validation import validate_arguments
from bestofn_core.best_of_n.candidates import BestOfNPrediction, Candidate
from bestofn_core.best_of_n.outcome import Outcome
from bestofn_core.best_of_n.rewards import PluginReward, resolve_reward, reward, score
from bestofn_core.errors import AdapterParseError, ConfigurationError, RewardError
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.primitives.trace import extend_trace
from bestofn_core.primitives.usage import UsageTracker
from bestofn_core.settings import check_lm, settings

logger = logging.getLogger(__name__)

Sampling = Literal["per_rollout", "batched"]

#: The most attempts one BestOfN call may make. Attempts start as slots free up, so a large N costs only
#: what a call uses; the bound keeps a typo (``N=10**7``) from building a call that cannot finish, and
#: keeps every candidate of a call in memory affordable.
MAX_N = 10_000


class BestOfNArguments(BaseModel):
    """BestOfN's checked configuration (pydantic names the bad field)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    #: Number of attempts (at most ``MAX_N``).
    N: int = Field(ge=1, le=MAX_N)
    #: Stop at the first rollout whose reward reaches this; ``None`` never stops early.
    threshold: float | None = None
    #: Failures tolerated per call; one more raises. ``None``: N (the call raises only if all fail).
    fail_count: int | None = Field(default=None, ge=0)
    #: Attempts in flight at once; ``None``: all N; 1: strictly sequential.
    concurrency: int | None = Field(default=None, ge=1)
    #: ``"per_rollout"``: one request per attempt; ``"batched"``: one request for N choices.
    sampling: Sampling = "per_rollout"
    #: The temperature every attempt samples at (it wins over a predictor-level temperature).
    temperature: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    #: Seconds one reward call may take before its attempt fails; ``None``: no limit.
    reward_timeout: float | None = Field(default=None, gt=0)

    @field_validator("threshold", "reward_timeout")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number or None")
        return value


class BestOfN(Module):
    """Run ``module`` up to ``N`` times with rollout ids ``start..start+N-1`` and keep the best prediction.

    Args:
        module: the program to sample.
        N: how many attempts at most (1 to ``MAX_N``, 10,000).
        reward_fn: ``reward_fn(inputs: dict, prediction) -> float``, sync or async, a Module (an LM
            judge), or a ``"plugin:name"`` reference to a registered reward. ``None`` (the default) when
            the policy needs no reward, e.g. ``policy="voting:majority"`` (self-consistency); a policy that
            chooses by reward (``needs_rewards``, true unless the policy says otherwise) then raises
            ``ConfigurationError`` here.
        threshold: stop at the first rollout (in rollout order) whose reward is at least this.
        fail_count: failures tolerated per call (default N); the call raises ``BestOfNError`` once more
            attempts fail, carrying every attempt. It never changes between calls.
        policy: selection policy object or ``"plugin:name"`` (default ``"threshold"``: DSPy's rule).
        concurrency: attempts in flight at once (default: all; 1 reproduces the sequential reference,
            LM call for LM call).
        sampling: ``"per_rollout"`` (default) or ``"batched"`` (one request for all N choices, where the
            backend supports ``n``; needs a module with exactly one predictor).
        temperature: sampling temperature of every attempt (default 1.0). It replaces a temperature set
            on a predictor (``Predict(..., temperature=0.2)``), with a warning at construction.
        reward_timeout: seconds one reward call may take (default: no limit); a slower reward fails its
            attempt with ``RewardTimeoutError``, counted against ``fail_count``. A sync reward's thread
            cannot be stopped: it finishes in the background and its result is ignored.

    The returned ``BestOfNPrediction`` has the winner's fields plus ``candidates`` and ``winner``.
    """

    def __init__(
        self,
        module: Module,
        N: int,
        reward_fn: Any = None,
        threshold: float | None = None,
        fail_count: int | None = None,
        *,
        policy: Any = "threshold",
        concurrency: int | None = None,
        sampling: Sampling = "per_rollout",
        temperature: float = 1.0,
        reward_timeout: float | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        super().__init__(callbacks=callbacks)
        if not isinstance(module, Module):
            raise ConfigurationError(
                f"BestOfN needs a Module to sample (e.g. ChainOfThought(...)); got {type(module).__name__}."
            )
        checked = validate_arguments(
            BestOfNArguments,
            "BestOfN(...)",
            N=N,
            threshold=threshold,
            fail_count=fail_count,
            concurrency=concurrency,
            sampling=sampling,
            temperature=temperature,
            reward_timeout=reward_timeout,
        )
        self.module = module
        self.N = checked.N
        self.threshold = checked.threshold
        self.fail_count = checked.fail_count
        self.concurrency = checked.concurrency
        self.sampling: Sampling = checked.sampling
        self.temperature = checked.temperature
        self.reward_timeout = checked.reward_timeout
        self.reward_fn = None if reward_fn is None else resolve_reward(reward_fn)
        self.policy_ref: str | None = policy if isinstance(policy, str) else None
        self.policy = _resolve_policy(policy)
        _check_rewards_for(self.policy, self.policy_ref, self.reward_fn)
        self._warn_about_predictor_temperatures()

    def _warn_about_predictor_temperatures(self) -> None:
        for name, predictor in self.module.named_predictors():
            if "temperature" in predictor.config:
                logger.warning(
                    "BestOfN samples at temperature %s: predictor %r's temperature=%s is ignored in its "
                    "attempts (pass BestOfN(..., temperature=...) to change it).",
                    self.temperature,
                    name,
                    predictor.config["temperature"],
                )

    # ------------------------------------------------------------------ running

    async def aforward(self, **kwargs: Any) -> BestOfNPrediction:
        """Sample, score and select; see the class docstring."""
        lm = self._base_lm()
        start = int(lm.kwargs.get("rollout_id") or 0)
        outcome = Outcome(
            self.N,
            self.N if self.fail_count is None else self.fail_count,
            self.threshold,
            self.policy,
            self.policy_ref,
        )
        if self.sampling == "batched":
            await self._run_batched(lm, start, kwargs, outcome)
        else:
            await self._run_per_rollout(lm, start, kwargs, outcome)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.winner is not None
        extend_trace(outcome.winner.trace)
        return BestOfNPrediction.from_winner(outcome.winner, outcome.considered)

    def _base_lm(self) -> Any:
        predictors = self.module.named_predictors()
        lm = self.module.get_lm() if predictors else None
        lm = lm or settings.lm
        if lm is None:
            raise ConfigurationError(
                "BestOfN found no LM: set one on the module (module.set_lm(lm)) or configure one with "
                "bestofn_core.configure(lm=bestofn_core.LM(...))."
            )
        check_lm(lm, "The LM of BestOfN's module")
        return lm

    async def _run_per_rollout(self, lm: Any, start: int, inputs: dict[str, Any], outcome: Outcome) -> None:
        """Start attempts in rollout order as slots free up, until the outcome is settled or N have run.

        An attempt is created only when a slot is free, so an early stop costs the attempts that ran,
        whatever N is; and it is judged before the next one starts (``concurrency=1`` starts no needless
        attempt). Once the call is settled, or a reward raises ``RewardError``, the attempts still running
        are cancelled and awaited: none outlives the call.
        """
        slots = self.concurrency or self.N
        running: set[asyncio.Task[Candidate]] = set()
        finished: asyncio.Queue[asyncio.Task[Candidate]] = asyncio.Queue()
        started = 0
        try:
            while not outcome.settled:
                while started < self.N and len(running) < slots:
                    task = asyncio.ensure_future(self._attempt(started, start + started, lm, inputs))
                    task.add_done_callback(finished.put_nowait)
                    running.add(task)
                    started += 1
                if not running:
                    return
                done = [await finished.get()]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for task in done:
                    running.discard(task)
                    outcome.add(task.result())  # a RewardError ends the call at once
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _attempt(self, index: int, rollout_id: int, lm: Any, inputs: dict[str, Any]) -> Candidate:
        attempt_lm = self._attempt_lm(lm, rollout_id)
        program, originals = self._attempt_program(attempt_lm)
        tracker = UsageTracker(parent=settings.usage_tracker)
        candidate = Candidate(index=index, rollout_id=rollout_id, scored=self.reward_fn is not None)
        trace: list[Any] = []
        started = time.perf_counter()
        try:
            with settings.context(trace=trace, lm=attempt_lm, usage_tracker=tracker):
                candidate.prediction = await program.acall(**inputs)
            candidate.reward = await self._score(inputs, candidate.prediction, tracker)
        except RewardError:
            raise
        except Exception as exc:
            candidate.error = exc
            logger.warning(
                "BestOfN attempt %d (rollout %d) failed: %s: %s", index, rollout_id, type(exc).__name__, exc
            )
        candidate.latency = time.perf_counter() - started
        candidate.usage = tracker.get_total_tokens()
        candidate.trace = [(originals.get(id(p), p), args, pred) for p, args, pred in trace]
        return candidate

    async def _score(
        self, inputs: dict[str, Any], prediction: Prediction, tracker: UsageTracker
    ) -> float | None:
        if self.reward_fn is None:  # the policy chooses without rewards (checked at construction)
            return None
        # the reward's own LM calls (an LM judge) are paid for but kept out of the program's trace
        with settings.context(trace=[], usage_tracker=tracker):
            return await score(self.reward_fn, inputs, prediction, self.reward_timeout)

    def _attempt_lm(self, lm: Any, rollout_id: int) -> Any:
        attempt_lm = lm.copy(rollout_id=rollout_id, temperature=self.temperature)
        attempt_lm.history = lm.history  # calls of the attempts show up in the user's LM history
        return attempt_lm

    def _attempt_program(self, attempt_lm: Any) -> tuple[Module, dict[int, Any]]:
        """A copy of the module using ``attempt_lm``; maps its predictors back to the user's."""
        program = self.module.deepcopy()
        # callbacks and history stay the user's objects, so they see the attempts
        for (_, original), (_, copied) in zip(
            self.module.named_sub_modules(), program.named_sub_modules(), strict=True
        ):
            copied.callbacks = original.callbacks
            copied.history = original.history
        originals: dict[int, Any] = {}
        for (_, original), (_, copied) in zip(
            self.module.named_predictors(), program.named_predictors(), strict=True
        ):
            originals[id(copied)] = original
            copied.config.pop("temperature", None)
        program.set_lm(attempt_lm)
        return program, originals

    async def _run_batched(self, lm: Any, start: int, inputs: dict[str, Any], outcome: Outcome) -> None:
        if not lm.supports_n:
            raise ConfigurationError(
                f"sampling='batched' needs a backend that returns n choices per request; the backend of "
                f"{lm.model!r} does not. Use sampling='per_rollout'."
            )
        if len(self.module.named_predictors()) != 1:
            raise ConfigurationError(
                "sampling='batched' needs a module with exactly one predictor (one request for N choices); "
                f"{type(self.module).__name__} has {len(self.module.named_predictors())}. "
                "Use sampling='per_rollout'."
            )
        # (rollout id, prediction, usage, trace, latency) of every choice that parsed; (rollout id, error,
        # usage, latency) of every choice that did not: both are attempts, in rollout order
        samples: list[tuple[int, Prediction, dict[str, Any], list[Any], float]] = []
        rejected: list[tuple[int, Exception, dict[str, Any], float]] = []
        failures: list[Candidate] = []  # requests that failed as a whole
        fail_budget = self.N if self.fail_count is None else self.fail_count
        tracker_parent = settings.usage_tracker
        next_rollout = start
        # a failed request is one failed attempt of the N, as in per-rollout sampling: without that bound,
        # a provider that keeps failing the top-up would spend the whole budget and discard the samples
        while (
            len(samples) + len(rejected) + len(failures) < self.N
            and len(failures) + len(rejected) <= fail_budget
        ):
            rollout_id = next_rollout
            wanted = self.N - len(samples) - len(rejected)
            program, originals = self._attempt_program(self._attempt_lm(lm, rollout_id))
            ((_, predictor),) = program.named_predictors()
            predictor.config["n"] = wanted
            tracker = UsageTracker(parent=tracker_parent)
            trace: list[Any] = []
            started = time.perf_counter()
            try:
                with settings.context(trace=trace, lm=predictor.lm, usage_tracker=tracker):
                    prediction = await program.acall(**inputs)
            except Exception as exc:
                choices = exc.choices if isinstance(exc, AdapterParseError) else None
                if choices is None:  # nothing to keep: one failed request
                    logger.warning("BestOfN batched request (rollout %d) failed: %s", rollout_id, exc)
                    failures.append(Candidate(index=len(failures), rollout_id=rollout_id, error=exc))
                    continue
                # some choices could not be parsed: they are failed attempts, the others are kept
                latency = time.perf_counter() - started
                usage = tracker.get_total_tokens()
                owner = originals.get(id(predictor), predictor)
                for offset, choice in enumerate(choices[:wanted]):
                    if isinstance(choice, AdapterParseError):
                        rejected.append((rollout_id + offset, choice, usage, latency))
                    else:
                        sample = Prediction.from_completions([choice], signature=predictor.signature)
                        samples.append(
                            (rollout_id + offset, sample, usage, [(owner, inputs, sample)], latency)
                        )
                next_rollout = rollout_id + len(choices[:wanted])
                continue
            latency = time.perf_counter() - started
            mapped = [(originals.get(id(p), p), args, pred) for p, args, pred in trace]
            usage = tracker.get_total_tokens()
            completions = list(prediction.completions) if len(prediction.completions) > 1 else [prediction]
            for offset, sample in enumerate(completions[:wanted]):
                samples.append((rollout_id + offset, sample, usage, mapped, latency))
            next_rollout = rollout_id + len(completions[:wanted])
            if len(completions) < wanted:
                logger.info(
                    "Backend returned %d of %d choices; asking for the rest", len(completions), wanted
                )
        # every attempt, parsed or not, in rollout order: its index is its place among them
        rollouts = sorted([sample[0] for sample in samples] + [attempt[0] for attempt in rejected])
        place = {rollout: index for index, rollout in enumerate(rollouts)}
        unparsed = [
            Candidate(index=place[rollout], rollout_id=rollout, error=error, usage=usage, latency=latency)
            for rollout, error, usage, latency in rejected
        ]
        if len(failures) > fail_budget or not samples:
            summary = f"{len(failures)} batched requests failed (fail_count={fail_budget})"
            if rejected:
                summary += f"; {len(rejected)} choices could not be parsed"
            outcome.fail(summary, failures + unparsed)
            return

        async def judge(
            index: int, sample: tuple[int, Prediction, dict[str, Any], list[Any], float]
        ) -> Candidate:
            rollout, prediction, usage, trace, latency = sample
            candidate = Candidate(index, rollout, prediction, usage=usage, latency=latency)
            candidate.scored = self.reward_fn is not None
            candidate.trace = [(p, args, prediction) for p, args, _ in trace]
            tracker = UsageTracker(parent=tracker_parent)
            try:
                candidate.reward = await self._score(inputs, prediction, tracker)
            except RewardError:
                raise
            except Exception as exc:
                candidate.error = exc
            return candidate

        judges = [asyncio.ensure_future(judge(place[sample[0]], sample)) for sample in samples]
        try:
            judged = await asyncio.gather(*judges)
        finally:
            for task in judges:  # a RewardError ends the call: stop the other rewards too
                task.cancel()
        outcome.total = len(place)
        for candidate in sorted([*judged, *unparsed], key=lambda c: c.index):
            outcome.add(candidate)

    # ------------------------------------------------------------------ state

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """The module's parameters plus BestOfN's own configuration (under ``"best_of_n"``)."""
        state = super().dump_state(json_mode=json_mode)
        state["best_of_n"] = {
            "N": self.N,
            "threshold": self.threshold,
            "fail_count": self.fail_count,
            "concurrency": self.concurrency,
            "sampling": self.sampling,
            "temperature": self.temperature,
            "reward_timeout": self.reward_timeout,
            "reward_fn": self.reward_fn.ref if isinstance(self.reward_fn, PluginReward) else None,
            "reward_params": self.reward_fn.params if isinstance(self.reward_fn, PluginReward) else {},
            "policy": self.policy_ref,
        }
        return state

    def load_state(self, state: dict[str, Any], *, allow_unsafe_lm_state: bool = False) -> BestOfN:
        """Restore parameters and configuration; a saved ``"plugin:name"`` reward or policy is resolved."""
        state = dict(state)
        config = state.pop("best_of_n", None)
        super().load_state(state, allow_unsafe_lm_state=allow_unsafe_lm_state)
        if config is None:
            return self
        if not isinstance(config, dict):
            raise ConfigurationError("The saved 'best_of_n' entry must be a mapping.")
        settings_only = {k: config[k] for k in BestOfNArguments.model_fields if k in config}
        checked = validate_arguments(BestOfNArguments, "BestOfN state", **{"N": self.N, **settings_only})
        self.N, self.threshold, self.fail_count = checked.N, checked.threshold, checked.fail_count
        self.concurrency, self.sampling, self.temperature = (
            checked.concurrency,
            checked.sampling,
            checked.temperature,
        )
        self.reward_timeout = checked.reward_timeout
        if config.get("reward_fn"):
            self.reward_fn = reward(config["reward_fn"], **(config.get("reward_params") or {}))
        if config.get("policy"):
            self.policy = _resolve_policy(config["policy"])
            self.policy_ref = config["policy"]
        _check_rewards_for(self.policy, self.policy_ref, self.reward_fn)
        return self


def _resolve_policy(policy: Any) -> Any:
    if isinstance(policy, str):
        from bestofn_core.plugins import get_registry

        return get_registry().get("selection_policy", policy)
    missing = [name for name in ("should_stop", "select") if not callable(getattr(policy, name, None))]
    if missing:
        raise ConfigurationError(
            f"policy must be a 'plugin:name' reference or an object with should_stop(candidates, threshold) "
            f"and select(candidates); {type(policy).__name__} lacks {', '.join(missing)}."
        )
    return policy


def needs_rewards(policy: Any) -> bool:
    """Whether ``policy`` chooses by reward: its ``needs_rewards`` attribute, true when it has none."""
    return bool(getattr(policy, "needs_rewards", True))


def _check_rewards_for(policy: Any, reference: str | None, reward_fn: Any) -> None:
    if reward_fn is None and needs_rewards(policy):
        name = f"{reference!r}" if reference else type(policy).__name__
        raise ConfigurationError(
            f"BestOfN(...) has no reward_fn, but the selection policy {name} chooses by reward. Pass "
            "reward_fn=... (a function, a Module, or a 'plugin:name' reward such as 'text:one_word'), or "
            "choose a policy that needs no reward, such as policy='voting:majority' (self-consistency, "
            "from the bestofn-voting plugin)."
        )
