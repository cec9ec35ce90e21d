"""BaseLM: the LM every predictor calls. Caching, retries, usage, history and callbacks live here, once.

Subclasses (and the backends ``LM`` delegates to) only turn an ``LMRequest`` into an ``LMResponse``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import random
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bestofn_core._runner import run_in_thread, run_sync
from bestofn_core._validation import validate_arguments
from bestofn_core.errors import LMServerError, LMTimeoutError, LMTransientError
from bestofn_core.lm.cache import get_cache, request_key
from bestofn_core.lm.credentials import split_kwargs, without_secrets
from bestofn_core.lm.history import pretty_print_history, record
from bestofn_core.lm.limiter import request_slot
from bestofn_core.primitives.callbacks import with_callbacks
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_core.settings import settings

logger = logging.getLogger(__name__)

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
    #: Only chat models are supported.
    model_type: str = Field(default="chat", pattern="^chat$")
    #: Sampling temperature (``None``: the provider's default).
    temperature: float | None = Field(default=None, ge=0)
    #: Maximum tokens per completion.
    max_tokens: int | None = Field(default=None, gt=0)
    #: Whether responses are cached (memory and disk).
    cache: bool = True
    #: Retries of transient failures (429, 5xx, timeouts, dropped connections).
    num_retries: int = Field(default=3, ge=0)
    #: Seconds before a request counts as failed: the backend's own timeout, and (plus a grace period, see
    #: ``request_deadline``) the kernel's bound on the whole request.
    timeout: float | None = Field(default=None, gt=0)
    #: First retry delay in seconds (doubled each retry, with jitter), unless the server sent Retry-After.
    retry_base_delay: float = Field(default=0.5, ge=0)
    #: Longest delay between retries, Retry-After included.
    retry_max_delay: float = Field(default=30.0, ge=0)


class BaseLM:
    """Base class of language models. Subclasses implement ``acomplete`` (or sync ``complete``).

    Args:
        model: the model string.
        model_type: ``"chat"``.
        temperature: default sampling temperature (kept in ``kwargs``).
        max_tokens: default completion length limit (kept in ``kwargs``).
        cache: cache responses in memory and on disk, keyed on the whole request including ``rollout_id``.
        num_retries: retries of transient failures, with exponential backoff honouring Retry-After.
        timeout: per-request timeout in seconds. The backend applies it its own way (HTTP clients: to each
            read); the kernel also bounds the whole request by ``request_deadline(timeout)``, so a server
            that trickles bytes cannot hold a call past it. ``None``: the backend's default, no bound.
        **kwargs: more request parameters (``n``, ``top_p``, ``rollout_id``, ...) and connection settings
            (``api_key``, ``api_base``). Secrets are never cached, saved, logged or put in history.
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
        checked = validate_arguments(
            LMArguments,
            f"{type(self).__name__}(...)",
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
    def preferred_adapter(self) -> str | None:
        """The adapter (``"plugin:name"``) that suits this model, used when none is configured; ``None``:
        the default (``chat``). Subclasses override."""
        return None

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send one request. Subclasses override this, or the sync ``complete``."""
        if type(self).complete is BaseLM.complete:
            raise NotImplementedError(f"{type(self).__name__} must implement acomplete() or complete().")
        return await run_in_thread(self.complete, request)

    def complete(self, request: LMRequest) -> LMResponse:
        """Sync alternative to ``acomplete`` for subclasses that wrap a blocking client."""
        raise NotImplementedError(f"{type(self).__name__} must implement acomplete() or complete().")

    # ------------------------------------------------------------------ calling

    def __call__(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete synchronously; returns the text of each choice."""
        return run_sync(self.acall(prompt, messages, **kwargs))

    @with_callbacks("lm")
    async def acall(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        """Complete asynchronously; returns the text of each choice.

        ``kwargs`` override ``self.kwargs`` for this call. ``rollout_id`` only keys the cache;
        ``cache=False`` skips the cache for this call.
        """
        if messages is None:
            if prompt is None:
                raise ValueError("Pass prompt=... or messages=[...] to the LM.")
            messages = [{"role": "user", "content": prompt}]
        merged = {**self.kwargs, **kwargs}
        use_cache = bool(merged.pop("cache", self.cache))
        rollout_id = merged.pop("rollout_id", None)
        params, credentials = split_kwargs(merged)
        request = LMRequest(
            model=self.model,
            messages=messages,
            params=params,
            credentials=credentials,
            timeout=self.timeout,
            rollout_id=rollout_id,
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
                    "api_base": credentials.get("api_base") or credentials.get("base_url"),
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
        self._record(request, rollout_id, response, cache_hit, time.perf_counter() - started, prompt)
        return response.outputs

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
                    response = await self._complete_within_deadline(request)
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

    async def _complete_within_deadline(self, request: LMRequest) -> LMResponse:
        if self.timeout is None:
            return await self.acomplete(request)
        deadline = request_deadline(self.timeout)
        try:
            return await asyncio.wait_for(self.acomplete(request), deadline)
        except asyncio.TimeoutError:
            # only the deadline's own expiry lands here: backends raise LMTimeoutError for theirs
            raise LMTimeoutError(
                f"{self.model}: no complete answer within {deadline:g}s (timeout={self.timeout:g}s plus a "
                "grace period); the server may be sending its answer too slowly",
                model=self.model,
            ) from None

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_max_delay)
        backoff = self.retry_base_delay * (2**attempt)
        return min(backoff * (0.5 + random.random()), self.retry_max_delay)

    def _record(
        self,
        request: LMRequest,
        rollout_id: Any,
        response: LMResponse,
        cache_hit: bool,
        latency: float,
        prompt: str | None,
    ) -> None:
        entry = {
            "prompt": prompt,
            "messages": request.messages,
            "kwargs": {**request.params, **({"rollout_id": rollout_id} if rollout_id is not None else {})},
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

        The copy has an empty history and shares the backend and the cache.
        """
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
        """The LM's settings, without secrets, for saving alongside a program."""
        state = {name: getattr(self, name) for name in _ATTRIBUTES}
        state.update(without_secrets(self.kwargs))
        return state

    def inspect_history(self, n: int = 1) -> str:
        """Print (and return) this LM's last ``n`` calls."""
        return pretty_print_history(self.history, n)

    def __repr__(self) -> str:
        shown = without_secrets(self.kwargs)
        return f"{type(self).__name__}(model={self.model!r}, kwargs={shown!r})"


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
