"""The kernel's contracts: what a plugin or a user supplies, as ``typing.Protocol`` classes.

Concrete classes in the kernel implement these; plugins are checked against the runtime-checkable ones
when they register (see ``bestofn_core.plugins``), and the error names the plugin and the missing member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio

    from bestofn_core.primitives.prediction import Prediction


@dataclass(frozen=True)
class LMRequest:
    """One chat-completion request, as the kernel hands it to a backend.

    Attributes:
        model: the model string the user gave ``LM`` (e.g. ``"openai/gpt-4o-mini"``).
        messages: chat messages, ``[{"role": ..., "content": ...}, ...]``.
        params: sampling and request parameters sent to the provider (``temperature``, ``max_tokens``,
            ``n``, ...). Never contains ``rollout_id`` (a cache key only) nor credentials.
        credentials: connection settings kept apart so they are never cached, logged or saved
            (``api_key``, ``api_base``, ``api_version``, extra headers).
        timeout: seconds before the request counts as failed (``None``: the backend's default).
        rollout_id: the caller's rollout id. Remote backends must not send it (it keys the cache only);
            local backends may use it as the sampling seed, so each rollout is reproducible.
        model_type: ``"chat"`` (chat completions), or ``"text"`` when the user asked for a text-completion
            model (``LM(..., model_type="text")``). A backend that cannot send text completions raises
            ``LMRequestError`` for ``"text"`` rather than sending a chat request instead.
    """

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    rollout_id: int | None = None
    model_type: str = "chat"


@dataclass
class LMResponse:
    """A backend's answer to one ``LMRequest``.

    Attributes:
        outputs: the text of each returned choice, in order (``len(outputs)`` may be less than ``n``).
        usage: token counts, at least ``prompt_tokens`` and ``completion_tokens`` when known.
        model: the model that answered, as the provider named it.
        finish_reasons: one per choice when the provider says.
    """

    outputs: list[str]
    usage: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    finish_reasons: list[str | None] = field(default_factory=list)


def token_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """``LMResponse.usage`` from two counts: ``prompt_tokens``, ``completion_tokens`` and their total."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@runtime_checkable
class LMBackend(Protocol):
    """Something that sends chat-completion requests to a model. Registered by ``register_lm_backends``.

    A backend only needs the async method: the kernel's sync API runs it on its own event loop. It must
    raise ``bestofn_core.errors.LMTransientError`` subclasses for failures worth retrying and
    ``LMRequestError`` for the rest; retries, caching, history and usage are the kernel's job.
    """

    #: Whether one request can return several choices (the OpenAI ``n`` parameter).
    supports_n: bool

    # Optional, not part of the runtime check (read with ``backend_capability``), each either a value or
    # a method taking the model string, for a backend that serves many models:
    # - ``supports_response_schema: bool``: the backend honours ``response_format={"type": "json_schema",
    #   ...}`` (e.g. by grammar-constrained decoding); ``JSONAdapter`` then sends the output fields' schema.
    # - ``supported_params: Collection[str]``: the request parameters the model accepts; without
    #   ``"response_format"`` there, ``JSONAdapter`` sends none. Undeclared: ``DEFAULT_SUPPORTED_PARAMS``.
    # - ``supports_text_completions: bool``: the backend sends ``model_type="text"`` requests
    #   (``LMRequest.model_type``) as text completions; ``LM(..., model_type="text")`` refuses other backends.
    # - ``preferred_adapter: str``: the adapter (a ``"plugin:name"`` reference, see ``register_adapters``)
    #   that suits the backend's models: ``Predict`` uses it when the user configured no adapter, so a
    #   backend serving small local models can ask for a prompt they follow.

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` and return the choices, usage and model name."""
        ...


#: The request parameters a backend is assumed to accept when it does not declare ``supported_params``:
#: the common OpenAI chat-completions ones, which OpenAI-compatible servers take.
DEFAULT_SUPPORTED_PARAMS: frozenset[str] = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "presence_penalty",
        "response_format",
        "seed",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
    }
)


def backend_capability(backend: Any, name: str, model: str, default: Any) -> Any:
    """What ``backend`` declares as its optional ``name`` for ``model``, or ``default`` when it does not.

    A declaration is a plain value (``supports_response_schema = True``) or a method taking the model
    string (``def supported_params(self, model): ...``), for backends whose models differ.
    """
    value = getattr(backend, name, default)
    return value(model) if callable(value) else value


@runtime_checkable
class AdapterProtocol(Protocol):
    """Turns a signature, demos and inputs into chat messages, and the LM's text back into output fields.

    Registered by ``register_adapters`` and chosen with ``configure(adapter=...)``. The base class
    ``bestofn_core.adapters.Adapter`` implements ``acall`` from ``format`` and ``parse``.
    """

    def format(self, signature: Any, demos: list[Mapping[str, Any]], inputs: Mapping[str, Any]) -> list[Any]:
        """The chat messages (``[{"role": ..., "content": ...}, ...]``) asking the LM for the outputs."""
        ...

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        """The output fields read from one completion; raise ``AdapterParseError`` when some are missing."""
        ...

    async def acall(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: Any,
        demos: list[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Call ``lm`` once with ``lm_kwargs`` and return the output fields of each returned choice."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """The LM that modules call (``bestofn_core.LM`` and ``BaseLM`` subclasses implement it)."""

    model: str
    kwargs: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def supports_n(self) -> bool:
        """Whether one request can return ``n`` choices."""
        ...

    def __call__(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete synchronously; returns one text per choice."""
        ...

    async def acall(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete asynchronously; returns one text per choice."""
        ...

    def copy(self, **kwargs: Any) -> LanguageModel:
        """A copy with attributes or kwargs changed (``None`` removes a kwarg)."""
        ...


@runtime_checkable
class ModuleProtocol(Protocol):
    """A program: callable sync or async, with access to its predictors and LM."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the program synchronously."""
        ...

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Run the program asynchronously."""
        ...

    def named_predictors(self) -> list[tuple[str, Any]]:
        """``(dotted_name, predictor)`` for every predictor in the program."""
        ...

    def set_lm(self, lm: Any) -> None:
        """Use ``lm`` for every predictor."""
        ...

    def get_lm(self) -> Any:
        """The one LM every predictor uses."""
        ...


#: A reward: ``reward_fn(inputs, prediction) -> float``, sync or async.
RewardFunction = Callable[[dict[str, Any], "Prediction"], "float | Awaitable[float]"]


@runtime_checkable
class Serializer(Protocol):
    """Reads and writes saved program state for some file suffixes. Registered by ``register_serializers``."""

    #: True when loading can run arbitrary code (pickle): refused unless ``allow_pickle=True``.
    executes_code: bool

    def dump(self, state: Any, path: Path) -> None:
        """Write ``state`` (JSON-like data; any object when ``executes_code``) to ``path``."""
        ...

    def load(self, path: Path) -> Any:
        """Read back what ``dump`` wrote; raise ``SerializationError`` on corrupt content."""
        ...


@dataclass(frozen=True)
class BatchCall:
    """One call of a batch (one example, one try), as the kernel hands it to an executor.

    In-process executors call ``run`` (on a worker thread) or await ``arun`` (on the event loop). An
    executor that runs calls in other processes or machines ships ``fn``, ``args`` and ``kwargs`` there
    and calls ``fn(*args, **kwargs)``; it must bring along the settings the call needs (``submit`` runs in
    the caller's context, so ``bestofn_core.settings`` reads the caller's values there).

    Attributes:
        index: the example's position in the batch.
        attempt: 0 for the first try; 1 for the second try of a straggler (see ``Module.batch``).
        fn: the module (or callable) to call.
        args: positional arguments of the call.
        kwargs: keyword arguments of the call (an example's inputs).
        run: runs the call to completion and returns its result (or raises), blocking the calling thread.
            It enters a copy of the caller's ``contextvars`` context (settings) and tracks usage per call,
            so any thread may call it, once.
        arun: returns a coroutine running the call natively (``module.acall``) with per-call usage
            tracking. Await it in the caller's context: a task created in ``submit`` inherits it.
    """

    index: int
    attempt: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


@runtime_checkable
class ExecutorSession(Protocol):
    """One batch's use of an executor: starts calls and is closed when the batch ends.

    Returned by ``Executor.open``. Every method is called on the event loop that runs the batch.
    """

    def submit(self, call: BatchCall, /) -> asyncio.Future[Any]:
        """Start ``call`` and return a future of its result, bound to the running event loop.

        The future's result is the call's return value, its exception the call's exception. Cancelling
        the future must cancel the call as far as the executor can: a call that has not started must
        never start; a running one should be interrupted where possible (an asyncio task, a remote task)
        and may otherwise run on, its result ignored (a thread cannot be interrupted). ``submit`` must not
        block; it may raise when the executor itself is broken, which ends the batch with that error.
        """
        ...

    async def aclose(self) -> None:
        """Release what the session holds (worker threads, connections). Called once, last.

        By then every future ``submit`` returned is done or cancelled. Wait for workers that are idle;
        do not wait for calls that were cancelled while running (the batch must not hang on them).
        """
        ...


@runtime_checkable
class Executor(Protocol):
    """Where the calls of a batch run (``Module.batch``, ``Parallel``). Registered by ``register_executors``.

    An executor only starts calls and cancels them. Everything else a batch promises (results in input
    order, the ``num_threads`` bound, ``max_errors``, straggler resubmission, the progress bar, failed
    examples, usage tracking) is done once by the kernel (``bestofn_core.parallel``) for every executor.
    """

    def open(self, *, num_workers: int) -> ExecutorSession:
        """Start a session for one batch; called on the event loop that runs the batch.

        ``num_workers`` is the batch's ``num_threads``: the kernel keeps at most that many calls in flight,
        plus at most ``straggler_limit`` second tries near the end of the batch. One executor object may
        serve several batches at once, so per-batch state belongs in the session.
        """
        ...


@runtime_checkable
class SelectionPolicy(Protocol):
    """Decides which candidate wins a BestOfN call and whether to stop early.

    Registered by ``register_selection_policies``; its full contract lives with BestOfN.
    """

    # Optional, not part of the runtime check: ``needs_rewards: bool``, whether the policy chooses by
    # reward. A policy without the attribute is taken to need rewards; one that declares ``False`` (a
    # majority vote) lets ``BestOfN`` run without ``reward_fn``, and its candidates' ``reward`` is ``None``.

    def should_stop(self, candidates: Sequence[Any], threshold: float | None) -> bool:
        """Given the finished candidates (in rollout order), whether to stop sampling now."""
        ...

    def select(self, candidates: Sequence[Any]) -> Any:
        """Return the winning candidate among the finished ones."""
        ...


#: Mapping kept as an alias so annotations read naturally in hook signatures.
Options = Mapping[str, Any]
