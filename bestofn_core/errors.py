"""Every exception bestofn-core raises on purpose, in one place.

Each error message names the problem and, where there is one, the fix. Callers can catch the broad
classes (`BestOfNCoreError`, `LMError`, `PluginError`) or the precise ones.
"""

from __future__ import annotations

import gc
import sys
import types
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self


def exception_chain(exc: BaseException, *, follow_suppressed: bool = False) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first, each exception once.

    Each step follows ``__cause__``, else ``__context__``; a context hidden with ``raise ... from None``
    (``__suppress_context__``) is followed only with ``follow_suppressed=True``, e.g. to find every
    exception that still holds a secret, shown in tracebacks or not.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        hidden = current.__suppress_context__ and not follow_suppressed
        current = current.__cause__ or (None if hidden else current.__context__)
    return chain


class ReachableObjects:
    """Every object reachable from ``root``, each once, breadth-first: iterate it (see ``reachable_objects``).

    ``truncated`` is true once the walk stopped at ``limit`` objects with more left to see.
    """

    def __init__(self, root: object, limit: int) -> None:
        self.root = root
        self.limit = limit
        self.truncated = False

    def __iter__(self) -> Iterator[object]:
        seen = {id(self.root)}
        queue = deque([self.root])
        while queue:
            if len(seen) > self.limit:
                self.truncated = True
                return
            obj = queue.popleft()
            yield obj
            if isinstance(obj, _NOT_FOLLOWED):
                continue
            for referent in gc.get_referents(obj):
                if id(referent) not in seen and not isinstance(referent, _NOT_VISITED):
                    seen.add(id(referent))
                    queue.append(referent)


# Code and the interpreter's own state: a class, module or function is not part of an error's data, and
# a traceback's frames hold the local variables of every function it passed through (the program's own
# state, which is not the error's to show).
_NOT_VISITED = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)
# Atoms: nothing inside them to follow.
_NOT_FOLLOWED = (str, bytes, bytearray, int, float, complex, bool)


def reachable_objects(root: object, *, limit: int = 20_000) -> ReachableObjects:
    """Every object reachable from ``root``: attributes, ``__dict__``, ``args``, ``__cause__``,
    ``__context__``, container items, whatever the garbage collector sees an object refer to.

    Classes, modules, functions, code, frames and tracebacks are not visited. Used to check that no
    secret can be reached from an error the kernel raises (``credentials.holds_secret``).
    """
    return ReachableObjects(root, limit)


class BestOfNCoreError(Exception):
    """Base class of the errors this library raises on purpose."""


class ConfigurationError(BestOfNCoreError, ValueError):
    """A setting, argument or configuration value is invalid or missing."""


class SignatureError(BestOfNCoreError, ValueError):
    """A signature string or class is malformed, or inputs do not match a signature."""


class AdapterParseError(BestOfNCoreError, ValueError):
    """An adapter could not turn the LM's text into the signature's output fields.

    Its message has DSPy's layout, so code and tests written against DSPy's ``AdapterParseError`` read it
    the same way: an optional first paragraph saying what went wrong, then ``Adapter X failed to parse the
    LM response.``, the response, the expected output fields and, when some parsed, the ones that did.

    Attributes:
        adapter_name: the adapter that failed (e.g. ``"ChatAdapter"``; ``"ChatAdapter->JSONAdapter"``
            when the fallback failed too).
        signature: the signature class whose output fields were expected.
        lm_response: the raw text the LM returned.
        parsed_result: the fields that did parse, or ``None`` when nothing could be read at all (as in
            DSPy: e.g. no JSON object in the response).
        missing_fields: the output fields that could not be found or validated (bestofn-core's addition).
        choices: for a request of several choices (``n > 1``), every choice's result in order: its output
            fields, or the ``AdapterParseError`` it raised; the error raised is the first of these.
            ``None`` for a single choice. ``BestOfN(sampling="batched")`` keeps the choices that parsed.
        message: the whole message, as ``str(error)`` (DSPy's attribute).
        code: ``"adapter_parse_error"`` (DSPy's error code).
    """

    code = "adapter_parse_error"

    def __init__(
        self,
        adapter_name: str,
        signature: Any,
        lm_response: str,
        message: str | None = None,
        parsed_result: dict[str, Any] | None = None,
        missing_fields: Sequence[str] = (),
    ) -> None:
        self.adapter_name = adapter_name
        self.signature = signature
        self.lm_response = lm_response
        self.parsed_result = parsed_result
        self.missing_fields = list(missing_fields)
        self.choices: list[dict[str, Any] | AdapterParseError] | None = None
        expected = ", ".join(getattr(signature, "output_fields", {}))
        text = f"{message}\n\n" if message else ""
        text += (
            f"Adapter {adapter_name} failed to parse the LM response. \n\n"
            f"LM Response: {lm_response} \n\n"
            f"Expected to find output fields in the LM response: [{expected}] \n\n"
        )
        if parsed_result is not None:
            text += f"Actual output fields parsed from the LM response: [{', '.join(parsed_result)}] \n\n"
        self.message = text
        super().__init__(text)


class LMError(BestOfNCoreError):
    """A language-model request failed. ``status_code`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, model: str | None = None, status_code: int | None = None) -> None:
        self.model = model
        self.status_code = status_code
        super().__init__(message)


class LMTransientError(LMError):
    """A failure worth retrying: rate limits, server errors, timeouts, dropped connections."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, model=model, status_code=status_code)


class LMRateLimitError(LMTransientError):
    """HTTP 429: the provider asked us to slow down (``retry_after`` seconds when it said so)."""


class LMServerError(LMTransientError):
    """HTTP 5xx from the provider."""


class LMTimeoutError(LMTransientError):
    """The request took longer than the LM's ``timeout``."""


class LMConnectionError(LMTransientError):
    """The connection failed, was reset, or the response body was cut off or not valid."""


class LMRequestError(LMError):
    """A failure that retrying cannot fix: bad request, authentication, unknown model."""


class LMAuthenticationError(LMRequestError):
    """HTTP 401/403: the API key is missing or wrong."""


class NoBackendError(ConfigurationError):
    """No installed LM backend claims a model string.

    Attributes:
        distribution: the package whose backend serves such model strings, when it is known (a
            first-party plugin that is not installed, blocked or not loaded), else ``None``.
        install: the command that installs it, when known.
    """

    def __init__(self, message: str, *, distribution: str | None = None, install: str | None = None) -> None:
        super().__init__(message)
        self.distribution = distribution
        self.install = install


class PluginError(BestOfNCoreError):
    """Base class of plugin loading, registration and lookup errors."""


class PluginLoadError(PluginError):
    """A plugin failed to import or to register (raised only in strict mode; otherwise recorded)."""


class RegistrationError(PluginError, TypeError):
    """A plugin registered something of the wrong shape, or a name another plugin already took."""


class UnknownNameError(PluginError, LookupError):
    """A ``"plugin:name"`` reference names nothing that is registered."""


class AmbiguousNameError(PluginError, LookupError):
    """A bare ``"name"`` is offered by several plugins: qualify it as ``"plugin:name"``.

    Attributes:
        choices: the qualified names to choose from (e.g. the LM backends claiming a model string).
    """

    def __init__(self, message: str, *, choices: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.choices = list(choices)


class SerializationError(BestOfNCoreError, ValueError):
    """A file could not be saved or loaded (unknown suffix, corrupt content, refused pickle)."""


class RewardError(BestOfNCoreError, ValueError):
    """A reward function returned something that is not a finite number (a bug in the reward)."""


class SelectionPolicyError(BestOfNCoreError, TypeError):
    """A selection policy's ``select()`` returned something other than a successful candidate it was given.

    A bug in the policy: the message names the policy and what it returned.
    """


class RewardTimeoutError(BestOfNCoreError, TimeoutError):
    """A reward function ran longer than BestOfN's ``reward_timeout``: that attempt failed.

    Unlike ``RewardError`` it is a failed attempt, counted against ``fail_count``, not a bug in the reward.
    """


if sys.version_info < (3, 11):  # pragma: no cover - exercised on Python 3.10 only
    from exceptiongroup import ExceptionGroup


class BestOfNError(BestOfNCoreError, ExceptionGroup):
    """A BestOfN call failed: every attempt failed, or failures exceeded ``fail_count``.

    It is an ``ExceptionGroup`` of each failed attempt's exception (so ``except*`` works), and
    ``attempts`` holds every candidate that finished, successful ones included, so nothing is lost.
    """

    attempts: list[Any]

    def __new__(cls, message: str, exceptions: Sequence[Exception], attempts: Sequence[Any] = ()) -> Self:
        group = super().__new__(cls, message, list(exceptions))
        group.attempts = list(attempts)
        return group

    def __init__(self, message: str, exceptions: Sequence[Exception], attempts: Sequence[Any] = ()) -> None:
        super().__init__(message, list(exceptions))

    def derive(self, excs: Sequence[Exception]) -> BestOfNError:
        """Keep the attempts when ``except*`` splits the group."""
        return BestOfNError(self.message, excs, self.attempts)


class BatchError(BestOfNCoreError):
    """A batch (``Module.batch``, ``Parallel``) stopped because failures reached ``max_errors``.

    The remaining work was cancelled. The message says how many examples failed and shows the first
    causes; the first failure's exception is also the ``__cause__``.

    Attributes:
        failures: ``(index, example, exception)`` of every failed example, in the order they failed.
        results: one slot per example, in input order: the result of each example that finished,
            ``None`` for the failed and the cancelled ones.
    """

    def __init__(
        self,
        message: str,
        failures: Sequence[tuple[int, Any, BaseException]] = (),
        results: Sequence[Any] = (),
    ) -> None:
        self.failures = list(failures)
        self.results = list(results)
        super().__init__(message)
