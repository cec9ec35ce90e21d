"""``RayExecutor``: the calls of a batch run as Ray tasks, on a local or a multi-machine Ray cluster.

The kernel (``bestofn_core.parallel.engine``) keeps every batch promise (input order, ``num_threads``,
``max_errors``, stragglers, progress, failed examples); this executor only starts a call on the cluster
and cancels it. What travels with a call:

- the program, cloudpickled and ``ray.put`` once per batch (not once per task);
- the caller's settings (``lm``, ``adapter``, ``track_usage``, ``callbacks``, ...), pickled and put once
  per batch as well (again when they change), because a worker process has no configuration of its own;
- the call's arguments (an example's inputs).

Secrets are not part of any of it: ``BaseLM`` drops API keys from its pickles. Workers read their keys
from their own environment; ``RayExecutor(env_vars=[...])`` forwards named variables of the driver's
environment through Ray's ``runtime_env`` when you choose to (see docs/ray.md for the trade-off).

``ray`` is imported when the executor opens its first batch, never at ``import bestofn_ray``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from bestofn_core.errors import ConfigurationError
from bestofn_core.primitives.prediction import Prediction
from bestofn_core.primitives.usage import UsageTracker
from bestofn_core.protocols import BatchCall
from bestofn_core.settings import settings
from bestofn_ray.errors import ShippingError

__all__ = [
    "LOCAL_SETTINGS",
    "RayExecutor",
    "RaySession",
    "pickle_program",
    "pickle_settings",
    "shipped_settings",
    "unwrap_error",
]

logger = logging.getLogger(__name__)

#: Settings that belong to the driver's process and are never shipped: the running call's usage
#: tracker and module stack (the worker makes its own), and the trace list (a worker gets a fresh one
#: per call when tracing is on, since what it appends cannot reach the driver's list).
LOCAL_SETTINGS = frozenset({"usage_tracker", "caller_modules", "trace"})

_init_lock = threading.Lock()


class RayExecutor:
    """Runs each call of a batch as a Ray task: ``module.batch(examples, executor=RayExecutor(...))``.

    ``executor="ray"`` uses ``RayExecutor()`` with the defaults below.

    Args:
        address: the cluster to connect to when Ray is not initialised yet, as ``ray.init(address=...)``
            takes it: ``"ray://head:10001"`` (Ray Client), ``"head:6379"`` from a cluster node, or
            ``"auto"``. ``None`` lets Ray decide: the ``RAY_ADDRESS`` environment variable, else a cluster
            started on this machine with ``ray start``, else a new local one. Ignored when Ray is already
            initialised (call ``ray.init`` yourself for options this executor does not take).
        runtime_env: Ray's ``runtime_env`` for the tasks (``pip``, ``py_modules``, ``working_dir``,
            ``env_vars``, ...), e.g. to ship your own code to the workers.
        num_cpus_per_task: CPUs Ray reserves per task (fractions allowed). Calls mostly wait on the LM, so
            values below 1 run more calls per machine, at the cost of one worker process per call.
        env_vars: names of driver environment variables (``"OPENAI_API_KEY"``) whose values are added to
            the tasks' ``runtime_env["env_vars"]`` when a batch opens. Empty by default: workers then use
            their own environment. Values given in ``runtime_env["env_vars"]`` win over forwarded ones.
            Forwarded values are visible to whoever can read the cluster's task metadata (the Ray
            dashboard, ``ray list tasks --detail``); see docs/ray.md.

    The executor starts or connects to Ray on first use and leaves it running for later batches; it
    never shuts Ray down (``ray.shutdown()`` is yours to call).
    """

    def __init__(
        self,
        address: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        num_cpus_per_task: float = 1,
        env_vars: Iterable[str] = (),
    ) -> None:
        if address is not None and not isinstance(address, str):
            raise ConfigurationError(f"RayExecutor(address=...) must be a string or None, not {address!r}.")
        if runtime_env is not None and not isinstance(runtime_env, Mapping):
            raise ConfigurationError(
                "RayExecutor(runtime_env=...) must be a dict (Ray's runtime_env) or None, "
                f"not {runtime_env!r}."
            )
        if (
            isinstance(num_cpus_per_task, bool)
            or not isinstance(num_cpus_per_task, int | float)
            or num_cpus_per_task < 0
        ):
            raise ConfigurationError(
                f"RayExecutor(num_cpus_per_task=...) must be a number >= 0, not {num_cpus_per_task!r}."
            )
        names = [env_vars] if isinstance(env_vars, str) else list(env_vars)
        bad = [name for name in names if not isinstance(name, str) or not name]
        if bad:
            raise ConfigurationError(
                f"RayExecutor(env_vars=...) takes environment variable names, not {bad[0]!r}."
            )
        self.address = address
        self.runtime_env: dict[str, Any] = dict(runtime_env or {})
        self.num_cpus_per_task = num_cpus_per_task
        self.env_vars: tuple[str, ...] = tuple(names)

    def open(self, *, num_workers: int) -> RaySession:
        """Initialise Ray if needed and return a session that submits this batch's calls as tasks.

        ``num_workers`` is not a Ray setting: the kernel already keeps at most that many calls in
        flight, and Ray queues those the cluster has no free CPUs for.
        """
        ray = _ray()
        with _init_lock:
            if not ray.is_initialized():
                logger.info("Starting or connecting to Ray (address=%r)", self.address)
                ray.init(address=self.address)
        return RaySession(ray, self._task_options(), asyncio.get_running_loop())

    def task_runtime_env(self) -> dict[str, Any]:
        """The ``runtime_env`` of this batch's tasks: ``runtime_env`` plus the forwarded ``env_vars``."""
        runtime_env = dict(self.runtime_env)
        forwarded: dict[str, str] = {}
        missing: list[str] = []
        for name in self.env_vars:
            value = os.environ.get(name)
            if value is None:
                missing.append(name)
            else:
                forwarded[name] = value
        if missing:
            logger.warning(
                "RayExecutor(env_vars=...): %s not set on the driver; workers use their own environment",
                ", ".join(missing),
            )
        if forwarded:
            runtime_env["env_vars"] = {**forwarded, **(runtime_env.get("env_vars") or {})}
        return runtime_env

    def _task_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus_per_task}
        runtime_env = self.task_runtime_env()
        if runtime_env:
            options["runtime_env"] = runtime_env
        return options

    def __repr__(self) -> str:
        # never the env_vars' values: they are secrets
        return (
            f"RayExecutor(address={self.address!r}, num_cpus_per_task={self.num_cpus_per_task!r}, "
            f"env_vars={list(self.env_vars)!r}, runtime_env keys={sorted(self.runtime_env)!r})"
        )


class RaySession:
    """One batch on Ray: ships the program and settings once, submits each call as a task.

    Created by ``RayExecutor.open``; every method runs on the batch's event loop.
    """

    def __init__(
        self, ray: ModuleType, task_options: Mapping[str, Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        from bestofn_ray._worker import run_call

        self._ray = ray
        self._loop = loop
        # options set here (not per call with .options) are parsed and serialised once per batch
        self._remote = ray.remote(**task_options)(run_call)
        # id(fn) -> (fn, ref): the program is kept alive so that its id is not reused within the batch
        self._programs: dict[int, tuple[Any, Any]] = {}
        self._settings: tuple[tuple[dict[str, Any], bool], Any] | None = None

    def submit(self, call: BatchCall, /) -> asyncio.Future[Any]:
        """Start ``call`` as a Ray task; cancelling the returned future cancels the task (``ray.cancel``)."""
        program = self._program_ref(call.fn)
        settings_ref = self._settings_ref()
        tracker = settings.usage_tracker  # the driver-side total the example's usage is added to
        ref = self._remote.options(name=f"bestofn-example-{call.index}.{call.attempt}").remote(
            [program], [settings_ref], call.index, call.attempt, call.args, dict(call.kwargs)
        )
        future: asyncio.Future[Any] = self._loop.create_future()
        ray = self._ray

        def on_done(outcome: Any) -> None:  # on a Ray thread: hand over to the batch's loop
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_settle, future, outcome, tracker)

        def on_cancel(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                try:
                    ray.cancel(ref)
                except Exception:  # Ray shut down meanwhile: nothing is left to cancel
                    logger.debug("ray.cancel failed for example %d", call.index, exc_info=True)

        ref.future().add_done_callback(on_done)
        future.add_done_callback(on_cancel)
        return future

    def _program_ref(self, fn: Any) -> Any:
        entry = self._programs.get(id(fn))
        if entry is None:
            entry = (fn, self._ray.put(pickle_program(fn)))
            self._programs[id(fn)] = entry
        return entry[1]

    def _settings_ref(self) -> Any:
        current = shipped_settings()
        if self._settings is not None:
            (values, trace_enabled), ref = self._settings
            if trace_enabled == current[1] and _same_values(values, current[0]):
                return ref
        ref = self._ray.put(pickle_settings(current))
        self._settings = (current, ref)
        return ref

    async def aclose(self) -> None:
        """Drop this batch's references to the shipped objects so that Ray can free them.

        Nothing waits for a cancelled task still running on a worker (the batch must not hang on it);
        its result is ignored.
        """
        self._programs.clear()
        self._settings = None


def pickle_program(fn: Any) -> bytes:
    """The bytes shipped to the workers for ``fn``, without the LMs' secrets (``BaseLM.__getstate__``).

    Pickled with Ray's own cloudpickle (``ray.cloudpickle``), the one Ray uses for arguments, results and
    exceptions: a class that travels by value (defined in ``__main__``, or in a module registered with
    ``ray.cloudpickle.register_pickle_by_value``) is then the same class again when an instance of it (a
    result, an exception) comes back to the driver.

    Raises ``ShippingError`` naming the program when it cannot be pickled.
    """
    from ray import cloudpickle

    try:
        return bytes(cloudpickle.dumps(fn))
    except Exception as exc:
        raise ShippingError(
            f"The program {fn!r:.100} cannot be shipped to Ray workers: cloudpickle failed with "
            f"{type(exc).__name__}: {exc}. Keep unpicklable objects (locks, open files, clients) out of "
            "the module, or create them lazily in forward."
        ) from exc


def pickle_settings(shipped: tuple[dict[str, Any], bool] | None = None) -> bytes:
    """The bytes shipped to the workers for the settings (``shipped_settings()`` when not given).

    Raises ``ShippingError`` naming the first setting that cannot be pickled.
    """
    from ray import cloudpickle

    values, trace_enabled = shipped_settings() if shipped is None else shipped
    try:
        return bytes(cloudpickle.dumps((values, trace_enabled)))
    except Exception as exc:
        culprit = next((name for name, value in values.items() if not _picklable(value)), "?")
        raise ShippingError(
            f"The setting {culprit!r} cannot be shipped to Ray workers: cloudpickle failed with "
            f"{type(exc).__name__}: {exc}."
        ) from exc


def shipped_settings() -> tuple[dict[str, Any], bool]:
    """What a worker needs of the current context's settings: ``(values, trace_enabled)``.

    ``values`` holds every setting but ``LOCAL_SETTINGS``; ``trace_enabled`` says whether the worker
    should trace (into a fresh list per call).
    """
    values = {name: value for name, value in settings.snapshot().items() if name not in LOCAL_SETTINGS}
    return values, settings.trace is not None


def _same_values(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.keys() == new.keys() and all(old[name] is new[name] for name in new)


def _picklable(value: Any) -> bool:
    from ray import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception:
        return False
    return True


def _settle(future: asyncio.Future[Any], outcome: Any, tracker: UsageTracker | None) -> None:
    """Copy a finished task's outcome (a ``concurrent.futures.Future``) into the batch's future."""
    if future.done():  # cancelled by the batch meanwhile
        return
    if outcome.cancelled():
        future.cancel()
        return
    error = outcome.exception()
    if error is not None:
        future.set_exception(unwrap_error(error))
        return
    result = outcome.result()
    if tracker is not None and isinstance(result, Prediction):
        # the worker measured this example's usage; the driver's enclosing total needs it too
        for model, usage in (result.get_lm_usage() or {}).items():
            tracker.add(model, usage)
    future.set_result(result)


def unwrap_error(error: BaseException) -> BaseException:
    """The exception a task raised, out of Ray's ``RayTaskError`` wrapper, with the remote traceback.

    On Python 3.11+ the worker's traceback is added as a note, so a logged failure
    (``provide_traceback=True``) shows where on the worker it was raised. Other Ray errors (a worker that
    died, an object that was lost) are returned as they are.
    """
    from ray.exceptions import RayTaskError

    if not isinstance(error, RayTaskError):
        return error
    cause = error.cause
    if not isinstance(cause, BaseException):
        return error
    # the wrapper's text is the worker's traceback, headed by the task name, pid and ip
    remote_traceback = str(error)
    add_note = getattr(cause, "add_note", None)
    if remote_traceback and callable(add_note):
        add_note(f"Raised on a Ray worker:\n{remote_traceback}")
    return cause


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency of this distribution
        raise ConfigurationError(
            "The Ray executor needs Ray: pip install bestofn-ray (or pip install 'ray>=2.9')."
        ) from exc
    return ray
