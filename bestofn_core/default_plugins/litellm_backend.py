"""The built-in LM backend: litellm, for any provider's ``provider/model`` string.

Registered like any external plugin, claiming every model string as the fallback backend. litellm is
imported on the first request, not at import time, and its own retries and cache are turned off:
the kernel retries and caches, the same way for every backend.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import warnings
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
from bestofn_core.lm.credentials import is_secret
from bestofn_core.protocols import LMRequest, LMResponse

_litellm: Any = None

#: ``litellm.acompletion`` builds each request in a worker thread (``loop.run_in_executor``) and then awaits
#: the coroutine that thread returns: its dispatch method (``OpenAIChatCompletion.acompletion``,
#: ``BaseLLMHTTPHandler.async_completion``, ...). An attempt cancelled during that step (BestOfN's early
#: stop, a deadline, a batch stopping) leaves that coroutine unstarted: no request was sent and nothing
#: leaks, but Python warns "coroutine ... was never awaited" when it is collected, and nothing outside
#: litellm can reach it to close it. Those warnings, and only those (litellm's dispatch methods, by
#: name), are silenced.
UNSTARTED_DISPATCH_WARNING = (
    r"coroutine '([\w<>]+\.)*(acompletion\w*|_?async_completion|async_streaming)' was never awaited"
)


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
    """Sends requests with ``litellm.acompletion`` (``atext_completion`` for text models); supports ``n``.

    What each model accepts is what litellm reports for it (as DSPy asks): ``supported_params`` and
    ``supports_response_schema`` decide whether ``JSONAdapter`` sends a JSON schema, JSON mode or no
    ``response_format`` at all.
    """

    supports_n = True
    supports_text_completions = True

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
        _ignore_unstarted_dispatch_warnings()
        extra: dict[str, Any] = {}
        if request.timeout is not None:
            extra["timeout"] = request.timeout
        try:
            if request.model_type == "text":
                response = await litellm.atext_completion(
                    model=_text_completion_model(request.model),
                    prompt=text_prompt(request.messages),
                    num_retries=0,
                    **request.params,
                    **request.credentials,
                    **extra,
                )
            else:
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
        outputs = [_choice_text(choice) for choice in choices]
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


def text_prompt(messages: list[dict[str, Any]]) -> str:
    """The one prompt a text-completion model gets for chat ``messages``: DSPy's layout.

    The messages' contents, separated by blank lines, then ``BEGIN RESPONSE:``.
    """
    return "\n\n".join([*(str(message.get("content") or "") for message in messages), "BEGIN RESPONSE:"])


def _text_completion_model(model: str) -> str:
    # as DSPy sends text models: litellm's OpenAI text-completion route, for any provider prefix
    return f"text-completion-openai/{model.split('/', 1)[-1]}"


def _choice_text(choice: Any) -> str:
    message = choice.get("message")
    if message is not None:
        return message.get("content") or ""
    return choice.get("text") or ""


def _ignore_unstarted_dispatch_warnings() -> None:
    """Install the filter for ``UNSTARTED_DISPATCH_WARNING`` unless it is there.

    Checked on each request, not once: ``warnings.catch_warnings()`` blocks (pytest runs every test in
    one) restore the filter list on exit, dropping a filter added inside them.
    """
    for action, message, *_ in warnings.filters:
        if action == "ignore" and getattr(message, "pattern", None) == UNSTARTED_DISPATCH_WARNING:
            return
    warnings.filterwarnings("ignore", message=UNSTARTED_DISPATCH_WARNING, category=RuntimeWarning)


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


def _is_local_failure(error: BaseException) -> bool:
    """A Python error raised on this side (TypeError, KeyError, ...), not by the HTTP or provider stack.

    OS errors (connections, timeouts) are network failures, worth a retry; so are errors of the client
    libraries (litellm, openai, httpx), which carry what the provider answered.
    """
    return type(error).__module__ == "builtins" and not isinstance(error, OSError)


def _is_invalid_url(error: BaseException) -> bool:
    """A request URL the HTTP client refused before connecting (no host, a bad port, not http)."""
    import httpx

    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return True
    aiohttp = sys.modules.get("aiohttp")  # litellm's default transport, when it is the one in use
    return aiohttp is not None and isinstance(error, aiohttp.InvalidURL)


def translate_error(exc: Exception, model: str) -> LMError:
    """Map a litellm/httpx exception to the kernel's error classes (transient ones are retried)."""
    litellm = _import_litellm()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = f"{model}: {type(exc).__name__}: {_short(exc)}"
    if isinstance(exc, litellm.Timeout) or status == 408:
        return LMTimeoutError(message, model=model, status_code=status)
    chain = exception_chain(exc)
    if any(_MISSING_KEY.search(str(error)) for error in chain):
        # litellm reports a key it could not find as a server error (500) or a connection error, both
        # retried with backoff; no retry can find it, so fail at once and say which variable to set
        return LMAuthenticationError(_missing_key_message(model, exc), model=model, status_code=status)
    bad_url = next((error for error in chain if _is_invalid_url(error)), None)
    if bad_url is not None:
        # litellm reports it as a server error (500), retried; no retry can fix a URL. The kernel checks
        # api_base at LM(...), so this one came from the environment, where litellm looks when none is given
        return LMRequestError(
            f"{model}: the server URL is not valid ({type(bad_url).__name__}: {_short(bad_url)}): check "
            "api_base, or the environment variable litellm reads when none is given (OPENAI_API_BASE or "
            "OPENAI_BASE_URL for openai/ models, <PROVIDER>_API_BASE for others)",
            model=model,
        )
    if any(_is_transport_failure(error) for error in chain):
        # litellm reports these as an InternalServerError with a made-up status 500 and a message that
        # hides the cause ("Connection error."): no HTTP status was seen, so name the root cause instead
        root = chain[-1]
        message += f" (cause: {type(root).__name__}: {' '.join(_short(root).split())})"
        return LMConnectionError(message, model=model)
    root = chain[-1]
    if _is_local_failure(root):
        # litellm wraps a failure of its own or of the arguments (a TypeError building the request, say)
        # in APIConnectionError or a made-up 500, both retryable: nothing was sent, a retry fails the same
        return LMRequestError(
            f"{model}: the request failed before reaching the provider ({type(root).__name__}: "
            f"{' '.join(_short(root).split())}). Nothing was sent, so it is not retried: check the LM's "
            "parameters and the messages.",
            model=model,
        )
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


#: How litellm and the clients it wraps say that no API key was found (OpenAI's client: "Missing
#: credentials", "The api_key client option must be set"; Anthropic: "Missing Anthropic API Key"; Gemini:
#: "Missing Gemini API key").
_MISSING_KEY = re.compile(
    r"\bmissing (\w+ )*(api[ _-]?key|credentials)\b|api_key client option must be set", re.I
)


def _missing_key_message(model: str, exc: Exception) -> str:
    try:
        wanted = _import_litellm().validate_environment(model).get("missing_keys") or []
    except Exception:  # an unknown provider: say what litellm said
        wanted = []
    variables = [name for name in wanted if isinstance(name, str) and is_secret(name)]
    where = f"litellm reads {' / '.join(variables)} from the environment" if variables else "none was given"
    return (
        f"{model}: no API key ({where}): set it, or pass LM(..., api_key=...); a local server that checks "
        f'no key accepts any, e.g. api_key="none". ({type(exc).__name__}: {" ".join(_short(exc).split())})'
    )


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
