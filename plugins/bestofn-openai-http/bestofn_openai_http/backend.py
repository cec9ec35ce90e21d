"""``OpenAIHTTPBackend``: OpenAI chat completions over HTTP/1.1 with httpx, one pooled client per event loop.

The kernel (``bestofn_core.lm.base.BaseLM``) retries, caches, limits concurrency, tracks usage and keeps
history; this backend only turns one ``LMRequest`` into one ``POST {api_base}/chat/completions`` and the
answer into an ``LMResponse``, translating every failure into the kernel's error classes so the kernel knows
what to retry.

Why one client per event loop: an ``httpx.AsyncClient`` holds connections whose sockets belong to the loop
that opened them, so sharing one client across loops breaks (or silently hangs) the moment two loops use
it. Requests run on several loops at once: bestofn-core's shared background loop (the sync API), the
user's own loops (``asyncio.run``, notebooks, pytest-asyncio) and private loops of nested sync calls. Each
loop gets its own client, created on first use and closed when the loop shuts down (see ``_LoopClient``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import os
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from bestofn_core.errors import (
    ConfigurationError,
    LMAuthenticationError,
    LMConnectionError,
    LMError,
    LMRateLimitError,
    LMRequestError,
    LMServerError,
    LMTimeoutError,
    exception_chain,
)
from bestofn_core.lm.endpoints import url_problem
from bestofn_core.lm.openai_format import content_text
from bestofn_core.protocols import LMRequest, LMResponse
from bestofn_openai_http._version import __version__

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ACCEPTED_CREDENTIALS",
    "DEFAULT_API_BASE",
    "DEFAULT_TIMEOUT",
    "PREFIX",
    "OpenAIHTTPBackend",
    "wire_model",
]

#: The model-string prefix the plugin claims: ``"openai-http/<model>"`` sends ``<model>`` on the wire.
PREFIX = "openai-http/"
#: Where requests go when neither ``api_base`` nor ``OPENAI_BASE_URL``/``OPENAI_API_BASE`` says otherwise.
DEFAULT_API_BASE = "https://api.openai.com/v1"
#: Seconds before a request fails when the LM sets no ``timeout`` (the OpenAI SDK's default).
DEFAULT_TIMEOUT = 600.0

_USER_AGENT = f"bestofn-openai-http/{__version__}"
#: The credentials and connection settings this backend understands. It refuses any other, because silently
#: ignoring, say, an Azure ``api_version`` would turn a configuration mistake into a puzzling 401 or 404.
ACCEPTED_CREDENTIALS = ("api_key", "api_base", "base_url", "organization", "project", "extra_headers")
_MAX_DETAIL = 500

_httpx: Any = None


def _import_httpx() -> Any:
    # httpx costs tens of milliseconds to import: every LM(...) builds the plugin registry, which imports
    # this plugin, so the import waits until this backend sends its first request
    global _httpx
    if _httpx is None:
        import httpx

        _httpx = httpx
    return _httpx


def wire_model(model: str) -> str:
    """The model name sent to the server for the model string ``model``.

    ``"openai-http/gpt-4o-mini"`` -> ``"gpt-4o-mini"``; any other ``"provider/name"`` (used with
    ``backend="openai_http:openai_http"``) -> the part after the first ``"/"``; a string without ``"/"`` is
    sent as is.
    """
    if model.startswith(PREFIX):
        name = model[len(PREFIX) :]
    else:
        _, sep, rest = model.partition("/")
        name = rest if sep else model
    if not name:
        raise ConfigurationError(
            f'The model string "{model}" names no model: write "{PREFIX}<model>", e.g. "{PREFIX}gpt-4o-mini".'
        )
    return name


@dataclass(eq=False)
class _LoopClient:
    """The ``httpx.AsyncClient`` of one event loop, and the async generator that closes it at shutdown.

    ``closer`` is started (first iteration) on the client's loop, which registers it with that loop's
    async-generator hooks; ``asyncio.run`` and ``asyncio.Runner`` call ``loop.shutdown_asyncgens()`` before
    closing the loop, which runs the generator's ``finally`` on the loop: the client is closed there, its
    connections released cleanly. Loops closed without that step are noticed later (``retire``).
    """

    client: httpx.AsyncClient
    closer: AsyncGenerator[None, None] | None = None
    #: Set when the client must not be closed by ``closer`` (its loop is gone, or it was closed already).
    retired: bool = False

    def retire(self) -> None:
        """Finish ``closer`` without closing the client, so the generator never asks a dead loop for help.

        An async generator that is garbage-collected unfinished asks its loop to finalize it, which fails
        on a closed loop; driving its ``aclose()`` here runs its ``finally`` synchronously instead.
        """
        self.retired = True
        closer, self.closer = self.closer, None
        if closer is None:
            return
        step = closer.aclose()
        with contextlib.suppress(StopIteration, RuntimeError):
            step.send(None)
        step.close()


# every live backend, so a forked child can drop clients whose sockets it shares with its parent
_BACKENDS: weakref.WeakSet[OpenAIHTTPBackend] = weakref.WeakSet()


def _forget_clients_after_fork() -> None:
    for backend in list(_BACKENDS):
        backend._after_fork()


os.register_at_fork(after_in_child=_forget_clients_after_fork)


class OpenAIHTTPBackend:
    """An LM backend for OpenAI-compatible ``/chat/completions`` endpoints, talking HTTP directly.

    Registered by this plugin as ``"openai_http:openai_http"`` for model strings starting with
    ``"openai-http/"``. Each request is one ``POST {api_base}/chat/completions`` with
    ``Authorization: Bearer <api_key>`` and a JSON body of ``model``, ``messages`` and the request's
    parameters (``n``, ``temperature``, ``max_tokens``, ``response_format``, ...). Connections are pooled
    and kept alive per event loop.

    Credentials (``LM(..., api_key=..., api_base=...)``): ``api_key`` (default: ``$OPENAI_API_KEY``; no
    ``Authorization`` header when neither is set, for local servers that need none), ``api_base`` or
    ``base_url`` (default: ``$OPENAI_BASE_URL``, ``$OPENAI_API_BASE``, then the OpenAI API),
    ``organization``, ``project`` and ``extra_headers`` (a mapping of header names to values).

    Args:
        default_timeout: seconds before a request fails when the LM sets no ``timeout``.
        max_connections: open connections per event loop; more requests in flight wait for one.
        max_keepalive_connections: idle connections kept open for reuse, per event loop and server.
        keepalive_expiry: seconds an idle connection is kept.
        trust_env: honour proxy variables (``HTTPS_PROXY``, ``NO_PROXY``, ...) and ``SSL_CERT_FILE``. With a
            proxy configured, requests go through httpx's standard transports instead of this backend's
            faster connection pool; ``False`` ignores proxies.
    """

    #: One request can return several choices (the OpenAI ``n`` parameter).
    supports_n = True

    def __init__(
        self,
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 512,
        max_keepalive_connections: int = 256,
        keepalive_expiry: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        for name, value in (
            ("default_timeout", default_timeout),
            ("max_connections", max_connections),
            ("max_keepalive_connections", max_keepalive_connections),
            ("keepalive_expiry", keepalive_expiry),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ConfigurationError(
                    f"OpenAIHTTPBackend({name}=...) must be a positive number, got {value!r}"
                )
        self.default_timeout = float(default_timeout)
        self.max_connections = int(max_connections)
        self.max_keepalive_connections = int(max_keepalive_connections)
        self.keepalive_expiry = float(keepalive_expiry)
        self.trust_env = bool(trust_env)
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        # small memo tables: the same few api_base values and timeouts come back on every request
        self._urls: dict[str, tuple[str, str]] = {}
        self._timeouts: dict[float, Any] = {}
        self._ssl: ssl.SSLContext | None = None
        _BACKENDS.add(self)

    # ------------------------------------------------------------------ the LMBackend protocol

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` as one chat-completions call; return its choices, usage and model.

        Raises the kernel's errors: ``LMRateLimitError`` (429, with ``retry_after`` from the headers),
        ``LMServerError`` (5xx, or a 200 carrying an error object), ``LMTimeoutError``,
        ``LMConnectionError`` (refused, reset, truncated or unreadable responses),
        ``LMAuthenticationError`` (401/403), ``LMRequestError`` (other 4xx) and ``ConfigurationError``
        (bad ``api_base``, unknown credentials, parameters that are not JSON). No choices at all is not an
        error here: the kernel treats an empty ``outputs`` as a server error and retries.
        """
        url, shown_url = self._url(request.credentials)
        headers = _headers(request.credentials)
        body = _body(request)
        client = self._client()
        timeout = self._timeout(request.timeout)
        failure: LMError | None = None
        try:
            response = await client.post(url, content=body, headers=headers, timeout=timeout)
        except (_import_httpx().HTTPError, _import_httpx().InvalidURL) as exc:
            failure = _transport_error(exc, request.model, shown_url, request.timeout or self.default_timeout)
        # errors are raised outside ``except``: the httpx exception keeps the request and its Authorization
        # header, and must not travel along as ``__context__``. A key the server echoes back in a message
        # is masked by the kernel (``LM.acomplete``), as for every backend.
        if failure is not None:
            raise failure
        status = response.status_code
        if not 200 <= status < 300:
            raise _status_error(response, request.model, shown_url, has_key="Authorization" in headers)
        result = _parse(response.content, request.model, shown_url)
        if isinstance(result, LMError):
            raise result
        return result

    # ------------------------------------------------------------------ clients, one per event loop

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        slot = self._clients.get(loop)
        if slot is not None:
            return slot.client
        return self._new_client(loop)

    def _new_client(self, loop: asyncio.AbstractEventLoop) -> httpx.AsyncClient:
        with self._lock:
            slot = self._clients.get(loop)
            if slot is not None:
                return slot.client
            # a loop closed without shutdown_asyncgens() never ran its closer: forget its client now
            dead = [(key, old) for key, old in self._clients.items() if key.is_closed()]
            for key, _ in dead:
                del self._clients[key]
            client = self._make_client()
            slot = _LoopClient(client)
            self._clients[loop] = slot
        for _, old in dead:
            old.retire()
        closer = self._close_at_loop_shutdown(loop, slot)
        # the first step runs to the generator's ``yield`` at once (nothing is awaited before it); starting
        # it is what registers it with this loop's shutdown_asyncgens()
        with contextlib.suppress(StopIteration):
            closer.asend(None).send(None)
        slot.closer = closer
        return client

    def _make_client(self) -> httpx.AsyncClient:
        from bestofn_openai_http._transport import PooledTransport

        httpx = _import_httpx()
        if self.trust_env and _environment_proxies():
            # httpx ignores proxy variables once given a transport of its own: with a proxy configured,
            # fall back to httpx's standard transports, which route through it and honour NO_PROXY
            return httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_keepalive_connections,
                    keepalive_expiry=self.keepalive_expiry,
                ),
                timeout=self.default_timeout,
                headers={"User-Agent": _USER_AGENT},
                trust_env=True,
            )
        return httpx.AsyncClient(
            transport=PooledTransport(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_keepalive_connections,
                keepalive_expiry=self.keepalive_expiry,
                ssl_context=self._ssl_context,
            ),
            timeout=self.default_timeout,
            headers={"User-Agent": _USER_AGENT},
            trust_env=self.trust_env,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        # built on the first https connection (loading the CA bundle takes tens of milliseconds) and
        # shared by every loop's client: an SSLContext is safe to use from several threads
        context = self._ssl
        if context is None:
            from bestofn_openai_http._transport import default_ssl_context

            with self._lock:
                if self._ssl is None:
                    self._ssl = default_ssl_context(trust_env=self.trust_env)
                context = self._ssl
        return context

    async def _close_at_loop_shutdown(
        self, loop: asyncio.AbstractEventLoop, slot: _LoopClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._clients.get(loop) is slot:
                    del self._clients[loop]
            if not slot.retired:
                slot.retired = True
                await slot.client.aclose()

    async def aclose(self) -> None:
        """Close the running event loop's client now (a later request opens a new one).

        Not needed with ``asyncio.run``: each loop's client is closed when the loop shuts down.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            slot = self._clients.pop(loop, None)
        if slot is not None and not slot.retired:
            slot.retire()
            await slot.client.aclose()

    def _after_fork(self) -> None:
        # the parent's lock may have been held by another thread at fork time: never wait on it here
        self._lock = threading.Lock()
        slots = list(self._clients.values())
        self._clients = {}
        for slot in slots:
            slot.retire()  # its sockets are the parent's: leave them alone

    def __getstate__(self) -> dict[str, Any]:
        # clients and locks stay in their process: a copy gets its own, opened on first use
        return {
            "default_timeout": self.default_timeout,
            "max_connections": self.max_connections,
            "max_keepalive_connections": self.max_keepalive_connections,
            "keepalive_expiry": self.keepalive_expiry,
            "trust_env": self.trust_env,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(default_timeout={self.default_timeout!r}, "
            f"max_connections={self.max_connections!r})"
        )

    # ------------------------------------------------------------------ request pieces

    def _url(self, credentials: Mapping[str, Any]) -> tuple[str, str]:
        source, base = next(
            (name, value)
            for name, value in (
                ("api_base", credentials.get("api_base")),
                ("base_url", credentials.get("base_url")),
                ("OPENAI_BASE_URL", os.environ.get("OPENAI_BASE_URL")),
                ("OPENAI_API_BASE", os.environ.get("OPENAI_API_BASE")),
                ("the default", DEFAULT_API_BASE),
            )
            if value
        )
        known = self._urls.get(base) if isinstance(base, str) else None
        if known is not None:
            return known
        problem = url_problem(base)
        if problem is not None:
            # LM(...) checks api_base itself; a variable of the environment is only seen here
            raise ConfigurationError(
                f"{source} {problem} (got {_display_url(str(base))!r}). Pass LM(..., api_base=...) or set "
                "OPENAI_BASE_URL."
            )
        url = base.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/chat/completions"
        if len(self._urls) > 64:
            self._urls.clear()
        self._urls[base] = (url, _display_url(url))
        return self._urls[base]

    def _timeout(self, seconds: float | None) -> Any:
        seconds = self.default_timeout if seconds is None else float(seconds)
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            # one number for connect, read, write and the wait for a pooled connection, as litellm does
            timeout = self._timeouts[seconds] = _import_httpx().Timeout(seconds)
        return timeout


def _environment_proxies() -> dict[str, str]:
    """The proxies the environment configures (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``)."""
    proxies = urllib.request.getproxies()
    return {scheme: url for scheme, url in proxies.items() if scheme in ("http", "https", "all") and url}


def _headers(credentials: Mapping[str, Any]) -> dict[str, str]:
    """The request headers: ``Authorization`` (when there is a key), the OpenAI ones and ``extra_headers``."""
    unknown = [name for name in credentials if name not in ACCEPTED_CREDENTIALS]
    if unknown:
        raise ConfigurationError(
            f"The openai_http backend does not understand the LM setting(s) {', '.join(sorted(unknown))}. "
            f"It accepts {', '.join(ACCEPTED_CREDENTIALS)}; for other providers (Azure, Bedrock, ...) use "
            "the litellm backend with a model string such as 'azure/<deployment>'."
        )
    headers = {"Content-Type": "application/json"}
    api_key = credentials.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if api_key:
        if not isinstance(api_key, str):
            raise ConfigurationError(f"api_key must be a string, got {type(api_key).__name__}")
        headers["Authorization"] = "Bearer " + api_key
    for name, header in (("organization", "OpenAI-Organization"), ("project", "OpenAI-Project")):
        value = credentials.get(name)
        if value:
            headers[header] = str(value)
    extra = credentials.get("extra_headers")
    if extra:
        if not isinstance(extra, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in extra.items()
        ):
            raise ConfigurationError("extra_headers must map header names (str) to values (str)")
        headers.update(extra)
    return headers


def _body(request: LMRequest) -> bytes:
    payload: dict[str, Any] = {"model": wire_model(request.model), "messages": request.messages}
    for name, value in request.params.items():
        if value is None:
            continue  # unset, as litellm treats it; some servers reject an explicit null
        if name == "stream":
            if value:
                raise ConfigurationError(
                    "The openai_http backend does not stream: remove stream=True (the kernel needs whole "
                    "responses to cache and score them)."
                )
            continue
        if name == "response_format":
            value = _response_format(value)
        payload[name] = value
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        names = ", ".join(sorted(request.params)) or "(none)"
        raise ConfigurationError(
            f"The request for {request.model} cannot be sent as JSON ({exc}). Messages and parameters "
            f"({names}) must be JSON values: str, numbers, booleans, None, lists and dicts with str keys."
        ) from None


def _response_format(value: Any) -> Any:
    # litellm accepts a pydantic model class as response_format; so does this backend, as a JSON schema
    schema = getattr(value, "model_json_schema", None) if isinstance(value, type) else None
    if schema is None:
        return value
    return {
        "type": "json_schema",
        "json_schema": {"name": value.__name__, "schema": schema(), "strict": False},
    }


# ------------------------------------------------------------------ responses


def _parse(content: bytes, model: str, shown_url: str) -> LMResponse | LMError:
    """The ``LMResponse`` of a 2xx body, or the error to raise (returned, so nothing is chained to it)."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return LMConnectionError(
            f"{model}: the response from POST {shown_url} is not valid JSON ({len(content)} bytes: "
            f"{_preview(content)})",
            model=model,
            status_code=200,
        )
    if not isinstance(data, dict):
        return _invalid(model, shown_url, f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not choices and data.get("error") is not None:
        return _error_in_body(data["error"], model, shown_url)
    if choices is None:
        choices = []  # missing choices: the kernel retries an answer without any
    if not isinstance(choices, list):
        return _invalid(model, shown_url, f'"choices" is a {type(choices).__name__}, not a list')
    outputs: list[str] = []
    finish_reasons: list[str | None] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return _invalid(model, shown_url, 'a choice has no "message" object')
        outputs.append(content_text(message.get("content")))
        reason = choice.get("finish_reason")
        finish_reasons.append(reason if isinstance(reason, str) else None)
    usage = data.get("usage")
    counts: dict[str, int] = {}
    if isinstance(usage, dict):
        counts = {
            key: value
            for key, value in usage.items()
            if isinstance(value, int) and not isinstance(value, bool)
        }
    answered_by = data.get("model")
    return LMResponse(
        outputs=outputs,
        usage=counts,
        model=answered_by if isinstance(answered_by, str) else None,
        finish_reasons=finish_reasons,
    )


def _invalid(model: str, shown_url: str, problem: str) -> LMError:
    # a malformed body is most often a proxy or a server mid-restart: worth a retry, like a cut-off body
    return LMConnectionError(
        f"{model}: the response from POST {shown_url} is not a chat completion: {problem}",
        model=model,
        status_code=200,
    )


def _error_in_body(error: Any, model: str, shown_url: str) -> LMError:
    """Some servers and proxies answer 200 with ``{"error": ...}``: classify it by its code."""
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    kind = str(error.get("type") or "") if isinstance(error, dict) else ""
    status = code if isinstance(code, int) and not isinstance(code, bool) else None
    if status is None and isinstance(code, str) and code.isdigit():
        status = int(code)
    text = f"{model}: POST {shown_url} answered 200 with an error: {_clip(str(message))}"
    if status == 429 or "rate_limit" in f"{code} {kind}":
        return LMRateLimitError(text, model=model, status_code=429)
    if status in (401, 403):
        return LMAuthenticationError(text, model=model, status_code=status)
    if status is not None and 400 <= status < 500:
        return LMRequestError(text, model=model, status_code=status)
    return LMServerError(text, model=model, status_code=status)


def _status_error(response: httpx.Response, model: str, shown_url: str, *, has_key: bool) -> LMError:
    status = response.status_code
    detail = _error_detail(response.content)
    text = f"{model}: HTTP {status} from POST {shown_url}: {detail}"
    retry_after = _retry_after(response.headers)
    if status == 429:
        return LMRateLimitError(text, model=model, status_code=status, retry_after=retry_after)
    if status == 408:
        return LMTimeoutError(text, model=model, status_code=status, retry_after=retry_after)
    if status >= 500:
        return LMServerError(text, model=model, status_code=status, retry_after=retry_after)
    if status in (401, 403):
        if not has_key:
            text += " (no API key was sent: pass LM(..., api_key=...) or set OPENAI_API_KEY)"
        return LMAuthenticationError(text, model=model, status_code=status)
    if status == 404:
        text += " (check api_base, which should end with /v1 for most servers, and the model name)"
    elif 300 <= status < 400:
        text += " (redirects are not followed: point api_base at the final URL)"
    return LMRequestError(text, model=model, status_code=status)


def _error_detail(content: bytes) -> str:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return _preview(content) if content else "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict) and error.get("message") is not None:
            return _clip(str(error["message"]))
        if error is not None:
            return _clip(str(error))
    return _clip(str(data))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        with contextlib.suppress(ValueError):
            value = float(milliseconds) / 1000.0
            if math.isfinite(value):
                return max(value, 0.0)
    seconds = headers.get("retry-after")
    if not seconds:
        return None
    try:
        value = float(seconds)
        return max(value, 0.0) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(seconds)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _transport_error(exc: Exception, model: str, shown_url: str, timeout: float) -> LMError:
    httpx = _import_httpx()
    if isinstance(exc, httpx.TimeoutException):
        # the root of a timeout is the cancellation that enforced it: naming it would add nothing
        return LMTimeoutError(
            f"{model}: POST {shown_url} timed out: no answer within the timeout of {timeout:g}s "
            f"({type(exc).__name__})",
            model=model,
        )
    cause = f"{type(exc).__name__}: {_clip(str(exc)) or _root_cause(exc)}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        # kept an LMRequestError so the kernel does not retry a URL that can never work
        return LMRequestError(f"{model}: cannot send to {shown_url}: {cause}; check api_base", model=model)
    if isinstance(exc, httpx.LocalProtocolError):
        return LMRequestError(
            f"{model}: the request to {shown_url} is not valid HTTP ({cause}); check header values",
            model=model,
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        what = "the server closed the connection before a complete response (reset or cut-off body)"
    elif isinstance(exc, httpx.ConnectError):
        what = "cannot connect"
    elif isinstance(exc, httpx.DecodingError):
        what = "the response body could not be decoded"
    else:
        what = "the connection failed"
    return LMConnectionError(f"{model}: POST {shown_url}: {what} ({cause})", model=model)


def _root_cause(exc: BaseException) -> str:
    """The innermost exception ``exc`` was raised from, named (httpx's ``ReadError`` on a reset is empty)."""
    root = exception_chain(exc)[-1]
    if root is exc:
        return "no details"
    detail = " ".join(str(root).split())
    return f"from {type(root).__name__}" + (f": {_clip(detail)}" if detail else "")


def _display_url(url: str) -> str:
    # user:password@ and query strings can hold secrets: errors show scheme, host, port and path only
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(an invalid URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _preview(content: bytes) -> str:
    return repr(content[:200]) + ("..." if len(content) > 200 else "")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."
