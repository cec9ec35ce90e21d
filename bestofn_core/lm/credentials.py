"""Which LM keyword arguments are connection settings or secrets, kept out of caches, files and logs."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bestofn_core.errors import exception_chain

#: Connection settings that are not secret but are not sampling parameters either.
CONNECTION_KEYS = frozenset({"api_base", "base_url", "api_version", "organization", "project"})

# anything that looks like a credential, including provider-specific ones (aws_secret_access_key, ...)
_SECRET_PATTERN = re.compile(r"key|secret|token|password|passwd|credential|authorization|headers", re.I)

# Settings that choose where requests go besides CONNECTION_KEYS (litellm's custom_llm_provider,
# aws_bedrock_runtime_endpoint, vertex_location, https_proxy, ...): a loaded file may not set them.
_ROUTING_PATTERN = re.compile(
    r"(^|_)(base|url|endpoint|host|proxy|provider|region|region_name|location|deployment|deployment_id"
    r"|project|organization)$",
    re.I,
)

#: Placeholder that replaces a secret found in an error message.
REDACTED = "[REDACTED]"

# Shorter strings are not treated as secrets when redacting text: replacing every "abc" in an error
# message would garble it, and no real API key or token is that short.
_MIN_SECRET_LENGTH = 8


def is_secret(name: str) -> bool:
    """Whether a keyword argument holds a secret (API keys, tokens, auth headers, ...).

    Token *counts* (``max_tokens``, ``max_output_tokens``, ``budget_tokens``, ...) are sampling
    parameters, not secrets: a name ending in ``tokens`` is never one.
    """
    return bool(_SECRET_PATTERN.search(name)) and not name.lower().endswith("tokens")


def is_connection_setting(name: str) -> bool:
    """Whether a keyword argument chooses where requests go (host, provider, region, proxy, ...).

    A saved file may not set these unless ``settings.allow_api_base_from_file`` is true.
    """
    return name in CONNECTION_KEYS or bool(_ROUTING_PATTERN.search(name))


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split LM kwargs into (sampling/request params, credentials and connection settings)."""
    params: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in CONNECTION_KEYS or is_secret(name):
            credentials[name] = value
        else:
            params[name] = value
    return params, credentials


def without_secrets(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` with every secret removed (connection settings such as api_base kept)."""
    return {name: value for name, value in kwargs.items() if not is_secret(name)}


def secret_values(credentials: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret strings a request may carry: to be redacted from any text shown to the user.

    That is every string under a secret-looking name of ``credentials`` (header mappings included, and
    each word of a header value, so the token of ``"Bearer <token>"`` is found alone too), plus the
    value of every environment variable with a secret-looking name (``OPENAI_API_KEY``, ...), which
    backends read when no key is passed. Strings shorter than 8 characters are left out.
    """
    found: set[str] = set()
    for name, value in credentials.items():
        if is_secret(name):
            found.update(_strings(value))
    env = os.environ if environ is None else environ
    found.update(value for name, value in env.items() if is_secret(name))
    words = {word for value in found for word in value.split()}
    return {value for value in found | words if len(value) >= _MIN_SECRET_LENGTH}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``[REDACTED]``."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: "Bearer X" before "X"
        text = text.replace(secret, REDACTED)
    return text


def scrub_exception(exc: BaseException, secrets: Iterable[str]) -> bool:
    """Remove ``secrets`` from ``exc``'s message and drop its causes if any of them mentions one.

    A provider's error can echo the request's key or headers back (some proxies do); the kernel's
    error would then carry it into logs, tracebacks and ``BestOfNError`` messages. The exception's
    ``args`` are redacted in place and, when a cause or context (the HTTP client's own exception)
    mentions a secret, the chain is cut so tracebacks do not print it. Returns whether anything changed.
    """
    secrets = [secret for secret in secrets if secret]
    chain = exception_chain(exc, follow_suppressed=True)
    if not secrets or not any(secret in _text(error) for error in chain for secret in secrets):
        return False
    exc.args = tuple(redact(arg, secrets) if isinstance(arg, str) else arg for arg in exc.args)
    message = getattr(exc, "message", None)  # some clients' exceptions print .message, not args
    if isinstance(message, str):
        with contextlib.suppress(AttributeError):
            exc.message = redact(message, secrets)  # type: ignore[attr-defined]
    if any(secret in _text(error) for error in chain[1:] for secret in secrets):
        exc.__cause__ = None
        exc.__context__ = None
        exc.__suppress_context__ = True
    return True


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple | set | frozenset):
        return [text for item in value for text in _strings(item)]
    return []


def _text(exc: BaseException) -> str:
    try:
        return f"{exc}\n{exc.args!r}"
    except Exception:  # a broken __str__ must not hide the original error
        return repr(exc.args)
