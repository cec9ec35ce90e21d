"""Module.batch, Module.abatch and Parallel: every argument, both built-in executors, executor plugins."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.errors import BatchError, ConfigurationError, UnknownNameError
from bestofn_core.parallel import AsyncioExecutor, ThreadsExecutor
from bestofn_core.parallel.parallel import resolve_executor
from bestofn_core.plugins import get_plugin_manager, get_registry
from bestofn_core.protocols import BatchCall, LMRequest
from bestofn_core.testing.dummy_lm import DummyLM
from bestofn_core.testing.openai_server import OpenAICompatServer, ReceivedRequest

EXECUTORS = ["asyncio", "threads"]


def questions(n: int, prefix: str = "q") -> list[bon.Example]:
    return [bon.Example(question=f"{prefix}{i}", gold=f"g{i}").with_inputs("question") for i in range(n)]


def question_in(text: str) -> str:
    """The ``q<N>`` question a prompt carries (the test questions are unique words)."""
    found = re.findall(r"\b(?:q|slow|fast)\d*\b", text)
    return found[-1]


def echo_question(request: LMRequest, index: int) -> dict[str, str]:
    """DummyLM script: answer ``A:<question>``."""
    return {"answer": "A:" + question_in(str(request.messages[-1]["content"]))}


class Recorder(bon.Module):
    """An async module that records its inputs, the settings it saw and how many calls overlapped."""

    def __init__(self, delay: float = 0.02, fail: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.delay, self.fail = delay, fail
        self.calls: list[dict[str, Any]] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def _enter(self, kwargs: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append(kwargs)
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _leave(self, kwargs: dict[str, Any]) -> bon.Prediction:
        with self.lock:
            self.active -= 1
        if kwargs.get("question") in self.fail:
            raise ValueError(f"cannot answer {kwargs['question']}")
        return bon.Prediction(
            answer=f"A:{kwargs.get('question')}",
            seen_lm=bon.settings.lm,
            thread=threading.current_thread().name,
        )

    async def aforward(self, **kwargs: Any) -> bon.Prediction:
        self._enter(kwargs)
        await asyncio.sleep(self.delay)
        return self._leave(kwargs)


class SyncRecorder(Recorder):
    """The same, with blocking sync code (``forward`` only)."""

    def forward(self, **kwargs: Any) -> bon.Prediction:
        self._enter(kwargs)
        time.sleep(self.delay)
        return self._leave(kwargs)

    aforward = bon.Module.aforward  # back to the default: run forward in a worker thread


def max_overlap(requests: list[ReceivedRequest], latency: float) -> int:
    """Most requests the server was answering at once (each one is busy ``latency`` from arrival)."""
    events = sorted(
        [(r.received_at, 1) for r in requests] + [(r.received_at + latency, -1) for r in requests]
    )
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bestofn-batch")]


def wait_for_batch_threads_to_exit(seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while batch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)


# --------------------------------------------------------------------------------- results and inputs


@pytest.mark.parametrize("executor", EXECUTORS)
def test_results_come_back_in_input_order(executor: str) -> None:
    # later examples answer sooner, so completion order is the reverse of input order
    delays = {f"q{i}": 0.01 * (10 - i) for i in range(10)}
    lm = DummyLM(echo_question, delay=lambda r: delays[question_in(str(r.messages[-1]["content"]))])
    qa = bon.Predict("question -> answer")
    qa.set_lm(lm)
    results = qa.batch(questions(10), num_threads=10, executor=executor)
    assert [r.answer for r in results] == [f"A:q{i}" for i in range(10)]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_examples_pass_their_inputs_and_dicts_pass_their_items(executor: str) -> None:
    module = Recorder() if executor == "asyncio" else SyncRecorder()
    examples: list[Any] = [
        bon.Example(question="q0", gold="secret").with_inputs("question"),
        {"question": "q1", "hint": "h"},
    ]
    results = module.batch(examples, executor=executor)
    assert sorted(module.calls, key=lambda c: c["question"]) == [
        {"question": "q0"},  # labels stay out of the call
        {"question": "q1", "hint": "h"},
    ]
    assert [r.answer for r in results] == ["A:q0", "A:q1"]


def test_batch_against_the_server_with_examples_and_dicts(server: OpenAICompatServer, lm: bon.LM) -> None:
    server.set_responder(lambda request, index: {"answer": "A:" + question_in(request.last_user_text)})
    examples: list[Any] = [*questions(3), {"question": "q3"}]
    results = bon.ChainOfThought("question -> answer").batch(examples, num_threads=2)
    assert [r.answer for r in results] == ["A:q0", "A:q1", "A:q2", "A:q3"]
    assert len(server.requests) == 4


def test_parallel_runs_module_example_pairs_with_tuples_and_several_modules() -> None:
    first, second = Recorder(), Recorder()

    def add(a: int, b: int) -> int:
        return a + b

    pairs: list[tuple[Any, Any]] = [
        (first, bon.Example(question="q0").with_inputs("question")),
        (second, {"question": "q1"}),
        (add, (2, 3)),
    ]
    results = bon.Parallel(num_threads=2)(pairs)
    assert isinstance(results, list)
    assert [results[0].answer, results[1].answer, results[2]] == ["A:q0", "A:q1", 5]
    assert first.calls == [{"question": "q0"}] and second.calls == [{"question": "q1"}]


def test_parallel_without_access_examples_passes_the_example_itself() -> None:
    seen: list[Any] = []

    def record(example: bon.Example) -> str:
        seen.append(example)
        return str(example.question)

    example = bon.Example(question="q0", gold="g").with_inputs("question")
    assert bon.Parallel(access_examples=False)([(record, example)]) == ["q0"]
    assert seen == [example]


# --------------------------------------------------------------------------------- concurrency and settings


@pytest.mark.parametrize("executor", EXECUTORS)
def test_num_threads_bounds_examples_in_flight_and_defaults_from_settings(executor: str) -> None:
    make: Callable[[], Recorder] = Recorder if executor == "asyncio" else SyncRecorder
    module = make()
    module.batch(questions(12), num_threads=3, executor=executor)
    assert module.peak == 3
    bon.configure(num_threads=5)
    module = make()
    module.batch(questions(12), executor=executor)
    assert module.peak == 5


@pytest.mark.parametrize("executor", EXECUTORS)
def test_each_worker_sees_the_callers_settings(executor: str) -> None:
    module = Recorder() if executor == "asyncio" else SyncRecorder()
    marker = DummyLM(["x"])
    with bon.context(lm=marker):
        results = module.batch(questions(6), num_threads=3, executor=executor)
    assert all(r.seen_lm is marker for r in results)
    assert bon.settings.lm is None


@pytest.mark.parametrize("executor", EXECUTORS)
def test_usage_is_per_example_and_sums_across_workers(
    server: OpenAICompatServer, lm: bon.LM, executor: str
) -> None:
    qa = bon.Predict("question -> answer")
    with bon.track_usage() as tracker:
        results = qa.batch(questions(8), num_threads=4, executor=executor)
    per_example = [r.get_lm_usage()[lm.model] for r in results]
    assert all(usage["prompt_tokens"] > 0 for usage in per_example)
    total = tracker.get_total_tokens()[lm.model]
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert total[key] == sum(usage[key] for usage in per_example)
    assert len(server.requests) == 8


def test_configured_track_usage_gives_every_result_its_usage(lm: bon.LM) -> None:
    bon.configure(track_usage=True)
    results = bon.Predict("question -> answer").batch(questions(3))
    assert all(r.get_lm_usage()[lm.model]["total_tokens"] > 0 for r in results)


def test_the_threads_executor_leaves_no_thread_behind(lm: bon.LM) -> None:
    module = SyncRecorder()
    module.batch(questions(2), executor="threads")  # starts the process's event loop thread first
    before = threading.active_count()
    results = module.batch(questions(20), num_threads=8, executor="threads")
    assert threading.active_count() == before
    assert {r.thread.rsplit("-", 1)[0] for r in results} == {results[0].thread.rsplit("-", 1)[0]}
    assert results[0].thread.startswith("bestofn-batch") and module.peak == 8

    # with LM calls too: worker threads wait on the shared event loop, then end with the batch
    qa = bon.Predict("question -> answer")
    qa.batch(questions(20), num_threads=8, executor="threads")
    assert batch_threads() == []


def test_the_asyncio_executor_starts_no_thread() -> None:
    module = Recorder()
    results = module.batch(questions(10), num_threads=10, executor="asyncio")
    assert {r.thread for r in results} == {"bestofn-event-loop"}


# --------------------------------------------------------------------------------- failures


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failed_example_leaves_none_and_is_logged(executor: str, caplog: pytest.LogCaptureFixture) -> None:
    module = Recorder(fail=("q1", "q3")) if executor == "asyncio" else SyncRecorder(fail=("q1", "q3"))
    with caplog.at_level(logging.ERROR, logger="bestofn_core.parallel"):
        results = module.batch(questions(5), executor=executor)
    assert [r.answer if r is not None else None for r in results] == ["A:q0", None, "A:q2", None, "A:q4"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("Example 1 failed: ValueError: cannot answer q1" in m for m in messages)
    assert all(r.exc_info is None for r in caplog.records)
    assert any("provide_traceback=True" in m for m in messages)


def test_provide_traceback_logs_the_traceback_and_defaults_from_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = Recorder(fail=("q0",))
    with caplog.at_level(logging.ERROR, logger="bestofn_core.parallel"):
        module.batch(questions(1), provide_traceback=True)
    assert caplog.records[-1].exc_info is not None
    caplog.clear()
    bon.configure(provide_traceback=True)
    with caplog.at_level(logging.ERROR, logger="bestofn_core.parallel"):
        module.batch(questions(1))
    assert caplog.records[-1].exc_info is not None
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="bestofn_core.parallel"):
        module.batch(questions(1), provide_traceback=False)
    assert caplog.records[-1].exc_info is None


def test_return_failed_examples_gives_fresh_lists_on_every_call() -> None:
    examples = questions(4)
    module = Recorder(fail=("q0", "q2"))
    results, failed, errors = module.batch(examples, return_failed_examples=True)
    assert results[1].answer == "A:q1" and results[0] is None and results[2] is None
    assert sorted(failed, key=lambda e: e.question) == [examples[0], examples[2]]
    assert sorted(str(e) for e in errors) == ["cannot answer q0", "cannot answer q2"]

    parallel = bon.Parallel(return_failed_examples=True)
    _, failed_first, _ = parallel([(module, examples[0])])
    _, failed_second, errors_second = parallel([(module, examples[2]), (module, examples[1])])
    assert failed_first == [examples[0]]
    assert failed_second == [examples[2]] and len(errors_second) == 1  # not accumulated (DSPy #10361)
    assert parallel.failed_examples == [examples[2]]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_max_errors_cancels_the_remaining_work(
    server: OpenAICompatServer, make_lm: Callable[..., bon.LM], executor: str
) -> None:
    server.fail_next(400, times=1000)  # not retried: each example fails on its one request
    server.latency = 0.02
    qa = bon.Predict("question -> answer")
    qa.set_lm(make_lm())
    with pytest.raises(BatchError) as caught:
        qa.batch(questions(30), num_threads=2, max_errors=2, executor=executor)
    error = caught.value
    assert re.search(r"stopped after 2 of 30 examples failed \(max_errors=2\)", str(error))
    assert "LMRequestError" in str(error) or "LMAuthentication" in str(error) or "Error" in str(error)
    assert len(error.failures) == 2 and len(error.results) == 30
    assert {index for index, _, _ in error.failures} <= {0, 1, 2, 3}
    assert isinstance(error.__cause__, Exception)
    time.sleep(0.1)  # let anything still running arrive
    assert len(server.requests) <= 4  # the two failures and at most the two in flight beside them


def test_max_errors_defaults_from_settings_and_none_means_no_limit() -> None:
    module = Recorder(fail=("q0", "q1", "q2"))
    assert module.batch(questions(4), num_threads=1)[:3] == [None, None, None]  # default: unlimited
    bon.configure(max_errors=2)
    with pytest.raises(BatchError, match="stopped after 2 of 4") as caught:
        module.batch(questions(4), num_threads=1)
    assert [index for index, _, _ in caught.value.failures] == [0, 1]
    assert caught.value.results == [None] * 4  # q3 never ran
    with pytest.raises(BatchError, match="stopped after 1 of 4"):
        module.batch(questions(4), num_threads=1, max_errors=0)


def test_the_batch_error_message_shows_the_first_causes_only() -> None:
    module = Recorder(fail=tuple(f"q{i}" for i in range(6)))
    with pytest.raises(BatchError) as caught:
        module.batch(questions(6), num_threads=1, max_errors=5)
    text = str(caught.value)
    assert "example 0: ValueError: cannot answer q0" in text and "example 2:" in text
    assert "example 3:" not in text and "and 2 more" in text
    assert len(caught.value.failures) == 5


# --------------------------------------------------------------------------------- stragglers


class HangOnce:
    """DummyLM delays: the first request for ``slow`` hangs ``hang`` seconds; every other is quick."""

    def __init__(self, hang: float) -> None:
        self.hang = hang
        self.slow_requests = 0
        self.lock = threading.Lock()

    def __call__(self, request: LMRequest) -> float:
        if question_in(str(request.messages[-1]["content"])) != "slow":
            return 0.01
        with self.lock:
            self.slow_requests += 1
            first = self.slow_requests == 1
        return self.hang if first else 0.01


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_straggler_is_resubmitted_once_and_the_first_success_wins(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    delays = HangOnce(hang=1.0)
    qa = bon.Predict("question -> answer")
    qa.set_lm(DummyLM(echo_question, delay=delays))
    examples: list[Any] = [{"question": "fast1"}, {"question": "slow"}, {"question": "fast2"}]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="bestofn_core.parallel"):
        results = qa.batch(examples, timeout=0.2, straggler_limit=3, executor=executor)
    elapsed = time.monotonic() - started
    assert [r.answer for r in results] == ["A:fast1", "A:slow", "A:fast2"]
    assert elapsed < 0.8  # the first try hangs for 1 s: the answer came from the second try
    assert delays.slow_requests == 2
    assert any("Example 1 has run for" in r.getMessage() for r in caplog.records)
    wait_for_batch_threads_to_exit()  # a thread running the abandoned first try ends with its hang


def test_no_resubmission_while_more_than_straggler_limit_examples_remain() -> None:
    sent: list[float] = []

    def delay(request: LMRequest) -> float:
        sent.append(time.monotonic())
        return 0.3 if len(sent) <= 3 else 0.01

    qa = bon.Predict("question -> answer")
    qa.set_lm(DummyLM(echo_question, delay=delay))
    started = time.monotonic()
    qa.batch(questions(3), num_threads=3, timeout=0.05, straggler_limit=2)
    # all three run past the timeout, but only once the first one is done do 2 (the limit) remain
    assert all(at - started >= 0.29 for at in sent[3:])


@pytest.mark.parametrize(("timeout", "limit"), [(None, 3), (0.05, 0)])
def test_timeout_none_or_straggler_limit_zero_never_resubmits(timeout: float | None, limit: int) -> None:
    lm = DummyLM(echo_question, delay=0.3)
    qa = bon.Predict("question -> answer")
    qa.set_lm(lm)
    qa.batch([{"question": "slow"}], timeout=timeout, straggler_limit=limit)
    assert len(lm.requests) == 1


def test_a_failed_first_try_waits_for_the_second_try() -> None:
    calls: list[int] = []

    async def flaky(question: str) -> str:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(0.3)
            raise ValueError("first try failed late")
        await asyncio.sleep(0.4)
        return "second try"

    results, failed, _ = bon.Parallel(timeout=0.1, return_failed_examples=True)([(flaky, {"question": "q"})])
    assert results == ["second try"] and failed == []


# --------------------------------------------------------------------------------- progress bar


def test_progress_bar_shows_done_and_failed_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    Recorder(fail=("q1",)).batch(questions(6), num_threads=2)
    err = capsys.readouterr().err
    assert "6/6" in err and "done=5, failed=1" in err


@pytest.mark.parametrize(
    "how", ["argument", "setting", "small batch"], ids=["disable_progress_bar", "settings", "few items"]
)
def test_progress_bar_can_be_turned_off(how: str, capsys: pytest.CaptureFixture[str]) -> None:
    if how == "setting":
        bon.configure(disable_progress_bar=True)
    examples = questions(3 if how == "small batch" else 6)
    Recorder().batch(examples, disable_progress_bar=how == "argument")
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------- async


async def test_abatch_runs_on_the_callers_loop_without_blocking_it() -> None:
    module = Recorder(delay=0.05)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticker = asyncio.ensure_future(tick())
    try:
        results = await module.abatch(questions(8), num_threads=2)
    finally:
        ticker.cancel()
    assert [r.answer for r in results] == [f"A:q{i}" for i in range(8)]
    assert module.peak == 2 and ticks > 10
    assert {r.thread for r in results} == {threading.current_thread().name}


async def test_abatch_with_the_server_threads_and_failed_examples(
    server: OpenAICompatServer, lm: bon.LM
) -> None:
    qa = bon.Predict("question -> answer")
    results = await qa.abatch(questions(4), num_threads=2, executor="threads")
    assert all(r.answer for r in results)
    module = Recorder(fail=("q1",))
    results, failed, errors = await module.abatch(questions(3), return_failed_examples=True)
    assert results[1] is None and [e.question for e in failed] == ["q1"] and len(errors) == 1
    assert len(server.requests) == 4


async def test_parallel_acall() -> None:
    results = await bon.Parallel().acall([(Recorder(), {"question": "q0"})])
    assert isinstance(results, list) and [r.answer for r in results] == ["A:q0"]


# ------------------------------------------------------------------------- BestOfN and max_concurrency


def test_a_batch_of_best_of_n_never_exceeds_max_concurrency(server: OpenAICompatServer, lm: bon.LM) -> None:
    latency = 0.05
    server.latency = latency
    best = bon.BestOfN(bon.Predict("question -> answer"), N=4, reward_fn=lambda inputs, pred: 0.0)
    bon.configure(max_concurrency=3)
    results = best.batch(questions(8), num_threads=8)
    assert all(r.answer for r in results)
    assert len(server.requests) == 32
    assert max_overlap(server.requests, latency) == 3

    # the same batch unbounded opens far more requests at once: the check above can fail
    server.reset()
    server.latency = latency
    bon.configure(max_concurrency=None)
    best.batch(questions(8, prefix="u"), num_threads=8)
    assert max_overlap(server.requests, latency) > 3


# --------------------------------------------------------------------------------- executors


class CountingExecutor:
    """An executor plugin: the asyncio executor, counting the calls it starts."""

    def __init__(self) -> None:
        self.calls: list[BatchCall] = []
        self.sessions = 0

    def open(self, *, num_workers: int) -> Any:
        self.sessions += 1
        outer = self

        class Session:
            def submit(self, call: BatchCall, /) -> asyncio.Future[Any]:
                outer.calls.append(call)
                return asyncio.ensure_future(call.arun())

            async def aclose(self) -> None:
                pass

        return Session()


@pytest.fixture
def counting_executor() -> Iterator[CountingExecutor]:
    executor = CountingExecutor()

    class Plugin:
        @bon.hookimpl
        def register_executors(self, register: Any) -> None:
            register(executor, name="counting")

    plugin = Plugin()
    get_plugin_manager().register(plugin, name="countplug")
    try:
        yield executor
    finally:
        get_plugin_manager().unregister(plugin)


def test_executor_by_plugin_name_and_by_object(counting_executor: CountingExecutor) -> None:
    module = Recorder()
    assert module.batch(questions(3), executor="counting")[2].answer == "A:q2"
    assert module.batch(questions(2), executor="countplug:counting")[0].answer == "A:q0"
    other = CountingExecutor()
    assert module.batch(questions(2), executor=other)[1].answer == "A:q1"
    assert len(counting_executor.calls) == 5 and counting_executor.sessions == 2
    assert [(c.index, c.attempt, dict(c.kwargs)) for c in other.calls] == [
        (0, 0, {"question": "q0"}),
        (1, 0, {"question": "q1"}),
    ]


def test_builtin_executors_by_qualified_name() -> None:
    names = get_registry().names("executor")  # installed plugins (e.g. ray) may add more
    assert {"executors:asyncio", "executors:threads"} <= set(names)
    assert Recorder().batch(questions(1), executor="executors:threads")[0].answer == "A:q0"
    assert parallel_with(executor="executors:asyncio")[0].answer == "A:q0"


def parallel_with(**kwargs: Any) -> list[Any]:
    result = bon.Parallel(**kwargs)([(Recorder(), {"question": "q0"})])
    assert isinstance(result, list)
    return result


def test_an_unknown_executor_name_lists_the_available_ones() -> None:
    with pytest.raises(
        UnknownNameError, match=r'Unknown executor "no_such_executor".*executors:asyncio, executors:threads'
    ):
        Recorder().batch(questions(1), executor="no_such_executor")


def test_the_default_executor_is_asyncio_for_native_async_modules_else_threads() -> None:
    assert isinstance(resolve_executor(None, [bon.Predict("q -> a")]), AsyncioExecutor)
    assert isinstance(resolve_executor(None, [Recorder()]), AsyncioExecutor)
    assert isinstance(resolve_executor(None, [SyncRecorder()]), ThreadsExecutor)
    assert isinstance(resolve_executor(None, [Recorder(), len]), ThreadsExecutor)
    results = SyncRecorder().batch(questions(2))
    assert results[0].thread.startswith("bestofn-batch")


def test_an_executor_plugin_with_the_old_map_protocol_is_refused() -> None:
    class MapOnly:
        def map(self, fn: Any, items: Any, *, num_threads: int, timeout: float | None) -> Any:
            return iter(())

    class Plugin:
        @bon.hookimpl
        def register_executors(self, register: Any) -> None:
            register(MapOnly(), name="old")

    plugin = Plugin()
    get_plugin_manager().register(plugin, name="oldplug")
    try:
        info = next(info for info in get_registry().plugins if info.name == "oldplug")
        assert info.error is not None and 'Executor: missing method "open"' in info.error
    finally:
        get_plugin_manager().unregister(plugin)


def test_an_executor_object_with_a_bad_session_is_reported() -> None:
    class NoSession:
        def open(self, *, num_workers: int) -> Any:
            return object()

    with pytest.raises(ConfigurationError, match="submit"):
        Recorder().batch(questions(1), executor=NoSession())


# --------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"num_threads": 0}, "num_threads"),
        ({"max_errors": -1}, "max_errors"),
        ({"timeout": 0}, "timeout"),
        ({"straggler_limit": -1}, "straggler_limit"),
        ({"return_failed_examples": "yes"}, "return_failed_examples"),
        ({"executor": 3}, "executor"),
    ],
)
def test_bad_arguments_name_the_field(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"Recorder\.batch\(\.\.\.\):\n  {field}:"):
        Recorder().batch(questions(1), **arguments)
    with pytest.raises(ConfigurationError, match=rf"Parallel\(\.\.\.\):\n  {field}:"):
        bon.Parallel(**arguments)


@pytest.mark.parametrize(
    ("examples", "expected"),
    [
        ("q0", r"examples: expected a list"),
        ({"question": "q0"}, r"examples: expected a list"),
        (iter([{"question": "q0"}]), r"pass list\(\.\.\.\)"),
        ([{"question": "q0"}, 3], r"examples\[1\]: a int, not an Example"),
        ([bon.Example(question="q0")], r"examples\[0\]: an Example without input keys"),
    ],
)
def test_bad_examples_are_refused_before_anything_runs(examples: Any, expected: str) -> None:
    module = Recorder()
    with pytest.raises(ConfigurationError, match=expected):
        module.batch(examples)
    assert module.calls == []


def test_an_empty_batch_returns_an_empty_list() -> None:
    assert Recorder().batch([]) == []
    assert Recorder().batch([], return_failed_examples=True) == ([], [], [])
