"""Which LM keyword arguments are connection settings or secrets, kept out of caches, files and logs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Connection settings that are not secret but are not sampling parameters either.
CONNECTION_KEYS = frozenset({"api_base", "base_url", "api_version", "organization", "project"})

# anything that looks like a credential, including provider-specific ones (aws_secret_access_key, ...)
_SECRET_PATTERN = re.compile(r"key|secret|token|password|passwd|credential|authorization|headers", re.I)


def is_secret(name: str) -> bool:
    """Whether a keyword argument holds a secret (API keys, tokens, auth headers, ...)."""
    return bool(_SECRET_PATTERN.search(name)) and name not in ("max_tokens", "max_completion_tokens")


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
