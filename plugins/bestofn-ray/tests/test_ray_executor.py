"""The Ray executor on a real local Ray cluster, against the real OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import bestofn_ray.executor as executor_module
import pytest
from bestofn_ray import RayExecutor, ShippingError
from ray import cloudpickle as ray_cloudpickle

import bestofn_core as bon
from bestofn_core.errors import BatchError, ConfigurationError
from bestofn_core.parallel.parallel import resolve_executor
from bestofn_core.plugins import get_registry
from bestofn_core.testing.openai_server import OpenAICompatServer, ReceivedRequest

pytestmark = pytest.mark.slow

# The modules, rewards and errors below live in this test file, which the workers cannot import: ship it
# by value, as a user would ship code that is not installed on the cluster (see docs/ray.md).
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])


def questions(n: int) -> list[bon.Example]:
    return [bon.Example(question=f"q{i}", gold=f"A:q{i}").with_inputs("question") for i in range(n)]


def question_in(text: str) -> str:
    return re.findall(r"\bq\d+\b", text)[-1]


def answer_for(request: ReceivedRequest, index: int) -> dict[str, str]:
    """Server script: the same answer for every sample of a question, so both executors agree."""
    return {"reasoning": "Because it is asked.", "answer": "A:" + question_in(request.last_user_text)}


def reward(inputs: dict[str, Any], prediction: bon.Prediction) -> float:
    return float(prediction.answer == "A:" + inputs["question"])


class Unanswerable(Exception):
    """Raised by ``Picky`` for the questions it is told to fail."""


class Picky(bon.Module):
    """An async module that fails some questions, sleeps, leaves marker files and reports where it ran."""

    def __init__(
        self,
        fail: tuple[str, ...] = (),
        delay: float = 0.0,
        fail_delay: float = 0.0,
        markers: Path | None = None,
    ) -> None:
        super().__init__()
        self.fail, self.delay, self.fail_delay, self.markers = fail, delay, fail_delay, markers

    async def aforward(self, question: str) -> bon.Prediction:
        if question in self.fail:
            await asyncio.sleep(self.fail_delay)
            raise Unanswerable(f"cannot answer {question}")
        self._mark(question, "started")
        await asyncio.sleep(self.delay)
        self._mark(question, "done")
        return bon.Prediction(
            answer=f"A:{question}",
            pid=os.getpid(),
            model=getattr(bon.settings.lm, "model", None),
            adapter=type(bon.settings.adapter).__name__,
            trace=bon.settings.trace,
        )

    def _mark(self, question: str, what: str) -> None:
        if self.markers is not None:
            (self.markers / f"{question}.{what}").write_text(str(time.time()))


def best_of_3(lm: bon.LM) -> bon.BestOfN:
    qa = bon.ChainOfThought("question -> answer")
    qa.set_lm(lm)
    return bon.BestOfN(qa, N=3, reward_fn=reward)


# --------------------------------------------------------------------------------- without a cluster


def test_importing_the_plugin_and_building_the_registry_do_not_import_ray() -> None:
    code = (
        "import sys, bestofn_core, bestofn_ray\n"
        "from bestofn_core.plugins import get_registry\n"
        "assert 'ray:ray' in get_registry().names('executor'), get_registry().names('executor')\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_ray_is_registered_through_the_entry_point() -> None:
    assert "ray:ray" in get_registry().names("executor")
    assert isinstance(resolve_executor("ray"), RayExecutor)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"address": 10001}, "address"),
        ({"runtime_env": ["pip"]}, "runtime_env"),
        ({"num_cpus_per_task": -1}, "num_cpus_per_task"),
        ({"num_cpus_per_task": True}, "num_cpus_per_task"),
        ({"env_vars": [""]}, "env_vars"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RayExecutor(**kwargs)


def test_only_named_variables_are_forwarded_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-forward-me")
    monkeypatch.setenv("OTHER_SECRET", "sk-not-me")
    executor = RayExecutor(runtime_env={"env_vars": {"EXTRA": "1"}, "pip": ["x"]}, env_vars="OPENAI_API_KEY")
    assert executor.task_runtime_env() == {
        "env_vars": {"OPENAI_API_KEY": "sk-forward-me", "EXTRA": "1"},
        "pip": ["x"],
    }
    assert "sk-" not in repr(executor)
    assert RayExecutor().task_runtime_env() == {}  # nothing is forwarded unless asked for


# --------------------------------------------------------------------------------- on the cluster


def test_open_starts_ray_only_when_it_is_not_running(
    ray_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    inits: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_cluster, "is_initialized", lambda: bool(inits))
    monkeypatch.setattr(ray_cluster, "init", lambda **kwargs: inits.append(kwargs))

    async def open_two_batches() -> None:
        executor = RayExecutor(address="ray://head:10001")
        for _ in range(2):
            await executor.open(num_workers=2).aclose()

    asyncio.run(open_two_batches())
    assert inits == [{"address": "ray://head:10001"}]  # once, and only while Ray was not running


def test_a_best_of_n_batch_on_ray_matches_the_asyncio_executor(
    ray_cluster: Any, server: OpenAICompatServer, make_lm: Any, worker_key: str
) -> None:
    server.set_responder(answer_for)
    best = best_of_3(make_lm(api_key="sk-driver-only"))
    examples = questions(6)
    with bon.track_usage() as ray_usage:
        on_ray = best.batch(examples, num_threads=4, executor="ray", disable_progress_bar=True)
    ray_requests = server.requests
    with bon.track_usage() as local_usage:
        local = best.batch(examples, num_threads=4, executor="asyncio", disable_progress_bar=True)
    local_requests = server.requests[len(ray_requests) :]

    assert [r.answer for r in on_ray] == [f"A:q{i}" for i in range(6)]  # in input order
    assert [(r.answer, r.reasoning) for r in on_ray] == [(r.answer, r.reasoning) for r in local]
    assert [[c.reward for c in r.candidates] for r in on_ray] == [[1.0, 1.0, 1.0]] * 6
    # each example's usage, and the enclosing track_usage() total, come back from the workers
    assert [r.get_lm_usage() for r in on_ray] == [r.get_lm_usage() for r in local]
    assert ray_usage.get_total_tokens() == local_usage.get_total_tokens() != {}
    # the workers authenticated with their own key: the driver's LM key was not shipped to them
    assert len(ray_requests) == len(local_requests) == 18
    assert {r.headers.get("authorization") for r in ray_requests} == {f"Bearer {worker_key}"}
    assert {r.headers.get("authorization") for r in local_requests} == {"Bearer sk-driver-only"}


def test_a_failed_example_comes_back_with_its_own_exception(ray_cluster: Any) -> None:
    examples = questions(4)
    results, failed, errors = Picky(fail=("q2",)).batch(
        examples, executor="ray", return_failed_examples=True, disable_progress_bar=True
    )
    assert [r and r.answer for r in results] == ["A:q0", "A:q1", None, "A:q3"]
    assert failed == [examples[2]]
    assert type(errors[0]) is Unanswerable  # not Ray's RayTaskError wrapper
    assert str(errors[0]) == "cannot answer q2"
    if sys.version_info >= (3, 11):  # the worker's traceback rides along as a note
        assert any("Raised on a Ray worker" in note for note in errors[0].__notes__)


def test_max_errors_stops_the_batch_and_cancels_running_tasks(ray_cluster: Any, tmp_path: Path) -> None:
    # 2 CPUs: q0 (slow) runs while the others fail one after the other; the budget is spent while q0 runs
    failing = tuple(f"q{i}" for i in range(1, 6))
    module = Picky(fail=failing, delay=4.0, fail_delay=0.3, markers=tmp_path)
    with pytest.raises(BatchError) as caught:
        module.batch(questions(6), num_threads=4, max_errors=2, executor="ray", disable_progress_bar=True)
    error = caught.value
    assert len(error.failures) == 2
    assert all(type(exc) is Unanswerable for _, _, exc in error.failures)
    assert error.results == [None] * 6
    # ray.cancel interrupted q0 on its worker: it never finishes its sleep
    started = tmp_path / "q0.started"
    assert started.exists()
    time.sleep(max(0.0, float(started.read_text()) + 4.5 - time.time()))
    assert not (tmp_path / "q0.done").exists()


def test_a_straggler_gets_a_second_task_and_the_loser_is_cancelled(ray_cluster: Any, tmp_path: Path) -> None:
    class HangsOnFirstTry(Picky):
        async def aforward(self, question: str) -> bon.Prediction:
            first = tmp_path / f"{question}.first-try"
            if not first.exists():  # only the first try of an example hangs
                first.write_text(str(time.time()))
                await asyncio.sleep(3.0)
                (tmp_path / f"{question}.first-try-woke").write_text("")
            return await super().aforward(question)

    started = time.monotonic()
    results = HangsOnFirstTry(markers=tmp_path).batch(
        questions(1), executor="ray", timeout=0.5, straggler_limit=1, disable_progress_bar=True
    )
    assert results[0].answer == "A:q0"
    assert time.monotonic() - started < 3.0  # the second try won
    # the first try was cancelled on its worker when the second one won
    time.sleep(max(0.0, float((tmp_path / "q0.first-try").read_text()) + 3.5 - time.time()))
    assert not (tmp_path / "q0.first-try-woke").exists()


def test_an_executor_object_runs_calls_elsewhere_with_the_callers_settings(
    ray_cluster: Any, make_lm: Any
) -> None:
    executor = RayExecutor(num_cpus_per_task=0.5)
    other = Picky()
    with bon.context(lm=make_lm("openai/other-model"), adapter=bon.JSONAdapter()):
        results = bon.Parallel(executor=executor, disable_progress_bar=True)(
            [(Picky(), {"question": "q0"}), (other, {"question": "q1"}), (other, {"question": "q2"})]
        )
    assert isinstance(results, list)
    assert [r.answer for r in results] == ["A:q0", "A:q1", "A:q2"]
    assert all(r.pid != os.getpid() for r in results)
    assert {r.model for r in results} == {"openai/other-model"}
    assert {r.adapter for r in results} == {"JSONAdapter"}
    assert [r.trace for r in results] == [[], [], []]  # a fresh trace per call on the worker


def test_no_secret_is_shipped_and_a_forwarded_key_reaches_the_workers(
    ray_cluster: Any, server: OpenAICompatServer, make_lm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted, forwarded = "sk-planted-in-the-driver-lm", "sk-forwarded-by-runtime-env"
    monkeypatch.setenv("OPENAI_API_KEY", forwarded)
    shipped: list[bytes] = []
    for name in ("pickle_program", "pickle_settings"):
        original = getattr(executor_module, name)

        def spy(*args: Any, _original: Any = original) -> bytes:
            shipped.append(_original(*args))
            return shipped[-1]

        monkeypatch.setattr(executor_module, name, spy)
    server.set_responder(answer_for)
    lm = make_lm(api_key=planted)
    bon.configure(lm=lm)  # in the settings and in the program
    qa = bon.ChainOfThought("question -> answer")
    qa.set_lm(lm)

    executor = RayExecutor(env_vars=["OPENAI_API_KEY"])
    results = qa.batch(questions(3), executor=executor, disable_progress_bar=True)

    assert [r.answer for r in results] == ["A:q0", "A:q1", "A:q2"]
    assert len(shipped) == 2  # the program and the settings, once each for the whole batch
    assert all(b"openai/test-model" in blob and planted.encode() not in blob for blob in shipped)
    assert lm.kwargs["api_key"] == planted  # the driver's LM keeps its key
    # the workers used the forwarded key (it overrides the one in their environment), never the planted one
    assert {r.headers.get("authorization") for r in server.requests} == {f"Bearer {forwarded}"}


def test_a_program_that_cannot_be_pickled_fails_before_anything_runs(ray_cluster: Any) -> None:
    module = Picky()
    module.lock = threading.Lock()  # type: ignore[attr-defined]
    with pytest.raises(ShippingError, match="cannot be shipped to Ray workers"):
        module.batch(questions(2), executor="ray", disable_progress_bar=True)


def test_a_driver_started_with_sigint_ignored_can_still_cancel_its_tasks(tmp_path: Path) -> None:
    # A background job of a script (or nohup) starts with SIGINT ignored, and Ray's workers inherit it;
    # ray.cancel interrupts a task with SIGINT, so the workers must take it back (bestofn_ray._worker).
    script = f"""
import asyncio, signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.SIG_IGN)  # before Ray starts its workers
import ray
import bestofn_core as bon

markers = Path({str(tmp_path)!r})


class HangsOnFirstTry(bon.Module):
    async def aforward(self, question):
        first = markers / "first-try"
        if not first.exists():
            first.write_text(str(time.time()))
            await asyncio.sleep(3.0)
            (markers / "first-try-woke").write_text("")
        return bon.Prediction(answer="A:" + question)


ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         object_store_memory=100 * 1024 * 1024)
examples = [bon.Example(question="q0").with_inputs("question")]
results = HangsOnFirstTry().batch(
    examples, executor="ray", timeout=0.5, straggler_limit=1, disable_progress_bar=True
)
assert results[0].answer == "A:q0", results
time.sleep(max(0.0, float((markers / "first-try").read_text()) + 3.5 - time.time()))
ray.shutdown()
sys.exit(3 if (markers / "first-try-woke").exists() else 0)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode != 3, "the first try was not cancelled on its worker"
    assert result.returncode == 0, result.stderr[-3000:]
