"""A real OpenAI-compatible chat-completions HTTP server for tests and benchmarks.

:class:`OpenAICompatServer` runs an aiohttp web server on its own event loop in a daemon thread, so a test
can point litellm (or any OpenAI client) at ``server.url`` and get real HTTP round trips::

    with OpenAICompatServer(latency=0.05) as server:
        litellm.completion(model="openai/x", api_base=server.url, api_key="k", messages=[...], n=3)
        assert server.requests[0].n == 3

By default the server answers in the output format the prompt asks for (the ChatAdapter's
``[[ ## field ## ]]`` sections or the JSONAdapter's JSON object, see :func:`requested_fields`), so the
library's adapters can parse its answers. Tests can script answers with
:meth:`OpenAICompatServer.set_responder`, delay some requests with :meth:`OpenAICompatServer.set_latency`,
script HTTP failures with :meth:`OpenAICompatServer.fail_next` and inject random, seeded faults with
:meth:`OpenAICompatServer.inject_faults`. Each :class:`ReceivedRequest` records its fault, when it was
answered, and whether the client went away first (:attr:`OpenAICompatServer.cancelled_requests`).

The module can also run as a process, which keeps the server's CPU out of a benchmark client's process::

    python -m bestofn_core.testing.openai_server --port 0 --latency 0.1 --mode chat

prints ``http://127.0.0.1:PORT/v1`` as its first stdout line and serves until SIGTERM or SIGINT.

This module is not imported by ``import bestofn_core``; it needs aiohttp (installed with litellm).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from aiohttp import web

from bestofn_core.protocols import token_usage
from bestofn_core.testing.formats import render_fields, requested_fields

__all__ = [
    "FAULT_KINDS",
    "LatencyFunction",
    "OpenAICompatServer",
    "ReceivedRequest",
    "Responder",
    "main",
    "render_fields",
    "requested_fields",
]

_log = logging.getLogger(__name__)

#: Every fault kind :meth:`OpenAICompatServer.inject_faults` understands.
FAULT_KINDS: tuple[str, ...] = (
    "429",
    "500",
    "503",
    "reset",
    "hang",
    "truncated",
    "invalid_json",
    "empty_choices",
    "missing_fields",
    "fewer_choices",
)

_REASONING_TEXT = "Let me think step by step."
_INVALID_JSON_BODY = b'{"id": "chatcmpl-broken", "choices": [<html>Bad Gateway</html>'


# -------------------- Requests --------------------


def _content_text(content: Any) -> str:
    """Return the text of a message ``content`` (a string, a list of content parts, or None)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


@dataclass
class ReceivedRequest:
    """One chat-completions request as the server received it.

    ``body`` is the parsed JSON body (``{}`` when the body was not a JSON object), ``headers`` maps
    lower-cased header names to values, ``path`` is the URL path and ``received_at`` the ``time.time()`` of
    arrival. ``fault`` is the fault kind :meth:`OpenAICompatServer.inject_faults` gave the request (None when
    it got none). ``answered_at`` is the ``time.time()`` at which the handler returned its answer (None while
    it runs, and for ever when it was cancelled); ``cancelled`` is true when the handler was cancelled
    before answering, because the client closed the connection (or the server stopped).
    """

    body: dict[str, Any]
    headers: dict[str, str]
    path: str
    received_at: float = 0.0
    fault: str | None = None
    answered_at: float | None = None
    cancelled: bool = False

    @property
    def is_text_completion(self) -> bool:
        """Whether this is a text-completions request (``/v1/completions``, a ``prompt``, no messages)."""
        return not self.path.endswith("chat/completions") and self.path.endswith("/completions")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` (only the entries that are JSON objects).

        A text-completions request's ``prompt`` reads as one user message.
        """
        if self.is_text_completion:
            prompt = self.body.get("prompt")
            return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else []
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return []
        return [m for m in messages if isinstance(m, dict)]

    @property
    def n(self) -> int:
        """The number of choices asked for (``n``; 1 when absent or not a positive integer)."""
        value = self.body.get("n")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        return 1

    @property
    def temperature(self) -> float | None:
        """The request's ``temperature``, or None when absent."""
        value = self.body.get("temperature")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    @property
    def last_user_text(self) -> str:
        """The text of the last user message ("" if there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


#: A scripted answer: called once per choice index ``0..n-1``. A ``str`` is returned verbatim as the message
#: content; a ``dict`` maps output field names to values and is rendered in the format the prompt asked for.
Responder = Callable[[ReceivedRequest, int], str | dict[str, Any]]

#: Seconds to delay the answer to one request, decided when it arrives (see
#: :meth:`OpenAICompatServer.set_latency`).
LatencyFunction = Callable[[ReceivedRequest], float]


# -------------------- Output formats --------------------


def _response_format_fields(body: dict[str, Any]) -> list[str]:
    """Field names from a ``response_format`` JSON schema's properties ([] when there is none)."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return []
    json_schema = response_format.get("json_schema")
    schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return [str(name) for name in properties] if isinstance(properties, dict) else []


def _wants_json(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def _default_value(name: str, k: int) -> str:
    return _REASONING_TEXT if name == "reasoning" else f"{name} {k}"


def _words(text: str) -> int:
    return len(text.split())


# -------------------- Errors --------------------


def _error_details(status: int) -> tuple[str, str, str | None]:
    """An OpenAI-like (message, type, code) for an HTTP status."""
    if status == 429:
        return "Rate limit reached for requests (test server).", "requests", "rate_limit_exceeded"
    if status == 401:
        return "Incorrect API key provided (test server).", "invalid_request_error", "invalid_api_key"
    if status == 404:
        return "The model does not exist (test server).", "invalid_request_error", "model_not_found"
    if status == 503:
        return (
            "The engine is currently overloaded, please try again later (test server).",
            "server_error",
            "service_unavailable",
        )
    if status >= 500:
        return (
            "The server had an error while processing your request (test server).",
            "server_error",
            None,
        )
    return f"Request failed with status {status} (test server).", "invalid_request_error", None


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _error_response(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    body: str | None = None,
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = _format_seconds(retry_after)
        headers["retry-after-ms"] = _format_seconds(retry_after * 1000.0)
    if body is not None:
        try:
            json.loads(body)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
        return web.Response(status=status, text=body, content_type=content_type, headers=headers)
    default_message, error_type, code = _error_details(status)
    payload = {
        "error": {"message": message or default_message, "type": error_type, "param": None, "code": code}
    }
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


def _abort_connection(request: web.BaseRequest) -> None:
    """Close the request's connection abruptly (RST where the platform allows) without a response."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _trickled(
    request: web.Request, data: bytes, interval: float, chunk_bytes: int
) -> web.StreamResponse:
    """Send ``data`` as a 200 JSON body, ``chunk_bytes`` at a time, ``interval`` seconds apart."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(data)
    await response.prepare(request)
    for start in range(0, len(data), chunk_bytes):
        if start:
            await asyncio.sleep(interval)
        await response.write(data[start : start + chunk_bytes])
    await response.write_eof()
    return response


@dataclass
class _ScriptedFailure:
    status: int
    remaining: int
    retry_after: float | None
    body: str | None


class _ResponderError(Exception):
    """A responder raised or returned something unusable."""


# -------------------- The server --------------------


@dataclass
class _Plan:
    """What the server decided, at arrival, to do with one request."""

    latency: float
    scripted: _ScriptedFailure | None = None
    fault: str | None = None
    hang_seconds: float = 0.0
    retry_after: float = 0.0


class OpenAICompatServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, run in a daemon thread.

    Endpoints: ``POST /v1/chat/completions`` (and ``/chat/completions``), ``POST /v1/completions`` (and
    ``/completions``: text completions, answering the ``prompt`` as one user message), ``GET /v1/models``
    and ``GET /health``. Use it as a context manager or call :meth:`start` / :meth:`stop`. All configuration
    methods are thread-safe and take effect for requests that arrive afterwards.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0) -> None:
        """Configure (but do not start) a server on ``host:port`` (port 0 picks a free port).

        ``latency`` is the number of seconds each answer is delayed (non-blocking).
        """
        self.host = host
        self._requested_port = port
        #: Seconds to wait (asyncio.sleep) before each answer; read when a request arrives, settable any time
        #: (a latency function given to :meth:`set_latency` takes precedence).
        self.latency: float = float(latency)
        #: Whether chat-completions requests are kept in :attr:`requests` (process mode turns this off).
        self.record_requests: bool = True
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._responder: Responder | None = None
        self._scripted: deque[_ScriptedFailure] = deque()
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = ()
        self._fault_rng = random.Random(0)
        self._hang_seconds = 30.0
        self._fault_retry_after = 0.0
        self._fault_counts: dict[str, int] = {}
        self._latency_fn: LatencyFunction | None = None
        self._cancelled = 0
        self._choices_served = 0
        self._trickle: tuple[float, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---------------- Lifecycle ----------------

    @property
    def port(self) -> int:
        """The port the server listens on (valid after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI ``api_base``, ``http://HOST:PORT/v1`` (valid after :meth:`start`)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server is started and listening."""
        return self._port is not None

    def start(self) -> OpenAICompatServer:
        """Start serving in a daemon thread; returns ``self`` once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._async_start())
            except BaseException as exc:
                errors.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._shutdown_loop(loop)

        thread = threading.Thread(target=run, name="OpenAICompatServer", daemon=True)
        self._loop = loop
        self._thread = thread
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            self._thread = None
            self._loop = None
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving, cancel in-flight answers and join the thread (a no-op when not running)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30.0)
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> OpenAICompatServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    async def _async_start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_post("/v1/completions", self._handle_chat)  # text completions (model_type="text")
        app.router.add_post("/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/models", self._handle_models)
        app.router.add_get("/health", self._handle_health)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.1,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port, backlog=4096, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    def _shutdown_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            if self._runner is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(self._runner.cleanup())
                self._runner = None
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    # ---------------- Configuration and inspection ----------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of every chat-completions request received (since the last :meth:`reset`), in arrival order.

        Requests to ``/v1/models`` and ``/health`` are not recorded.
        """
        with self._lock:
            return list(self._requests)

    @property
    def cancelled_requests(self) -> int:
        """How many chat-completions handlers were cancelled before answering (since the last :meth:`reset`).

        A handler is cancelled when its client closes the connection before the answer is sent: a client
        timeout, or a cancelled call. Each such request also has ``cancelled=True`` in :attr:`requests`. A
        client that goes away before its request's body has arrived is not counted: there is no request.
        """
        with self._lock:
            return self._cancelled

    def reset(self) -> None:
        """Clear requests, scripted failures, injected faults and their counts, the responder, the choice
        counter and the cancellation count, and set latency back to 0 (removing a latency function)."""
        with self._lock:
            self._requests.clear()
            self._scripted.clear()
            self._fault_rate = 0.0
            self._fault_kinds = ()
            self._fault_rng = random.Random(0)
            self._hang_seconds = 30.0
            self._fault_retry_after = 0.0
            self._fault_counts = {}
            self._responder = None
            self._latency_fn = None
            self._cancelled = 0
            self._choices_served = 0
            self._trickle = None
            self.latency = 0.0

    def set_latency(self, latency: float | LatencyFunction) -> None:
        """Delay answers by ``latency`` seconds, or by ``latency(request)`` seconds for each request.

        A function is called once per chat-completions request, when it arrives (on the server's loop, so
        keep it quick); it lets a test slow down some requests only. A number sets :attr:`latency` and
        removes a latency function. A function that raises, or returns a negative or non-numeric value,
        makes that request fail with HTTP 500.
        """
        if callable(latency):
            with self._lock:
                self._latency_fn = latency
            return
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency must be a number >= 0 or a function of the request, got {latency!r}")
        with self._lock:
            self._latency_fn = None
            self.latency = float(latency)

    def set_trickle(self, interval: float | None, chunk_bytes: int = 16) -> None:
        """Send each answer's body ``chunk_bytes`` at a time, ``interval`` seconds apart (None: at once).

        The headers go out at once and a few bytes follow at every interval, so a client's per-read timeout
        never trips however long the whole answer takes: a test uses it to check that a deadline bounds the
        whole request. Error answers and faults are sent as usual.
        """
        if interval is None:
            with self._lock:
                self._trickle = None
            return
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a number of seconds > 0, or None, got {interval!r}")
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be an int >= 1, got {chunk_bytes!r}")
        with self._lock:
            self._trickle = (float(interval), chunk_bytes)

    def set_responder(self, fn: Responder | None) -> None:
        """Answer with ``fn(request, choice_index)`` for each choice (None restores the default responder)."""
        with self._lock:
            self._responder = fn

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        """Answer the next ``times`` chat-completions requests with HTTP ``status``.

        The body is an OpenAI-style error object (``{"error": {"message", "type", "param", "code"}}``) unless
        ``body`` is given, in which case it is sent verbatim. ``retry_after`` adds ``Retry-After`` (seconds)
        and ``retry-after-ms`` headers. Calls queue up: ``fail_next(429); fail_next(500)`` fails the next
        request with 429 and the one after with 500. Scripted failures take precedence over injected faults.
        """
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        if times < 0:
            raise ValueError(f"times must be >= 0, got {times}")
        if times == 0:
            return
        with self._lock:
            self._scripted.append(_ScriptedFailure(status, times, retry_after, body))

    def inject_faults(
        self,
        rate: float,
        kinds: Sequence[str],
        *,
        seed: int = 0,
        hang_seconds: float = 30.0,
        retry_after: float = 0.0,
    ) -> None:
        """Give each chat-completions request, with probability ``rate``, one fault drawn from ``kinds``.

        The draws come from ``random.Random(seed)`` in arrival order, so a sequential client sees the same
        faults on every run; each request's fault is recorded in its :class:`ReceivedRequest` ``fault``.
        Kinds (see :data:`FAULT_KINDS`): "429" (with ``Retry-After: retry_after`` seconds), "500", "503",
        "reset" (the connection is closed without a response), "hang" (the answer is delayed by
        ``hang_seconds``), "truncated" (valid headers, body cut half-way), "invalid_json" (200 with a non-JSON
        body), "empty_choices" (200 with ``"choices": []``), "missing_fields" (200, but when the prompt asks
        for several output fields only the first is rendered, and when it asks for one, none is),
        "fewer_choices" (``max(1, n // 2)`` choices when ``n > 1``, none when ``n == 1``). Calling it again
        replaces the configuration and restarts the RNG; counts are kept until :meth:`reset`.
        ``rate=0`` turns injection off.
        """
        if isinstance(kinds, str):
            kinds = [kinds]
        kinds = tuple(kinds)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; expected some of {list(FAULT_KINDS)}")
        if rate > 0 and not kinds:
            raise ValueError("kinds must not be empty when rate > 0")
        if hang_seconds < 0:
            raise ValueError(f"hang_seconds must be >= 0, got {hang_seconds}")
        if not retry_after >= 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        with self._lock:
            self._fault_rate = float(rate)
            self._fault_kinds = kinds
            self._fault_rng = random.Random(seed)
            self._hang_seconds = float(hang_seconds)
            self._fault_retry_after = float(retry_after)
            for kind in kinds:
                self._fault_counts.setdefault(kind, 0)

    def fault_counts(self) -> dict[str, int]:
        """How many of each injected fault kind were served since the last :meth:`reset`.

        Kinds that were configured but not yet served appear with 0; scripted :meth:`fail_next` failures are
        not counted here.
        """
        with self._lock:
            return dict(self._fault_counts)

    # ---------------- Handlers ----------------

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _handle_models(self, request: web.Request) -> web.Response:
        payload = {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "bestofn-core"}
                for name in ("test-model", "gpt-4o-mini")
            ],
        }
        return web.json_response(payload)

    def _latency(self, received: ReceivedRequest) -> float:
        with self._lock:
            latency_fn, latency = self._latency_fn, self.latency
        if latency_fn is None:
            return max(0.0, float(latency))
        try:
            value = latency_fn(received)
        except Exception as exc:
            raise _ResponderError(f"the test server's latency function raised {exc!r}") from exc
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise _ResponderError(
                f"the test server's latency function must return a number >= 0, got {value!r}"
            )
        return float(value)

    def _plan(self, latency: float) -> _Plan:
        with self._lock:
            plan = _Plan(latency=latency)
            if self._scripted:
                scripted = self._scripted[0]
                scripted.remaining -= 1
                if scripted.remaining <= 0:
                    self._scripted.popleft()
                plan.scripted = scripted
                return plan
            if self._fault_rate > 0 and self._fault_kinds and self._fault_rng.random() < self._fault_rate:
                fault = self._fault_rng.choice(self._fault_kinds)
                self._fault_counts[fault] = self._fault_counts.get(fault, 0) + 1
                plan.fault = fault
                plan.hang_seconds = self._hang_seconds
                plan.retry_after = self._fault_retry_after
            return plan

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        received: ReceivedRequest | None = None

        def on_received(value: ReceivedRequest) -> None:
            nonlocal received
            received = value

        try:
            response = await self._answer(request, on_received)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client closes the connection (handler_cancellation)
            if received is not None:
                with self._lock:
                    self._cancelled += 1
                received.cancelled = True
            raise
        if received is not None:
            received.answered_at = time.time()
        return response

    async def _answer(
        self, request: web.Request, on_received: Callable[[ReceivedRequest], None]
    ) -> web.StreamResponse:
        raw = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        received = ReceivedRequest(
            body=body if isinstance(body, dict) else {},
            headers=headers,
            path=request.path,
            received_at=time.time(),
        )
        on_received(received)
        if self.record_requests:
            with self._lock:
                self._requests.append(received)

        if not isinstance(body, dict):
            return _error_response(400, "The request body must be a JSON object.")
        if body.get("stream"):
            return _error_response(
                400, "Streaming is not supported by this test server; send the request with stream=false."
            )
        n_value = body.get("n")
        if n_value is not None and (isinstance(n_value, bool) or not isinstance(n_value, int) or n_value < 1):
            return _error_response(400, f"n must be a positive integer, got {n_value!r}.")
        n = received.n

        try:
            latency = self._latency(received)
        except _ResponderError as exc:
            _log.exception("OpenAICompatServer latency function failed")
            return _error_response(500, str(exc))
        plan = self._plan(latency)
        received.fault = plan.fault
        if plan.latency > 0:
            await asyncio.sleep(plan.latency)
        if plan.scripted is not None:
            scripted = plan.scripted
            return _error_response(scripted.status, retry_after=scripted.retry_after, body=scripted.body)

        fault = plan.fault
        if fault == "429":
            return _error_response(429, retry_after=plan.retry_after)
        if fault in ("500", "503"):
            return _error_response(int(fault))
        if fault == "reset":
            _abort_connection(request)
            return web.Response(status=200)  # never reaches the client: the connection is gone
        if fault == "hang":
            await asyncio.sleep(plan.hang_seconds)

        try:
            payload = self._completion(received, n, fault)
        except _ResponderError as exc:
            _log.exception("OpenAICompatServer responder failed")
            return _error_response(500, str(exc))
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")

        if fault == "invalid_json":
            return web.Response(status=200, body=_INVALID_JSON_BODY, content_type="application/json")
        if fault == "truncated":
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            if request.transport is not None:
                request.transport.close()  # flushes the half body, then closes: the client sees a short body
            return response
        with self._lock:
            trickle = self._trickle
        if trickle is not None:
            return await _trickled(request, data, *trickle)
        return web.Response(body=data, content_type="application/json")

    # ---------------- Answers ----------------

    def _completion(self, received: ReceivedRequest, n: int, fault: str | None) -> dict[str, Any]:
        body = received.body
        if fault == "empty_choices":
            count = 0
        elif fault == "fewer_choices":
            count = max(1, n // 2) if n > 1 else 0
        else:
            count = n
        form, names = requested_fields(received.last_user_text)
        if form == "text":
            schema_names = _response_format_fields(body)
            if schema_names:
                form, names = "json", schema_names
        with self._lock:
            responder = self._responder
        choices: list[dict[str, Any]] = []
        for index in range(count):
            text = self._choice_text(received, index, form, names, fault, responder)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            )
        prompt_tokens = sum(_words(_content_text(m.get("content"))) for m in received.messages)
        completion_tokens = sum(_words(c["message"]["content"]) for c in choices)
        model = body.get("model")
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) else "test-model",
            "choices": choices,
            "usage": token_usage(prompt_tokens, completion_tokens),  # the OpenAI wire format too
        }
        if received.is_text_completion:  # the same answer in the text-completion format
            payload["id"], payload["object"] = f"cmpl-{uuid.uuid4().hex[:24]}", "text_completion"
            payload["choices"] = [
                {**{k: v for k, v in c.items() if k != "message"}, "text": c["message"]["content"]}
                for c in choices
            ]
        return payload

    def _choice_text(
        self,
        received: ReceivedRequest,
        index: int,
        form: str,
        names: list[str],
        fault: str | None,
        responder: Responder | None,
    ) -> str:
        with self._lock:
            k = self._choices_served
            self._choices_served += 1
        result: str | dict[str, Any] | None = None
        if responder is not None:
            try:
                result = responder(received, index)
            except Exception as exc:
                raise _ResponderError(f"the test server's responder raised {exc!r}") from exc
            if not isinstance(result, (str, dict)):
                raise _ResponderError(
                    f"the test server's responder must return str or dict, got {type(result).__name__}"
                )
        if isinstance(result, str) and fault != "missing_fields":
            return result
        provided: dict[str, Any] = result if isinstance(result, dict) else {}
        if not names:
            if not provided:
                return f"response {k}"
            # No format in the prompt, but the responder gave fields: render them as JSON when the request
            # asked for a JSON response, else in chat form.
            form = "json" if _wants_json(received.body) else "chat"
            names = [str(name) for name in provided]
        values: dict[str, Any] = {name: provided.get(name, _default_value(name, k)) for name in names}
        for name, value in provided.items():
            values.setdefault(str(name), value)
        if fault == "missing_fields":
            keep = names[:1] if len(names) > 1 else []
            values = {name: values[name] for name in keep}
        return render_fields(form, values)


# -------------------- Process mode --------------------


def _echo_responder(request: ReceivedRequest, index: int) -> str:
    return request.last_user_text


def _text_responder(request: ReceivedRequest, index: int) -> str:
    return f"response {index}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server as a process: print its URL on the first stdout line, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m bestofn_core.testing.openai_server",
        description="OpenAI-compatible chat-completions test server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--mode",
        choices=("chat", "echo", "text"),
        default="chat",
        help="chat: answer in the format the prompt asks for (default); echo: repeat the last user message; "
        "text: plain text",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    parser.add_argument(
        "--faults", default="", help=f"comma-separated fault kinds from {','.join(FAULT_KINDS)}"
    )
    parser.add_argument("--seed", type=int, default=0, help="fault RNG seed")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="delay of the 'hang' fault")
    parser.add_argument(
        "--retry-after", type=float, default=0.0, help="Retry-After seconds of the '429' fault"
    )
    args = parser.parse_args(argv)

    server = OpenAICompatServer(args.host, args.port, latency=args.latency)
    server.record_requests = False  # nobody reads them in this process; keep memory flat on long runs
    if args.mode == "echo":
        server.set_responder(_echo_responder)
    elif args.mode == "text":
        server.set_responder(_text_responder)
    kinds = [kind.strip() for kind in args.faults.split(",") if kind.strip()]
    if args.fault_rate > 0 or kinds:
        try:
            server.inject_faults(
                args.fault_rate,
                kinds,
                seed=args.seed,
                hang_seconds=args.hang_seconds,
                retry_after=args.retry_after,
            )
        except ValueError as exc:
            parser.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    try:
        print(server.url, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
