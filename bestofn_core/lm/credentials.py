"""Which LM settings are secrets or choose where requests go, and how they are kept out of what is shown.

Secrets (``api_key``, headers, tokens, ...) and routing settings (``api_base``, ``model_list``, ...) travel
to the backend in ``LMRequest.credentials`` only. Everything the kernel writes or shows (saved files,
``repr``, history, logs, errors) goes through one masker: ``without_secrets`` for settings, ``mask_urls``
for text that may hold a URL with a key in it, ``redact`` and ``scrub_exception`` for errors.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bestofn_core.errors import LMError, LMTransientError, exception_chain, reachable_objects

#: Settings that choose where a request goes, or who it goes as: the host, the provider and its
#: deployment, litellm's routing (``model_list``, ``fallbacks``, routers), cloud accounts and identities,
#: proxies, TLS verification, client objects, and mock answers (no request at all). Read from litellm's
#: ``completion()`` and its connection, dispatch and routing options. A loaded file may not set any of
#: them (nor a name ending as in ``ROUTING_NAME_ENDINGS``) unless the user opts in
#: (``settings.allow_lm_from_file``).
ROUTING_SETTINGS: frozenset[str] = frozenset(
    {
        # the host and the API
        "api_base",
        "base_url",
        "api_version",
        "responses_api_version",
        "organization",
        "url",
        "endpoint",
        "host",
        # the provider and its deployment
        "custom_llm_provider",
        "azure",
        "use_litellm_proxy",
        "use_in_pass_through",
        "use_psc_endpoint_format",
        "deployment_id",
        "engine",
        "provider_config",
        "model_alias_map",
        # litellm routing: other models and deployments to send the request to
        "model_list",
        "fallbacks",
        "context_window_fallback_dict",
        "silent_model",
        "routing_strategy",
        "allowed_model_region",
        "enable_tag_filtering",
        "fastest_response",
        "provider_affinity_header",
        "switchyard_router_config",
        "auto_router_config",
        "auto_router_config_path",
        "auto_router_default_model",
        "auto_router_embedding_model",
        "complexity_router_config",
        "complexity_router_default_model",
        "adaptive_router_config",
        "adaptive_router_default_model",
        "quality_router_config",
        "quality_router_default_model",
        # accounts and identities (whose credentials are used)
        "tenant_id",
        "client_id",
        "azure_username",
        "azure_scope",
        "account_id",
        "workspace",
        "space_id",
        "configurable_clientside_auth_params",
        "use_xai_oauth",
        "chatgpt_auth_file",
        "github_copilot_auth_type",
        "github_copilot_user_session",
        "credential_provider",
        # workload identity federation: the identity the request goes as
        "anthropic_federation_rule_id",
        "anthropic_organization_id",
        "anthropic_identity_source",
        "anthropic_issuer_subject",
        "anthropic_issuer_audience",
        "openai_identity_provider_id",
        # transport: connections, proxies, TLS
        "client",
        "shared_session",
        "ssl",
        "ssl_verify",
        "use_ssl",
        "proxy_server_request",
        # no request at all: the answer comes from the setting
        "mock_response",
        "mock_timeout",
        "mock_tool_calls",
    }
)

#: Name endings that make a setting a routing setting too (as a whole ``_``-separated word or the whole
#: name): the many provider-specific hosts, regions, projects and identities (``aws_region_name``,
#: ``aws_bedrock_runtime_endpoint``, ``vertex_location``, ``sagemaker_base_url``, ``https_proxy``, ...).
ROUTING_NAME_ENDINGS: tuple[str, ...] = (
    "base",
    "url",
    "uri",
    "endpoint",
    "host",
    "proxy",
    "provider",
    "region",
    "region_name",
    "location",
    "project",
    "project_id",
    "project_name",
    "organization",
    "deployment",
    "deployment_id",
    "deployment_ids",
    "deployments",
    "tenant_id",
    "client_id",
    "account_id",
    "workspace_id",
    "engine_id",
    "profile_name",
    "role_name",
    "role_arn",
    "session_name",
    "external_id",
    "service_account",
    "ca_certs",
    "client",
    "bucket_name",
    "bucket_owner",
)

_ROUTING_ENDING = re.compile(r"(?:^|_)(?:" + "|".join(ROUTING_NAME_ENDINGS) + r")$", re.I)

# Environment variables that name the server, region or cloud project of a provider's requests
# (OPENAI_BASE_URL, OPENAI_API_BASE, AZURE_API_BASE, AWS_REGION_NAME, VERTEXAI_LOCATION, ...). Narrower
# than ROUTING_NAME_ENDINGS: a variable that changes with every shell (SSH_CLIENT) must not key the cache.
_SERVER_VARIABLE = re.compile(
    r"_(?:API_BASE|BASE_URL|API_URL|ENDPOINT|ENDPOINT_URL|API_HOST|REGION|REGION_NAME|LOCATION|PROJECT)$",
    re.I,
)

# anything that looks like a credential, including provider-specific ones (aws_secret_access_key, ...)
_SECRET_PATTERN = re.compile(r"key|secret|token|password|passwd|credential|authorization|header|cookie", re.I)
# query parameters that carry a key without saying so (Azure SAS signatures, Azure Functions codes)
_SECRET_QUERY_NAMES = frozenset({"sig", "signature", "code", "auth", "pass", "pwd"})

# Parameters whose mappings are data (JSON schemas, tool definitions), not settings: a schema property
# named "token" or "password" is a field name, kept as it is.
_DATA_PARAMS = frozenset({"response_format", "tools", "functions", "tool_choice", "json_schema"})

#: Placeholder that replaces a secret found in an error message, a URL or a log record.
REDACTED = "[REDACTED]"

# Shorter strings are not treated as secrets when redacting text: replacing every "abc" in an error
# message would garble it, and no real API key or token is that short.
_MIN_SECRET_LENGTH = 8

# scheme://user:password@ or scheme://token@ (a key passed as the URL's user name)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@")
# ?name=value and &name=value in a URL
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&#;\s\"'<>]*)")


def is_secret(name: str) -> bool:
    """Whether a keyword argument holds a secret (API keys, tokens, auth headers, cookies, ...).

    Token *counts* (``max_tokens``, ``max_output_tokens``, ``budget_tokens``, ...) are sampling
    parameters, not secrets: a name ending in ``tokens`` is never one.
    """
    return bool(_SECRET_PATTERN.search(name)) and not name.lower().endswith("tokens")


def is_connection_setting(name: str) -> bool:
    """Whether a keyword argument chooses where requests go (see ``ROUTING_SETTINGS``).

    A saved file may not set these unless the user opts in (``settings.allow_lm_from_file``).
    """
    return name.lower() in ROUTING_SETTINGS or bool(_ROUTING_ENDING.search(name))


def route_key(credentials: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What decides where a request goes, for the response cache's key.

    The request's routing settings (``api_base``, ``model_list``, ``custom_llm_provider``, ...; secrets
    dropped, URLs masked) and every environment variable that names a provider's server, region or
    project (``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, ``AWS_REGION_NAME``, ``VERTEXAI_LOCATION``, ...),
    which backends read when the request names none: the same prompt sent to another server is another
    cache entry.
    """
    route = without_secrets(
        {name: value for name, value in credentials.items() if is_connection_setting(name)}
    )
    env = os.environ if environ is None else environ
    servers = {
        name: mask_urls(value)
        for name, value in env.items()
        if _SERVER_VARIABLE.search(name) and not is_secret(name)
    }
    if servers:
        route["environment"] = servers
    return route


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split LM kwargs into (sampling/request params, credentials: secrets and routing settings)."""
    params: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    for name, value in kwargs.items():
        if is_secret(name) or is_connection_setting(name):
            credentials[name] = value
        else:
            params[name] = value
    return params, credentials


def without_secrets(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` fit to save, show or log: no secret at any depth, URLs masked.

    A setting with a secret-looking name is dropped wherever it is (``api_key``, an ``api_key`` inside a
    ``model_list`` entry, an ``Authorization`` header); a key inside a URL (``http://user:KEY@host``,
    ``?api-key=KEY``) is replaced by ``[REDACTED]``. Connection settings such as ``api_base`` are kept.
    JSON schemas and tool definitions (``response_format``, ``tools``) are data: their field names are
    not settings, so they are kept whole (URLs in them masked).
    """
    return {
        name: _public(value, data=name in _DATA_PARAMS)
        for name, value in kwargs.items()
        if not is_secret(str(name))
    }


def _public(value: Any, data: bool = False) -> Any:
    if isinstance(value, str):
        return mask_urls(value)
    if isinstance(value, Mapping):
        return {key: _public(item, data) for key, item in value.items() if data or not is_secret(str(key))}
    if isinstance(value, list):
        return [_public(item, data) for item in value]
    if isinstance(value, tuple):
        return tuple(_public(item, data) for item in value)
    return value


def nested_copy(value: Any) -> Any:
    """A copy of ``value`` whose dicts, lists, tuples and sets are new at every depth.

    What the kernel hands a backend: a backend (litellm writes ``api_key`` into ``model_list`` entries)
    can then change its request without changing the LM's settings. Other objects (clients, callables)
    are shared, not copied.
    """
    if isinstance(value, dict):
        return {key: nested_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nested_copy(item) for item in value]
    if type(value) is tuple:  # not a named tuple: its fields are its own
        return tuple(nested_copy(item) for item in value)
    if isinstance(value, set):
        return {nested_copy(item) for item in value}
    return value


def mask_urls(text: str) -> str:
    """``text`` with the key of every URL in it replaced by ``[REDACTED]``.

    That is the password of ``scheme://user:password@host`` (the user name when there is no password,
    as in ``https://TOKEN@host``), and the value of each query parameter with a secret-looking name
    (``?api-key=...``, ``&token=...``, ``&sig=...``). Text without ``://`` or ``=`` is returned as is.
    """
    if "://" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_mask_query_parameter, text)
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match["userinfo"].partition(":")
    if match["userinfo"].startswith(REDACTED) or user.endswith(REDACTED):
        return match[0]
    return f"{match['scheme']}{user}:{REDACTED}@" if sep else f"{match['scheme']}{REDACTED}@"


def _mask_query_parameter(match: re.Match[str]) -> str:
    name = match["name"]
    if not match["value"] or not (is_secret(name) or name.lower() in _SECRET_QUERY_NAMES):
        return match[0]
    return f"{match['lead']}{name}={REDACTED}"


def _url_secrets(text: str) -> list[str]:
    """The keys a URL carries (user name or password, secret query values), to redact from errors."""
    found: list[str] = []
    for match in _USERINFO.finditer(text):
        user, sep, password = match["userinfo"].partition(":")
        found.append(password if sep else user)
    for match in _QUERY_PARAMETER.finditer(text):
        if is_secret(match["name"]) or match["name"].lower() in _SECRET_QUERY_NAMES:
            found.append(match["value"])
    return found


def secret_values(credentials: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret strings a request may carry: to be redacted from any text shown to the user.

    That is every string under a secret-looking name at any depth of ``credentials`` (header mappings
    and ``model_list`` entries included, and each word of a header value, so the token of
    ``"Bearer <token>"`` is found alone too), the keys inside URLs (``http://user:KEY@host``,
    ``?api-key=KEY``), plus the value of every environment variable with a secret-looking name
    (``OPENAI_API_KEY``, ...), which backends read when no key is passed, and the keys inside URLs of
    the environment (``OPENAI_BASE_URL``, ...). Strings shorter than 8 characters are left out.
    """
    found: set[str] = set()
    for name, value in credentials.items():
        found.update(_secret_strings(value, under_secret=is_secret(str(name))))
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if is_secret(name):
            found.add(value)
        elif "://" in value:
            found.update(_url_secrets(value))
    words = {word for value in found for word in value.split()}
    return {value for value in found | words if len(value) >= _MIN_SECRET_LENGTH}


def _secret_strings(value: Any, *, under_secret: bool) -> list[str]:
    if isinstance(value, str):
        return [value] if under_secret else _url_secrets(value)
    if isinstance(value, bytes):
        return _secret_strings(value.decode("utf-8", "replace"), under_secret=under_secret)
    if isinstance(value, Mapping):
        return [
            text
            for key, item in value.items()
            for text in _secret_strings(item, under_secret=under_secret or is_secret(str(key)))
        ]
    if isinstance(value, list | tuple | set | frozenset):
        return [text for item in value for text in _secret_strings(item, under_secret=under_secret)]
    return []


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``[REDACTED]``, URLs masked."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: "Bearer X" before "X"
        text = text.replace(secret, REDACTED)
    return mask_urls(text)


def holds_secret(root: object, secrets: Iterable[str]) -> bool:
    """Whether any string (or bytes) reachable from ``root`` contains one of ``secrets``.

    Follows everything ``errors.reachable_objects`` does (attributes, ``__dict__``, ``args``, causes,
    contexts, containers: a provider's request object and its headers too). A graph too large to walk
    whole counts as holding one: the answer must never be a false "no".
    """
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        return False
    encoded = [secret.encode() for secret in secrets]
    walked = reachable_objects(root)
    for obj in walked:
        if isinstance(obj, str):
            if any(secret in obj for secret in secrets):
                return True
        elif isinstance(obj, bytes | bytearray) and any(secret in obj for secret in encoded):
            return True
    return walked.truncated


def scrub_exception(exc: Exception, secrets: Iterable[str], *, model: str | None = None) -> Exception:
    """The exception to raise in place of ``exc``, from which no secret can be reached.

    A provider's error can echo the request's key or headers back (some proxies do), and the HTTP
    client's exception holds the request it sent, ``Authorization`` header included; the kernel's error
    would carry both into logs, tracebacks and ``BestOfNError``. So ``exc``'s message (``args`` and
    ``.message``) is redacted in place, the exception chain is cut when anything reachable from a cause
    or context holds a secret, and when ``exc`` itself still holds one (an attribute holding the request),
    a kernel error with the redacted message takes its place: the same class for the kernel's own
    errors, else ``LMTransientError``/``LMError`` as ``exc`` was one or not.
    """
    secrets = [secret for secret in secrets if secret]
    exc.args = tuple(redact(arg, secrets) if isinstance(arg, str) else arg for arg in exc.args)
    message = getattr(exc, "message", None)  # some clients' exceptions print .message, not args
    if isinstance(message, str):
        with contextlib.suppress(AttributeError):
            exc.message = redact(message, secrets)  # type: ignore[attr-defined]
    chain = exception_chain(exc, follow_suppressed=True)
    if len(chain) > 1 and any(holds_secret(error, secrets) for error in chain[1:]):
        exc.__cause__ = None
        exc.__context__ = None
        exc.__suppress_context__ = True
    if not holds_secret(exc, secrets):
        return exc
    return _replacement(exc, redact(str(exc), secrets), model)


def _replacement(exc: Exception, text: str, model: str | None) -> Exception:
    if isinstance(exc, LMError) and type(exc).__module__ == LMError.__module__:
        replacement: LMError = type(exc)(text, model=exc.model, status_code=exc.status_code)
        if isinstance(exc, LMTransientError) and isinstance(replacement, LMTransientError):
            replacement.retry_after = exc.retry_after
        return replacement
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    wrapper = LMTransientError if isinstance(exc, LMTransientError) else LMError
    prefix = f"{model}: " if model and not text.startswith(f"{model}:") else ""
    return wrapper(f"{prefix}{type(exc).__name__}: {text}", model=model, status_code=status)
