"""The plugin module named by the ``bestofn`` entry point ``openai_http``: registers the backends.

It stays cheap to import (httpx is imported on the first request), because every ``LM(...)`` builds the
plugin registry and so imports every installed plugin.
"""

from __future__ import annotations

from bestofn_core.hookspecs import RegisterLMBackend, hookimpl
from bestofn_openai_http.backend import PREFIX, OpenAIHTTPBackend
from bestofn_openai_http.routing import OpenAIRoutingBackend

#: The client the plugin registers. Module-level, so that the registry, rebuilt whenever plugins change,
#: keeps handing out the same object and its pooled connections survive the rebuild.
backend = OpenAIHTTPBackend()
#: The backend of ``openai/`` model strings: ``backend`` for most requests, litellm for the rest.
openai_backend = OpenAIRoutingBackend(backend)

#: The prefix of the model strings ``openai_backend`` serves once the plugin is installed.
OPENAI_PREFIX = "openai/"


@hookimpl
def register_lm_backends(register: RegisterLMBackend) -> None:
    """Offer ``"openai_http:openai"`` for ``openai/...``, ``"openai_http:openai_http"`` for ``openai-http/``.

    ``openai/`` is longer than the built-in litellm backend's empty prefix, so installing the plugin makes
    the lean client send the ``openai/`` requests it can send as litellm would (see
    ``bestofn_openai_http.routing``); ``LM(..., backend="litellm:litellm")`` keeps an LM on litellm.
    ``openai-http/`` always uses the lean client, and refuses what it cannot send.
    """
    register(openai_backend, name="openai", prefixes=(OPENAI_PREFIX,))
    register(backend, name="openai_http", prefixes=(PREFIX,))
