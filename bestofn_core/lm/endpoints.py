"""Where an LM's requests go: an ``api_base`` must be a server's URL, checked before anything is sent.

A value such as ``"http://"`` or ``"localhost:8000/v1"`` used to reach the HTTP client, which failed deep
inside (``KeyError: b''``) with an error retried as if the server were down. It is a configuration error,
named at ``LM(...)``, ``LM.copy(...)`` and ``bestofn run --api-base``; backends that read a URL from the
environment use :func:`url_problem` to say which variable is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bestofn_core._validation import invalid_arguments
from bestofn_core.lm.credentials import mask_urls

__all__ = ["URL_SETTINGS", "check_server_urls", "url_problem"]

#: The LM settings that name the server requests go to.
URL_SETTINGS = ("api_base", "base_url")

_EXPECTED = "must be an http:// or https:// URL with a host, such as 'http://localhost:8000/v1'"


def url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a server's base URL, or ``None`` when it can."""
    if not isinstance(url, str):
        return f"{_EXPECTED}, not a {type(url).__name__}"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"{_EXPECTED} ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return _EXPECTED
    if not parts.hostname:
        return f"{_EXPECTED}; this one names no host"
    return None


def check_server_urls(what: str, values: Mapping[str, Any]) -> None:
    """Refuse an ``api_base``/``base_url`` in ``values`` that is not a server URL (``None``: the default)."""
    problems = [
        (name, problem, mask_urls(values[name]) if isinstance(values[name], str) else values[name])
        for name in URL_SETTINGS
        if values.get(name) is not None and (problem := url_problem(values[name])) is not None
    ]
    if problems:
        raise invalid_arguments(what, problems)
