"""``Parallel``: run modules over many examples at once, with DSPy's ``dspy.Parallel`` arguments.

``Module.batch`` and ``Module.abatch`` are ``Parallel`` over ``(module, example)`` pairs. The work itself
is done by ``bestofn_core.parallel.engine``; this module checks arguments, applies the defaults from
settings and picks the executor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bestofn_core._runner import run_sync
from bestofn_core._validation import validate_arguments
from bestofn_core.errors import ConfigurationError
from bestofn_core.parallel.calls import Job, call_arguments, is_natively_async
from bestofn_core.parallel.engine import BatchOptions, BatchOutcome, run_batch
from bestofn_core.protocols import Executor
from bestofn_core.settings import settings

__all__ = ["BatchResult", "Parallel", "abatch", "batch", "resolve_executor"]

#: ``batch(..., return_failed_examples=True)`` returns ``(results, failed_examples, exceptions)``.
BatchResult = list[Any] | tuple[list[Any], list[Any], list[BaseException]]


class ParallelArguments(BaseModel):
    """The checked arguments of ``Parallel`` / ``Module.batch`` (pydantic names the bad field)."""

    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)

    #: Examples in flight at once (``None``: ``settings.num_threads``).
    num_threads: int | None = Field(default=None, ge=1)
    #: Stop the batch when this many examples failed (``None``: ``settings.max_errors``).
    max_errors: int | None = Field(default=None, ge=0)
    #: Pass ``example.inputs()`` as keyword arguments (else the Example itself).
    access_examples: bool = True
    #: Return ``(results, failed_examples, exceptions)`` instead of the results.
    return_failed_examples: bool = False
    #: Log the traceback of each failure (``None``: ``settings.provide_traceback``).
    provide_traceback: bool | None = None
    #: Hide the progress bar (also hidden by ``settings.disable_progress_bar``).
    disable_progress_bar: bool = False
    #: Seconds after which a call is a straggler; ``None`` never resubmits.
    timeout: float | None = Field(default=120, gt=0)
    #: Stragglers are resubmitted only once this few examples remain.
    straggler_limit: int = Field(default=3, ge=0)
    #: ``"plugin:name"`` or bare name of a registered executor, an executor object, or ``None`` (auto).
    executor: Any = None


def _argument(name: str, doc: str, default_setting: str | None = None) -> Any:
    """A property for ``Parallel``'s argument ``name``: its value, or the setting it defaults to."""

    def read(self: Parallel) -> Any:
        value = getattr(self.arguments, name)
        return settings.get(default_setting) if value is None and default_setting else value

    def write(self: Parallel, value: Any) -> None:
        self.arguments = check_arguments(f"Parallel.{name}", **{**dict(self.arguments), name: value})

    return property(read, write, doc=doc)


class Parallel:
    """Run ``(module, example)`` pairs concurrently; results come back in input order.

    Args:
        num_threads: examples in flight at once (default ``settings.num_threads``).
            Each argument is also an attribute (``parallel.timeout``), read and set as in DSPy.
        max_errors: stop once this many examples failed, cancelling the rest and raising ``BatchError``
            (default ``settings.max_errors``; ``None`` there means no limit; 0 stops at the first).
        access_examples: call ``module(**example.inputs())`` for an ``Example`` (else ``module(example)``).
        return_failed_examples: return ``(results, failed_examples, exceptions)``, fresh on every call.
        provide_traceback: log each failure with its traceback (default ``settings.provide_traceback``).
        disable_progress_bar: no progress bar (shown on stderr for batches of 5 or more otherwise).
        timeout: seconds after which a running call is a straggler; ``None`` disables resubmission.
        straggler_limit: once at most this many examples remain, each straggler gets one second try and
            the first try to succeed wins.
        executor: where calls run: ``"asyncio"``, ``"threads"``, another registered executor's name, or
            an executor object. Default: ``"asyncio"`` when every module has its own ``aforward``,
            otherwise ``"threads"``.

    A failed example's result slot is ``None``; ``failed_examples`` and ``exceptions`` describe the last
    call (they are replaced, not extended, by every call).
    """

    def __init__(
        self,
        num_threads: int | None = None,
        max_errors: int | None = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = 120,
        straggler_limit: int = 3,
        *,
        executor: str | Executor | None = None,
    ) -> None:
        self.arguments = check_arguments(
            "Parallel(...)",
            num_threads=num_threads,
            max_errors=max_errors,
            access_examples=access_examples,
            return_failed_examples=return_failed_examples,
            provide_traceback=provide_traceback,
            disable_progress_bar=disable_progress_bar,
            timeout=timeout,
            straggler_limit=straggler_limit,
            executor=executor,
        )
        self.failed_examples: list[Any] = []
        self.exceptions: list[BaseException] = []

    # DSPy's Parallel keeps its arguments as attributes; these read (and, checked, set) the same values.
    # An argument left to its setting (None) reads as the value a call would use now.
    num_threads = _argument("num_threads", "Examples in flight at once.", default_setting="num_threads")
    max_errors = _argument("max_errors", "Failures that stop the batch (None: no limit).", "max_errors")
    access_examples = _argument(
        "access_examples", "Whether an Example passes its inputs as keyword arguments."
    )
    return_failed_examples = _argument("return_failed_examples", "Whether calls return failures too.")
    provide_traceback = _argument(
        "provide_traceback", "Whether failures are logged with tracebacks.", "provide_traceback"
    )
    disable_progress_bar = _argument("disable_progress_bar", "Whether the progress bar is hidden.")
    timeout = _argument("timeout", "Seconds after which a call is a straggler (None: never).")
    straggler_limit = _argument("straggler_limit", "Examples left when stragglers get a second try.")

    def __call__(self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None) -> BatchResult:
        """Same as ``forward``."""
        return self.forward(exec_pairs, num_threads=num_threads)

    def forward(self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None) -> BatchResult:
        """Run every ``(module, example)`` pair; blocks until the batch is done (never an event loop)."""
        arguments = self._arguments(num_threads)
        outcome = run_sync(run_batch(*prepare(exec_pairs, arguments)))
        return self._finish(outcome, arguments)

    async def acall(
        self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None
    ) -> BatchResult:
        """Same as ``aforward``."""
        return await self.aforward(exec_pairs, num_threads=num_threads)

    async def aforward(
        self, exec_pairs: Sequence[tuple[Any, Any]], num_threads: int | None = None
    ) -> BatchResult:
        """Run every ``(module, example)`` pair from async code, on the running event loop."""
        arguments = self._arguments(num_threads)
        outcome = await run_batch(*prepare(exec_pairs, arguments))
        return self._finish(outcome, arguments)

    def _arguments(self, num_threads: int | None) -> ParallelArguments:
        if num_threads is None:
            return self.arguments
        checked = check_arguments("Parallel.forward(...)", num_threads=num_threads)
        return self.arguments.model_copy(update={"num_threads": checked.num_threads})

    def _finish(self, outcome: BatchOutcome, arguments: ParallelArguments) -> BatchResult:
        # replaced, never extended: each call reports its own failures (the reference accumulates them)
        self.failed_examples = [example for _, example, _ in outcome.failures]
        self.exceptions = [error for _, _, error in outcome.failures]
        return shape(outcome, arguments.return_failed_examples)


def check_arguments(what: str, /, **values: Any) -> ParallelArguments:
    """Validate batch arguments with pydantic (``ConfigurationError`` naming each bad field)."""
    checked = validate_arguments(ParallelArguments, what, **values)
    executor = checked.executor
    if not (executor is None or isinstance(executor, (str, Executor))):
        raise ConfigurationError(
            f"Invalid argument(s) to {what}:\n  executor: expected a registered executor's name or an "
            f"object with open(*, num_workers) (bestofn_core.protocols.Executor) (got {checked.executor!r})"
        )
    return checked


def pairs_for(module: Any, examples: Any, what: str) -> list[tuple[Any, Any]]:
    """``(module, example)`` for each example, after checking that ``examples`` is a sequence."""
    if isinstance(examples, str | bytes | Mapping) or not isinstance(examples, Sequence):
        raise ConfigurationError(
            f"Invalid argument(s) to {what}:\n  examples: expected a list of Example objects or dicts "
            f"(got {type(examples).__name__}; pass list(...) for an iterator)"
        )
    return [(module, example) for example in examples]


def prepare(
    exec_pairs: Sequence[tuple[Any, Any]], arguments: ParallelArguments
) -> tuple[list[Job], Executor, BatchOptions]:
    """Check the pairs and resolve the executor and the defaults from settings, in the caller's context.

    Done before the batch starts on an event loop, so a bad argument fails at once and plugin loading
    (the first executor lookup) never runs on the loop.
    """
    jobs = _jobs(exec_pairs, arguments.access_examples)
    executor = resolve_executor(arguments.executor, [job.fn for job in jobs])
    options = BatchOptions(
        num_threads=arguments.num_threads or _positive_setting("num_threads"),
        max_errors=arguments.max_errors if arguments.max_errors is not None else settings.max_errors,
        timeout=arguments.timeout,
        straggler_limit=arguments.straggler_limit,
        provide_traceback=bool(
            settings.provide_traceback if arguments.provide_traceback is None else arguments.provide_traceback
        ),
        disable_progress_bar=arguments.disable_progress_bar or bool(settings.disable_progress_bar),
    )
    return jobs, executor, options


def shape(outcome: BatchOutcome, return_failed_examples: bool) -> BatchResult:
    """The results list, or ``(results, failed_examples, exceptions)``."""
    if return_failed_examples:
        return (
            outcome.results,
            [example for _, example, _ in outcome.failures],
            [error for _, _, error in outcome.failures],
        )
    return outcome.results


def resolve_executor(executor: str | Executor | None, fns: Sequence[Any] = ()) -> Executor:
    """The executor ``executor`` names (an object is returned as is).

    ``None`` picks ``"asyncio"`` when every callable runs natively on an event loop (a Module with its
    own ``aforward``: no thread needed per call), else ``"threads"``.
    """
    if executor is not None and not isinstance(executor, str):
        return executor
    from bestofn_core.plugins import get_registry

    if executor is None:
        executor = "asyncio" if all(is_natively_async(fn) for fn in fns) else "threads"
    found: Executor = get_registry().get("executor", executor)
    return found


def _jobs(exec_pairs: Sequence[tuple[Any, Any]], access_examples: bool) -> list[Job]:
    if isinstance(exec_pairs, str | bytes | Mapping) or not isinstance(exec_pairs, Sequence):
        raise ConfigurationError(
            f"Parallel expects a list of (module, example) pairs, got {type(exec_pairs).__name__}."
        )
    jobs: list[Job] = []
    problems: list[str] = []
    for index, pair in enumerate(exec_pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[0])):
            problems.append(f"  exec_pairs[{index}]: expected a (module, example) pair (got {pair!r:.80})")
            continue
        fn, example = pair
        try:
            if isinstance(example, list):
                # a nested batch: a Parallel runs the list of pairs it is given, as in DSPy
                if not isinstance(fn, Parallel):
                    raise TypeError("a list, which only a Parallel takes (as its own list of pairs)")
                args: tuple[Any, ...] = (example,)
                kwargs: dict[str, Any] = {}
            else:
                args, kwargs = call_arguments(example, access_examples)
        except TypeError as exc:
            problems.append(f"  examples[{index}]: {exc} (got {example!r:.80})")
            continue
        jobs.append(Job(index, example, fn, args, kwargs))
    if problems:
        shown = problems[:5] + ([f"  ... and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise ConfigurationError("Invalid examples for the batch:\n" + "\n".join(shown))
    return jobs


def _positive_setting(name: str) -> int:
    value = settings.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"settings.{name} must be a positive integer, not {value!r}.")
    return value


def batch(module: Any, examples: Any, what: str, /, **arguments: Any) -> BatchResult:
    """``module.batch(examples, ...)``: run the module over the examples, blocking until done."""
    checked = check_arguments(what, **arguments)
    outcome = run_sync(run_batch(*prepare(pairs_for(module, examples, what), checked)))
    return shape(outcome, checked.return_failed_examples)


async def abatch(module: Any, examples: Any, what: str, /, **arguments: Any) -> BatchResult:
    """``await module.abatch(examples, ...)``: the same on the running event loop."""
    checked = check_arguments(what, **arguments)
    outcome = await run_batch(*prepare(pairs_for(module, examples, what), checked))
    return shape(outcome, checked.return_failed_examples)
