"""The plugin module named by the ``bestofn`` entry point ``openai_http``: registers the backend.

It stays cheap to import (httpx is imported on the first request), because every ``LM(...)`` builds the
plugin registry and so imports every installed plugin.
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterLMBackend, hookimpl
from bestofn_openai_http.backend import PREFIX, OpenAIHTTPBackend

#: The one backend instance the plugin registers. Module-level, so that the registry, rebuilt whenever
#: plugins change, keeps handing out the same object and its pooled connections survive the rebuild.
backend = OpenAIHTTPBackend()


@hookimpl
def register_lm_backends(register: RegisterLMBackend) -> None:
    """Offer ``"openai_http:openai_http"`` for model strings that start with ``"openai-http/"``.

    A distinct prefix, not ``"openai/"``: installing this plugin never takes ``openai/...`` model strings
    away from the built-in litellm backend. Users opt in per LM, with the prefix or with ``backend=``.
    """
    register(backend, name="openai_http", prefixes=(PREFIX,))
