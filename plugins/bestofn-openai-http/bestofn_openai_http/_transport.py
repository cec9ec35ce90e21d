"""A connection pool for ``httpx.AsyncClient`` whose cost per request does not grow with its size.

Why not httpx's own pool: httpcore 1.0's ``AsyncConnectionPool`` re-examines every connection it holds on
each request start and end (a ``poll`` system call per idle connection, and a count that is quadratic in
the number of connections), so client CPU per request grows with concurrency: measured at about 9 ms per
request with 128 requests in flight, more than litellm. Best-of-N sampling keeps many requests in flight,
so this module keeps idle connections in a stack per origin instead: a request takes the most recently
used one and checks only that one, and returning it checks only the oldest. Each connection is still
httpcore's public ``AsyncHTTPConnection``, so HTTP/1.1, TLS and timeouts behave exactly as in httpx.

The transport reads the whole response body before returning (the backend never streams), so a
connection goes back to the pool as soon as its response is read, whatever the caller does next.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import httpcore
import httpx

# httpcore's exceptions as httpx raises them (httpx does this mapping in its own transport); the first
# match along the exception's MRO wins, so subclasses come before their bases
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)

_Key = tuple[bytes, bytes, "int | None"]


class PooledTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport over a stack of keep-alive HTTP/1.1 connections per origin.

    Belongs to one event loop, like the ``httpx.AsyncClient`` it serves.

    Args:
        max_connections: connections open at once; a request beyond that waits for one (up to the
            request's pool timeout, then ``httpx.PoolTimeout``).
        max_keepalive_connections: idle connections kept per origin (scheme, host and port).
        keepalive_expiry: seconds an idle connection is kept.
        ssl_context: returns the TLS context, called on the first ``https`` connection.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[_Key, deque[httpcore.AsyncHTTPConnection]] = {}
        self._open: set[httpcore.AsyncHTTPConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection and return the response with its body read."""
        if self._closed:
            raise RuntimeError("The transport was closed; the backend opens a new client on the next request")
        url = request.url
        key: _Key = (url.raw_scheme, url.raw_host, url.port)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        if self._slots.locked():  # every connection is busy: wait, up to the request's pool timeout
            pool_timeout = request.extensions.get("timeout", {}).get("pool")
            try:
                await asyncio.wait_for(self._slots.acquire(), pool_timeout)
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout(
                    "No connection became free within the timeout", request=request
                ) from None
        else:
            await self._slots.acquire()  # returns at once, without the task wait_for would start
        try:
            while True:
                connection = await self._checkout(key)
                try:
                    response = await connection.handle_async_request(core_request)
                    content = await response.aread()
                    await response.aclose()
                except httpcore.ConnectionNotAvailable:
                    # the connection was closed between check-out and use: take or open another
                    self._forget(connection)
                    continue
                except BaseException as exc:
                    # httpcore closes a connection whose exchange failed or was cancelled; never reuse it
                    self._forget(connection)
                    mapped = _httpx_error(exc, request)
                    if mapped is None:
                        raise
                    raise mapped from exc
                await self._checkin(key, connection)
                break
        finally:
            self._slots.release()
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            content=content,
            extensions=response.extensions,
        )

    async def _checkout(self, key: _Key) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have expired
            if connection.is_available() and not connection.has_expired():
                return connection
            await self._close(connection)
        scheme, host, port = key
        connection = httpcore.AsyncHTTPConnection(
            origin=httpcore.Origin(scheme, host, port or (443 if scheme == b"https" else 80)),
            ssl_context=self._ssl_context() if scheme == b"https" else None,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
        )
        self._open.add(connection)
        return connection

    async def _checkin(self, key: _Key, connection: httpcore.AsyncHTTPConnection) -> None:
        idle = self._idle.setdefault(key, deque())
        # the oldest idle connections are the ones that expire: check from that end, and stop at a live one
        while idle and idle[0].has_expired():
            await self._close(idle.popleft())
        if connection.is_idle() and len(idle) < self._max_idle and not self._closed:
            idle.append(connection)
        else:  # the server asked to close it, or enough connections are idle already
            await self._close(connection)

    def _forget(self, connection: httpcore.AsyncHTTPConnection) -> None:
        self._open.discard(connection)
        if not connection.is_closed():
            # closing awaits I/O, which a cancelled request must not wait for: do it in the background
            task = asyncio.get_running_loop().create_task(connection.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close(self, connection: httpcore.AsyncHTTPConnection) -> None:
        self._open.discard(connection)
        await connection.aclose()

    async def aclose(self) -> None:
        """Close every connection, idle or in use."""
        self._closed = True
        connections, self._open = list(self._open), set()
        self._idle.clear()
        for connection in connections:
            await connection.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    for core, mapped in _EXCEPTIONS:
        if isinstance(exc, core):
            return mapped(str(exc), request=request)
    return None


def default_ssl_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The TLS context httpx would use: certifi's CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``."""
    create: Any = getattr(httpx, "create_ssl_context", None)
    if create is not None:
        context: ssl.SSLContext = create(trust_env=trust_env)
        return context
    import certifi  # httpx < 0.28 depends on certifi too

    return ssl.create_default_context(cafile=certifi.where())
