"""The kernel's contracts: what a plugin or a user supplies, as ``typing.Protocol`` classes.

Concrete classes in the kernel implement these; plugins are checked against the runtime-checkable ones
when they register (see ``bestofn_core.plugins``), and the error names the plugin and the missing member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
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
    """

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    credentials: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    rollout_id: int | None = None


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


@runtime_checkable
class LMBackend(Protocol):
    """Something that sends chat-completion requests to a model. Registered by ``register_lm_backends``.

    A backend only needs the async method: the kernel's sync API runs it on its own event loop. It must
    raise ``bestofn_core.errors.LMTransientError`` subclasses for failures worth retrying and
    ``LMRequestError`` for the rest; retries, caching, history and usage are the kernel's job.
    """

    #: Whether one request can return several choices (the OpenAI ``n`` parameter).
    supports_n: bool

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` and return the choices, usage and model name."""
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


@runtime_checkable
class Executor(Protocol):
    """Runs a function over many inputs (``Module.batch``). Registered by ``register_executors``."""

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        *,
        num_threads: int,
        timeout: float | None,
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        """Yield ``(index, result, exception)`` for each item, in completion order."""
        ...


@runtime_checkable
class SelectionPolicy(Protocol):
    """Decides which candidate wins a BestOfN call and whether to stop early.

    Registered by ``register_selection_policies``; its full contract lives with BestOfN.
    """

    def should_stop(self, candidates: Sequence[Any], threshold: float | None) -> bool:
        """Given the finished candidates (in rollout order), whether to stop sampling now."""
        ...

    def select(self, candidates: Sequence[Any]) -> Any:
        """Return the winning candidate among the finished ones."""
        ...


#: Mapping kept as an alias so annotations read naturally in hook signatures.
Options = Mapping[str, Any]
