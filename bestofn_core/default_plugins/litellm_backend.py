"""The built-in LM backend: litellm, for any provider's ``provider/model`` string.

Registered like any external plugin, claiming every model string as the fallback backend. litellm is
imported on the first request, not at import time, and its own retries and cache are turned off:
the kernel retries and caches, the same way for every backend.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from bestofn_core._runner import run_in_thread
from bestofn_core.errors import (
    LMAuthenticationError,
    LMConnectionError,
    LMError,
    LMRateLimitError,
    LMRequestError,
    LMServerError,
    LMTimeoutError,
    exception_chain,
)
from bestofn_core.hookspecs import hookimpl
from bestofn_core.protocols import LMRequest, LMResponse

_litellm: Any = None


def _import_litellm() -> Any:
    global _litellm
    if _litellm is None:
        # never fetch the model cost map from the network at import
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        _litellm = litellm
    return _litellm


class LiteLLMBackend:
    """Sends requests with ``litellm.acompletion``; supports ``n``.

    What each model accepts is what litellm reports for it (as DSPy asks): ``supported_params`` and
    ``supports_response_schema`` decide whether ``JSONAdapter`` sends a JSON schema, JSON mode or no
    ``response_format`` at all.
    """

    supports_n = True

    def supports_response_schema(self, model: str) -> bool:
        """``litellm.supports_response_schema`` for ``model`` (its provider is the part before ``/``)."""
        return _capabilities(model)[1]

    def supported_params(self, model: str) -> frozenset[str]:
        """``litellm.get_supported_openai_params`` for ``model`` (empty for a provider litellm lacks)."""
        return _capabilities(model)[0]

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` through litellm and translate its errors into the kernel's."""
        # the first import takes seconds: do it off the event loop so other tasks keep running
        litellm = _litellm if _litellm is not None else await run_in_thread(_import_litellm)
        extra: dict[str, Any] = {}
        if request.timeout is not None:
            extra["timeout"] = request.timeout
        try:
            response = await litellm.acompletion(
                model=request.model,
                messages=request.messages,
                num_retries=0,
                **request.params,
                **request.credentials,
                **extra,
            )
        except Exception as exc:
            raise translate_error(exc, request.model) from exc
        choices = response.get("choices") or []
        outputs = [(choice["message"].get("content") or "") for choice in choices]
        usage = response.get("usage") or {}
        return LMResponse(
            outputs=outputs,
            usage={
                key: int(usage.get(key) or 0)
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
                if key in usage
            },
            model=response.get("model"),
            finish_reasons=[choice.get("finish_reason") for choice in choices],
        )


@functools.lru_cache(maxsize=256)
def _capabilities(model: str) -> tuple[frozenset[str], bool]:
    """(supported parameters, supports a response schema) as litellm's model map says; read once."""
    litellm = _import_litellm()
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    # litellm raises for a provider or model it does not know: such a model supports nothing litellm knows of
    try:
        params = frozenset(
            litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or ()
        )
    except Exception:
        params = frozenset()
    try:
        schema = bool(litellm.supports_response_schema(model=model, custom_llm_provider=provider))
    except Exception:
        schema = False
    return params, schema


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_transport_failure(error: BaseException) -> bool:
    """A failure below HTTP: no usable response (connection reset, body cut off, or not JSON)."""
    import httpx

    return isinstance(error, httpx.TransportError | ConnectionError | json.JSONDecodeError)


def translate_error(exc: Exception, model: str) -> LMError:
    """Map a litellm/httpx exception to the kernel's error classes (transient ones are retried)."""
    litellm = _import_litellm()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = f"{model}: {type(exc).__name__}: {_short(exc)}"
    if isinstance(exc, litellm.Timeout) or status == 408:
        return LMTimeoutError(message, model=model, status_code=status)
    chain = exception_chain(exc)
    if any(_is_transport_failure(error) for error in chain):
        # litellm reports these as an InternalServerError with a made-up status 500 and a message that
        # hides the cause ("Connection error."): no HTTP status was seen, so name the root cause instead
        root = chain[-1]
        message += f" (cause: {type(root).__name__}: {' '.join(_short(root).split())})"
        return LMConnectionError(message, model=model)
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return LMRateLimitError(message, model=model, status_code=429, retry_after=_retry_after(exc))
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError) or status in (401, 403):
        return LMAuthenticationError(message, model=model, status_code=status)
    if status is not None and status >= 500:
        return LMServerError(message, model=model, status_code=status, retry_after=_retry_after(exc))
    if isinstance(
        exc, litellm.APIConnectionError | litellm.InternalServerError | litellm.ServiceUnavailableError
    ):
        return LMConnectionError(message, model=model, status_code=status)
    if "LLM Provider NOT provided" in str(exc):
        # the built-in backend is the fallback for every model string, so a plugin's model string whose
        # plugin is not installed ends up here: say that, rather than only litellm's provider advice
        return LMRequestError(_unknown_provider_message(model), model=model, status_code=status)
    if status is not None and 400 <= status < 500:
        return LMRequestError(message, model=model, status_code=status)
    return LMConnectionError(message, model=model, status_code=status)


def _unknown_provider_message(model: str) -> str:
    prefix, sep, _ = model.partition("/")
    claimed = f'no installed backend plugin claims "{prefix}/"' if sep else "it has no provider prefix"
    return (
        f"{model}: no backend serves this model string: litellm (the fallback backend) does not know its "
        f"provider, and {claimed}. Install the backend plugin for it, fix the provider prefix "
        f'(e.g. "openai/gpt-4o-mini"), or pass backend="plugin:name" to LM(...); `bestofn plugins` lists '
        "the installed backends and their prefixes."
    )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."


@hookimpl
def register_lm_backends(register: Any) -> None:
    """Register litellm as the fallback backend for every model string."""
    register(LiteLLMBackend(), name="litellm", prefixes=())
