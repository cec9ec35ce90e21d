"""``OpenAIRoutingBackend``: ``openai/`` strings go to the lean client, unless only litellm can send them.

Installed, this plugin serves ``openai/...`` model strings (its ``"openai/"`` prefix is longer than the
built-in litellm backend's empty one), the way DSPy 3.4's default engine prefers its lean client for the
requests that client can represent. A request this plugin's client would send differently from litellm,
or not at all, goes to litellm unchanged: a reasoning model (litellm rewrites ``max_tokens`` for those), a
parameter litellm interprets itself (``drop_params``, ``metadata``, ``extra_body``, ``mock_response``,
provider-specific sampling settings, ...), a pydantic class as ``response_format``, or a connection setting
of another provider (``api_version``, ``aws_region_name``, ...). So installing the plugin changes which
client sends a request, and how much CPU that costs, never what the request says or whether it works.
"""

from __future__ import annotations

import logging
from typing import Any

from bestofn_core.errors import ConfigurationError
from bestofn_core.protocols import LMBackend, LMRequest, LMResponse, backend_capability
from bestofn_openai_http.backend import ACCEPTED_CREDENTIALS, OpenAIHTTPBackend, wire_model

__all__ = ["FALLBACK_BACKEND", "SENT_AS_IS", "OpenAIRoutingBackend", "litellm_only_reason"]

logger = logging.getLogger(__name__)

#: The backend that sends what the lean client does not: the built-in litellm backend.
FALLBACK_BACKEND = "litellm:litellm"

#: Chat-completions parameters the lean client puts in the request body exactly as litellm does for an
#: OpenAI-compatible chat model (litellm's own list of OpenAI parameters, less those it rewrites or
#: consumes). ``stream`` is here so that the lean client can refuse it with a clear error: the kernel
#: needs whole responses, through either client. ``prompt_cache_key`` is not: its name makes the kernel
#: treat it as a secret (a connection setting), so it goes to litellm.
SENT_AS_IS: frozenset[str] = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "web_search_options",
    }
)


def litellm_only_reason(request: LMRequest) -> str | None:
    """Why ``request`` must go to litellm rather than the lean client, or ``None`` when it need not.

    The reasons, checked in this order: a text-completion model (``LM(..., model_type="text")``: the lean
    client sends chat completions only), a connection setting the lean client does not know, an OpenAI
    reasoning model (``o1``, ``o3``, ``o4-mini``, ``gpt-5``, ...: litellm rewrites their parameters), a
    parameter not in ``SENT_AS_IS``, and a ``response_format`` that is not a plain JSON object.
    """
    if request.model_type != "chat":
        return f"model_type={request.model_type!r}"
    unknown = sorted(name for name in request.credentials if name not in ACCEPTED_CREDENTIALS)
    if unknown:
        return f"connection setting(s) {', '.join(unknown)}"
    name = wire_model(request.model).rsplit("/", 1)[-1].lower()
    if (len(name) > 1 and name[0] == "o" and name[1].isdigit()) or "gpt-5" in name:
        return f"the reasoning model {name!r}"
    extra = sorted(name for name in request.params if name not in SENT_AS_IS)
    if extra:
        return f"parameter(s) {', '.join(extra)}"
    response_format = request.params.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        return f"response_format={type(response_format).__name__}"
    return None


class OpenAIRoutingBackend:
    """The backend of ``openai/`` model strings: ``lean`` sends a request unless only litellm can.

    Registered by this plugin as ``"openai_http:openai"`` for the prefix ``"openai/"``. Which requests go
    to litellm is decided per request by ``litellm_only_reason``, and logged at DEBUG level.

    Args:
        lean: the client that sends most requests (the plugin's shared ``OpenAIHTTPBackend``, so both of
            the plugin's backends use one connection pool per event loop).
        fallback: the ``"plugin:name"`` of the backend that sends the rest, looked up in the registry when
            first needed.
    """

    #: One request can return several choices (the OpenAI ``n`` parameter): true of both clients.
    supports_n = True
    #: Text-completion models (``model_type="text"``) are sent, through litellm.
    supports_text_completions = True

    def __init__(self, lean: OpenAIHTTPBackend, *, fallback: str = FALLBACK_BACKEND) -> None:
        self.lean = lean
        self.fallback = fallback

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` with the lean client, or the fallback when ``litellm_only_reason`` says so."""
        reason = litellm_only_reason(request)
        if reason is None:
            return await self.lean.acomplete(request)
        logger.debug("%s: sent through %s because of %s", request.model, self.fallback, reason)
        return await self._fallback_backend(reason, request.model).acomplete(request)

    def supports_response_schema(self, model: str) -> bool:
        """What the fallback backend (litellm) says of ``model``, so that installing this plugin never
        changes the ``response_format`` JSONAdapter asks for; ``False`` when that backend is unavailable."""
        return bool(self._fallback_capability("supports_response_schema", model, False))

    def supported_params(self, model: str) -> frozenset[str]:
        """What the fallback backend (litellm) says of ``model``; the parameters the lean client sends as
        they are (``SENT_AS_IS``) when that backend is unavailable."""
        return frozenset(self._fallback_capability("supported_params", model, SENT_AS_IS))

    def _fallback_capability(self, name: str, model: str, default: Any) -> Any:
        from bestofn_core.errors import UnknownNameError
        from bestofn_core.plugins import get_registry

        try:
            backend = get_registry().get("lm_backend", self.fallback)
        except UnknownNameError:
            return default
        return backend_capability(backend, name, model, default)

    def _fallback_backend(self, reason: str, model: str) -> LMBackend:
        from bestofn_core.errors import UnknownNameError
        from bestofn_core.plugins import get_registry

        try:
            backend: LMBackend = get_registry().get("lm_backend", self.fallback)
        except UnknownNameError:
            raise ConfigurationError(
                f"The request for {model} needs the {self.fallback} backend because of {reason}, which the "
                f"openai_http client does not send, but that backend is not available (blocked with "
                "BESTOFN_BLOCK_PLUGINS?). Unblock it, or remove that setting from the LM."
            ) from None
        return backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lean={self.lean!r}, fallback={self.fallback!r})"
