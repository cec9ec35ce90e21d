"""BaseLM: the LM every predictor calls. Caching, retries, usage, history and callbacks live here, once.

Subclasses (and the backends ``LM`` delegates to) only turn an ``LMRequest`` into an ``LMResponse``.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import logging
import random
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bestofn_core._runner import run_in_thread, run_sync
from bestofn_core._validation import check_finite, validate_arguments
from bestofn_core.errors import LMError, LMServerError, LMTimeoutError, LMTransientError
from bestofn_core.lm.cache import get_cache, request_key
from bestofn_core.lm.credentials import (
    nested_copy,
    route_key,
    scrub_exception,
    secret_values,
    split_kwargs,
    without_secrets,
)
from bestofn_core.lm.endpoints import check_server_urls
from bestofn_core.lm.history import pretty_print_history, record
from bestofn_core.lm.limiter import request_slot
from bestofn_core.lm.log_masking import install_log_masking
from bestofn_core.lm.openai_format import response_from_openai
from bestofn_core.primitives.callbacks import with_callbacks
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_core.settings import settings

logger = logging.getLogger(__name__)

# before any request: the HTTP clients under the backends log URLs, which may hold a key
install_log_masking()

# attributes of an LM that copy(**kwargs) sets directly; every other key goes into .kwargs
_ATTRIBUTES = (
    "model",
    "model_type",
    "cache",
    "num_retries",
    "timeout",
    "retry_base_delay",
    "retry_max_delay",
)


class LMArguments(BaseModel):
    """The checked constructor arguments of an LM (pydantic names the bad field)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    #: Model string, e.g. ``"openai/gpt-4o-mini"``.
    model: str = Field(min_length=1)
    #: ``"chat"`` (chat completions) or ``"text"`` (text completions, as DSPy sends them).
    model_type: Literal["chat", "text"] = "chat"
    #: Sampling temperature (``None``: the provider's default).
    temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: Maximum tokens per completion.
    max_tokens: int | None = Field(default=None, gt=0)
    #: Whether responses are cached (memory and disk).
    cache: bool = True
    #: Retries of transient failures (429, 5xx, timeouts, dropped connections).
    num_retries: int = Field(default=3, ge=0)
    #: Seconds before a request counts as failed: the backend's own timeout, and (plus a grace period, see
    #: ``request_deadline``) the kernel's bound on the whole request.
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    #: First retry delay in seconds (doubled each retry, with jitter), unless the server sent Retry-After.
    retry_base_delay: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    #: Longest delay between retries, Retry-After included.
    retry_max_delay: float = Field(default=30.0, ge=0, allow_inf_nan=False)


class BaseLM:
    """Base class of language models.

    A subclass provides the completion in one of these ways, and inherits caching, retries, usage,
    history and callbacks:

    - ``acomplete(request)`` (or sync ``complete``), returning an ``LMResponse`` (the kernel's way);
    - ``forward(prompt=None, messages=None, **kwargs)`` (or async ``aforward``), returning the provider's
      OpenAI-style response, as in DSPy: it gets the chat ``messages`` (a ``prompt=`` call arrives as one
      user message) and the call's own parameters (a predictor's ``temperature=...``, say), not the LM's
      ``self.kwargs``, which it merges itself when it wants them;
    - ``__call__(prompt=None, messages=None, **kwargs)`` returning one text per choice, as DSPy programs
      sometimes override it: predictors and adapters then call it (in a worker thread), and it may
      delegate to ``super().__call__`` for the real call.

    Args:
        model: the model string.
        model_type: ``"chat"``, or ``"text"`` for a text-completion model (the messages are joined into
            one prompt, as DSPy does).
        temperature: default sampling temperature (kept in ``kwargs``).
        max_tokens: default completion length limit (kept in ``kwargs``).
        cache: cache responses in memory and on disk, keyed on the whole request including ``rollout_id``.
        num_retries: retries of transient failures, with exponential backoff honouring Retry-After.
        timeout: per-request timeout in seconds. The backend applies it its own way (HTTP clients: to each
            read); the kernel also bounds the whole request by ``request_deadline(timeout)``, so a server
            that trickles bytes cannot hold a call past it. ``None``: the backend's default, no bound.
        **kwargs: more request parameters (``n``, ``top_p``, ``rollout_id``, ...) and connection settings
            (``api_key``, ``api_base``). Secrets are never cached, saved, logged or put in history.

    Numbers that are not finite (``inf``, ``nan``, anywhere in a parameter) and an ``api_base`` or
    ``base_url`` that is not an http(s) URL with a host raise ``ConfigurationError`` naming the
    parameter, here, in ``copy`` and in a call: they cannot be sent.
    """

    def __init__(
        self,
        model: str,
        model_type: str = "chat",
        temperature: float | None = None,
        max_tokens: int | None = None,
        cache: bool = True,
        num_retries: int = 3,
        timeout: float | None = None,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        **kwargs: Any,
    ) -> None:
        what = f"{type(self).__name__}(...)"
        checked = validate_arguments(
            LMArguments,
            what,
            model=model,
            model_type=model_type,
            temperature=temperature,
            max_tokens=max_tokens,
            cache=cache,
            num_retries=num_retries,
            timeout=timeout,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
        )
        check_finite(what, kwargs)
        check_server_urls(what, kwargs)
        self.model = checked.model
        self.model_type = checked.model_type
        self.cache = checked.cache
        self.num_retries = checked.num_retries
        self.timeout = checked.timeout
        self.retry_base_delay = checked.retry_base_delay
        self.retry_max_delay = checked.retry_max_delay
        self.kwargs: dict[str, Any] = {}
        if checked.temperature is not None:
            self.kwargs["temperature"] = checked.temperature
        if checked.max_tokens is not None:
            self.kwargs["max_tokens"] = checked.max_tokens
        self.kwargs.update(kwargs)
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ what subclasses provide

    @property
    def supports_n(self) -> bool:
        """Whether one request can return several choices (``n``). Subclasses override."""
        return False

    @property
    def supports_response_schema(self) -> bool:
        """Whether the LM honours a JSON-schema ``response_format``. Subclasses override."""
        return False

    @property
    def supported_params(self) -> set[str]:
        """The request parameters the LM accepts; none unless a subclass says (DSPy's default), so
        ``JSONAdapter`` sends a ``response_format`` only to an LM that lists it. Subclasses override."""
        return set()

    @property
    def preferred_adapter(self) -> str | None:
        """The adapter (``"plugin:name"``) that suits this model, used when none is configured; ``None``:
        the default (``chat``). Subclasses override."""
        return None

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send one request: through ``aforward``/``forward`` when the subclass has one, else ``complete``."""
        cls = type(self)
        if cls.aforward is not BaseLM.aforward or cls.forward is not BaseLM.forward:
            return await self._complete_with_forward(request)
        if cls.complete is BaseLM.complete:
            raise NotImplementedError(_MISSING_COMPLETION.format(name=cls.__name__))
        return await run_in_thread(self.complete, request)

    def complete(self, request: LMRequest) -> LMResponse:
        """Sync alternative to ``acomplete`` for subclasses that wrap a blocking client."""
        raise NotImplementedError(_MISSING_COMPLETION.format(name=type(self).__name__))

    def forward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        """DSPy's extension point: send one request, return the provider's OpenAI-style response.

        See the class docstring for what it receives. The response is an OpenAI chat completion
        (``choices[i].message.content``) or text completion (``choices[i].text``): the SDK's object,
        litellm's ``ModelResponse`` or a plain dict.
        """
        raise NotImplementedError(_MISSING_COMPLETION.format(name=type(self).__name__))

    async def aforward(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> Any:
        """Async ``forward``; by default runs ``forward`` in a worker thread."""
        return await run_in_thread(self.forward, prompt, messages, **kwargs)

    async def _complete_with_forward(self, request: LMRequest) -> LMResponse:
        # forward() gets the call's own parameters only, as in DSPy: self.kwargs are the LM's to merge
        own = {**request.params, **request.credentials}
        call_kwargs = {key: value for key, value in own.items() if self.kwargs.get(key, _UNSET) != value}
        response = await self.aforward(None, request.messages, **call_kwargs)
        source = "aforward" if type(self).aforward is not BaseLM.aforward else "forward"
        return response_from_openai(response, f"{type(self).__name__}.{source}()")

    # ------------------------------------------------------------------ calling

    def __call__(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete synchronously; returns the text of each choice."""
        return run_sync(self.acall(prompt, messages, **kwargs))

    async def acall(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete asynchronously; returns the text of each choice.

        ``kwargs`` override ``self.kwargs`` for this call. ``rollout_id`` only keys the cache;
        ``cache=False`` skips the cache for this call. A subclass that overrides ``__call__`` (and not
        ``acall``) is called through its ``__call__``, in a worker thread.
        """
        cls = type(self)
        if (
            cls.__call__ is not BaseLM.__call__
            and cls.acall is BaseLM.acall
            and _OVERRIDE_RUNNING.get() is not self
        ):
            return await run_in_thread(_call_override, self, prompt, messages, kwargs)
        return await self._acall(prompt, messages, **kwargs)

    @with_callbacks("lm")
    async def _acall(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        if messages is None:
            if prompt is None:
                raise ValueError("Pass prompt=... or messages=[...] to the LM.")
            messages = [{"role": "user", "content": prompt}]
        merged = {**self.kwargs, **kwargs}
        use_cache = bool(merged.pop("cache", self.cache))
        rollout_id = merged.pop("rollout_id", None)
        params, credentials = split_kwargs(merged)
        # a call's own kwargs, or kwargs changed behind the constructor's back, are checked here
        check_finite(f"a call of {type(self).__name__}({self.model!r})", params)
        # the backend gets its own copy: what it changes in place (litellm writes the key into
        # model_list entries) never reaches the LM's settings, history or saved files
        request = LMRequest(
            model=self.model,
            messages=nested_copy(messages),
            params=nested_copy(params),
            credentials=nested_copy(credentials),
            timeout=self.timeout,
            rollout_id=rollout_id,
            model_type=self.model_type,
        )
        started = time.perf_counter()
        key = None
        response = None
        if use_cache:
            key = request_key(
                {
                    "model": self.model,
                    "messages": messages,
                    "params": params,
                    "rollout_id": rollout_id,
                    "lm": self._cache_scope(),
                    "route": route_key(credentials),  # the same prompt to another server is another entry
                }
            )
            cached = get_cache().get(key)
            if cached is not None:
                response = LMResponse(outputs=list(cached["outputs"]), usage={}, model=cached.get("model"))
        cache_hit = response is not None
        if response is None:
            response = await self._complete_with_retries(request)
            if key is not None:
                get_cache().put(key, {"outputs": response.outputs, "model": response.model})
        if not cache_hit and settings.usage_tracker is not None:
            settings.usage_tracker.add(self.model, response.usage)
        self._record(messages, params, rollout_id, response, cache_hit, time.perf_counter() - started, prompt)
        return response.outputs

    def _cache_scope(self) -> str:
        """What serves this LM's requests, in its cache keys: two kinds of LM never share an entry."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    async def _complete_with_retries(self, request: LMRequest) -> LMResponse:
        n = int(request.params.get("n") or 1)
        if n > 1 and not self.supports_n:
            # the backend answers one choice per request: ask n times, concurrently
            single = dataclasses.replace(request, params={**request.params, "n": 1})
            parts = await asyncio.gather(*(self._one_request(single) for _ in range(n)))
            return _merge_responses(parts)
        return await self._one_request(request)

    async def _one_request(self, request: LMRequest) -> LMResponse:
        attempt = 0
        while True:
            try:
                # a max_concurrency slot is held for the request only, not for the backoff sleep below
                async with request_slot():
                    response = await self._send(request)
                if not response.outputs:
                    raise LMServerError(f"{self.model} returned no choices", model=self.model)
                return response
            except LMTransientError as exc:
                if attempt >= self.num_retries:
                    raise
                delay = self._retry_delay(attempt, exc.retry_after)
                logger.info(
                    "%s: %s; retry %d/%d in %.2fs", self.model, exc, attempt + 1, self.num_retries, delay
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def _send(self, request: LMRequest) -> LMResponse:
        try:
            return await self._complete_within_deadline(request)
        except Exception as exc:
            # a provider's error may echo the key back, and the HTTP client's exception holds the request
            # with its headers: nothing reachable from what the kernel raises may hold a key
            error = scrub_exception(exc, secret_values(request.credentials), model=self.model)
        raise error  # outside the handler: a replacement must not get the original as its context

    async def _complete_within_deadline(self, request: LMRequest) -> LMResponse:
        if self.timeout is None:
            return await self.acomplete(request)
        deadline = request_deadline(self.timeout)
        try:
            return await asyncio.wait_for(self.acomplete(request), deadline)
        except asyncio.TimeoutError:
            # only the deadline's own expiry lands here: backends raise LMTimeoutError for theirs
            raise LMTimeoutError(
                f"{self.model}: timed out: no complete answer within {deadline:g}s "
                f"(timeout={self.timeout:g}s plus a grace period); the server may be sending its answer "
                "too slowly",
                model=self.model,
            ) from None

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_max_delay)
        backoff = self.retry_base_delay * (2**attempt)
        return min(backoff * (0.5 + random.random()), self.retry_max_delay)

    def _record(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        rollout_id: Any,
        response: LMResponse,
        cache_hit: bool,
        latency: float,
        prompt: str | None,
    ) -> None:
        entry = {
            "prompt": prompt,
            "messages": messages,
            "kwargs": {
                **without_secrets(params),
                **({"rollout_id": rollout_id} if rollout_id is not None else {}),
            },
            "outputs": response.outputs,
            "usage": dict(response.usage),
            "model": self.model,
            "response_model": response.model,
            "model_type": self.model_type,
            "cache_hit": cache_hit,
            "latency": latency,
            "timestamp": datetime.datetime.now().isoformat(),
            "uuid": str(uuid.uuid4()),
        }
        modules = [getattr(module, "history", None) for module in settings.caller_modules]
        record(entry, [self.history, *(h for h in modules if isinstance(h, list))])

    # ------------------------------------------------------------------ copies and state

    def copy(self, **kwargs: Any) -> BaseLM:
        """A copy with attributes (``model``, ``cache``, ...) or kwargs changed; ``None`` removes a kwarg.

        The copy has an empty history and shares the backend and the cache. Values are checked as in the
        constructor (numbers must be finite, ``api_base`` a server URL).
        """
        what = f"{type(self).__name__}.copy(...)"
        check_finite(what, kwargs)
        check_server_urls(what, kwargs)
        # not copy.copy: that goes through __getstate__, which drops secrets meant for pickles only
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.kwargs = dict(self.kwargs)
        new.history = []
        for key, value in kwargs.items():
            if key in _ATTRIBUTES:
                setattr(new, key, value)
            elif value is None:
                new.kwargs.pop(key, None)
            else:
                new.kwargs[key] = value
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseLM:
        # deep-copying a program must not duplicate clients or connection pools
        return self.copy()

    def __getstate__(self) -> dict[str, Any]:
        # pickled programs (save_program, workers of other processes) never carry secrets: the
        # receiving side supplies them through the environment or by setting them again
        state = dict(self.__dict__)
        state["kwargs"] = without_secrets(self.kwargs)
        return state

    def dump_state(self) -> dict[str, Any]:
        """The LM's settings, without secrets, for saving alongside a program.

        A subclass other than ``LM`` also records its import path under ``"lm_class"``, so that a trusted
        file restores it as its own class (``load(path, allow_unsafe_lm_state=True)``). A subclass with
        state beyond the constructor's arguments overrides ``dump_state`` and ``load_state`` (as in DSPy).
        """
        state = {name: getattr(self, name) for name in _ATTRIBUTES}
        state.update(without_secrets(self.kwargs))
        for marker in (LM_CLASS_KEY, DSPY_LM_CLASS_KEY):
            state.pop(marker, None)  # a kwarg never names the class: the LM's own type does
        path = class_path(type(self))
        if path not in BUILTIN_LM_CLASSES:
            state[LM_CLASS_KEY] = path
        return state

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> BaseLM:
        """A new LM of this class from ``dump_state`` output (the constructor's keyword arguments)."""
        return cls(**state)

    def inspect_history(self, n: int = 1) -> str:
        """Print (and return) this LM's last ``n`` calls."""
        return pretty_print_history(self.history, n)

    def __repr__(self) -> str:
        shown = without_secrets(self.kwargs)
        return f"{type(self).__name__}(model={self.model!r}, kwargs={shown!r})"


#: The key of an LM's saved settings naming its class (``"lm_class"``; DSPy writes ``"_dspy_lm_class"``).
LM_CLASS_KEY = "lm_class"
#: The key DSPy 3.x writes for an LM's class; read on load, never written.
DSPY_LM_CLASS_KEY = "_dspy_lm_class"
#: Class paths that mean the built-in ``LM``: they load without the trusted-file opt-in.
BUILTIN_LM_CLASSES = frozenset({"bestofn_core.lm.lm.LM", "dspy.clients.lm.LM"})


def class_path(cls: type) -> str:
    """``module.QualName`` of ``cls``: what ``lm_class`` records."""
    return f"{cls.__module__}.{cls.__qualname__}"


_UNSET = object()
_MISSING_COMPLETION = (
    "{name} must implement forward() (DSPy's way: return the provider's OpenAI-style response), "
    "aforward(), or acomplete()/complete() (return a bestofn_core.protocols.LMResponse)."
)
# the LM whose overridden __call__ runs now: its own calls to super().__call__ take the normal path
_OVERRIDE_RUNNING: contextvars.ContextVar[BaseLM | None] = contextvars.ContextVar(
    "bestofn_lm_override", default=None
)


def _call_override(lm: BaseLM, prompt: str | None, messages: Any, kwargs: dict[str, Any]) -> list[str]:
    """Run a subclass's own ``__call__`` (DSPy programs override it) and check what it returns."""
    token = _OVERRIDE_RUNNING.set(lm)
    try:
        outputs = lm(prompt, messages, **kwargs)
    finally:
        _OVERRIDE_RUNNING.reset(token)
    if isinstance(outputs, str | bytes) or not isinstance(outputs, list | tuple):
        raise LMError(
            f"{type(lm).__name__}.__call__() returned a {type(outputs).__name__}; it must return a list with "
            "the text of each choice."
        )
    # DSPy's LMs may return {"text": ...} per choice (with logprobs, tool calls, ...): keep the text
    return [output["text"] if isinstance(output, dict) and "text" in output else output for output in outputs]


def request_deadline(timeout: float) -> float:
    """The kernel's bound on one whole request of an LM with ``timeout``: ``timeout`` plus a grace period.

    The grace (10% of ``timeout``, at least one second) lets a backend's own timeout fire first, with its
    own message, whenever it can; the deadline catches what it cannot: an answer that arrives a few bytes
    at a time, each read within the timeout, for ever.
    """
    return timeout + max(1.0, 0.1 * timeout)


def _merge_responses(parts: list[LMResponse]) -> LMResponse:
    usage: dict[str, int] = {}
    for part in parts:
        for key, value in part.usage.items():
            usage[key] = usage.get(key, 0) + value
    return LMResponse(
        outputs=[text for part in parts for text in part.outputs],
        usage=usage,
        model=parts[0].model if parts else None,
        finish_reasons=[reason for part in parts for reason in part.finish_reasons],
    )
