"""bestofn-openai-http: a fast LM backend for OpenAI-compatible ``/chat/completions`` endpoints.

Installed, it registers ``"openai_http:openai_http"`` for model strings starting with ``"openai-http/"``::

    import bestofn_core as bon

    lm = bon.LM("openai-http/gpt-4o-mini", api_base="http://localhost:8000/v1", api_key="...")
    # or keep an ``openai/`` model string and pick the backend explicitly:
    lm = bon.LM("openai/gpt-4o-mini", backend="openai_http:openai_http", api_base=..., api_key=...)

See the README for the prefix rule and what the backend sends.
"""

from __future__ import annotations

from bestofn_openai_http._version import __version__
from bestofn_openai_http.backend import (
    DEFAULT_API_BASE,
    DEFAULT_TIMEOUT,
    PREFIX,
    OpenAIHTTPBackend,
    wire_model,
)

__all__ = ["DEFAULT_API_BASE", "DEFAULT_TIMEOUT", "PREFIX", "OpenAIHTTPBackend", "__version__", "wire_model"]
