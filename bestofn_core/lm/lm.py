"""LM: a BaseLM whose requests go to the backend plugin that claims its model string."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bestofn_core._validation import validate_arguments
from bestofn_core.errors import ConfigurationError
from bestofn_core.lm.base import _ATTRIBUTES, BaseLM, LMArguments
from bestofn_core.lm.credentials import is_connection_setting, is_secret, scrub_exception, secret_values
from bestofn_core.protocols import LMBackend, LMRequest, LMResponse
from bestofn_core.settings import settings

logger = logging.getLogger(__name__)

_OPT_IN = "with bestofn_core.context(allow_api_base_from_file=True): program.load(path)"


class LM(BaseLM):
    """A language model, e.g. ``LM("openai/gpt-4o-mini", api_base=..., api_key=...)``.

    The backend is chosen through the plugin registry: the backend registering the longest prefix of
    ``model`` wins, with the built-in litellm backend (which claims every model string) as the fallback.
    Pass ``backend="plugin:name"`` to choose one explicitly.
    See ``BaseLM`` for the other arguments.
    """

    def __init__(self, model: str, *, backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.backend_ref = backend
        self._backend: LMBackend | None = None
        # resolve now so an unclaimed model string fails at construction, not at the first call
        self._resolve_backend()

    def _resolve_backend(self) -> LMBackend:
        if self._backend is None:
            from bestofn_core.plugins import get_registry

            registration = get_registry().lm_backend_for(self.model, backend=self.backend_ref)
            self._backend = registration.obj
        return self._backend

    @property
    def backend(self) -> LMBackend:
        """The backend object requests are sent to."""
        return self._resolve_backend()

    @property
    def supports_n(self) -> bool:
        """Whether the backend can return ``n`` choices in one request."""
        return bool(getattr(self.backend, "supports_n", False))

    @property
    def supports_response_schema(self) -> bool:
        """Whether the backend honours a JSON-schema ``response_format`` (its optional attribute)."""
        return bool(getattr(self.backend, "supports_response_schema", False))

    @property
    def preferred_adapter(self) -> str | None:
        """The adapter the backend says suits its models (its optional attribute), e.g. ``"compact"``."""
        preferred = getattr(self.backend, "preferred_adapter", None)
        return preferred if isinstance(preferred, str) and preferred else None

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` through the backend."""
        try:
            return await self.backend.acomplete(request)
        except Exception as exc:
            # a provider's error may echo the key or headers back: keep them out of messages and logs
            scrub_exception(exc, secret_values(request.credentials))
            raise

    def copy(self, **kwargs: Any) -> LM:
        """See ``BaseLM.copy``; changing ``model`` or ``backend`` picks the backend again."""
        backend = kwargs.pop("backend", self.backend_ref)
        new = super().copy(**kwargs)
        assert isinstance(new, LM)
        if new.model != self.model or backend != self.backend_ref:
            new.backend_ref = backend
            new._backend = None
            new._resolve_backend()
        return new

    def dump_state(self) -> dict[str, Any]:
        """Settings without secrets (see ``BaseLM.dump_state``), plus the backend reference."""
        state = super().dump_state()
        if self.backend_ref is not None:
            state["backend"] = self.backend_ref
        return state

    def __getstate__(self) -> dict[str, Any]:
        # backends hold clients and locks: pickle the reference, resolve again after loading
        state = super().__getstate__()
        state["_backend"] = None
        return state


def lm_from_state(saved: Any, current: Any = None) -> Any:
    """The LM a predictor gets from LM settings read from a saved file, which is not trusted.

    With a ``current`` LM, the saved settings are applied to a copy of it, which keeps its credentials;
    without one, a new ``LM`` is built from them (keys then come from the environment). A file never
    sets a secret (``api_key``, headers, tokens: ignored with a warning), and it does not choose where
    requests go: ``api_base``, ``base_url`` and other connection settings (see
    ``credentials.is_connection_setting``), a different ``backend``, and a model of another provider
    (another ``provider/`` prefix) are ignored with a warning naming the setting, unless
    ``settings.allow_api_base_from_file`` is true. Bad values raise ``ConfigurationError`` naming the field.
    """
    if not isinstance(saved, Mapping):
        raise ConfigurationError(
            f"The saved LM settings ('lm') must be a mapping of settings, got {type(saved).__name__}."
        )
    state = dict(saved)
    for name in [name for name in state if is_secret(name)]:
        del state[name]  # never log the value
        logger.warning(
            "Ignored %r in the saved LM settings: credentials are never loaded from a file; "
            "they come from your LM or the environment.",
            name,
        )
    if not settings.allow_api_base_from_file:
        _drop_connection_settings(state, current)
    if current is not None and hasattr(current, "copy"):
        attributes = {name: state.get(name, getattr(current, name, None)) for name in _ATTRIBUTES}
        sampling = {name: state.get(name, current.kwargs.get(name)) for name in ("temperature", "max_tokens")}
        validate_arguments(LMArguments, "the saved LM settings", **attributes, **sampling)
        return current.copy(**state)
    model = state.pop("model", None)
    if not isinstance(model, str):
        raise ConfigurationError(f"The saved LM settings have no model string (model: {model!r}).")
    return LM(model, **state)


def _drop_connection_settings(state: dict[str, Any], current: Any) -> None:
    kept = dict(getattr(current, "kwargs", None) or {})
    for name in sorted(name for name in state if is_connection_setting(name)):
        value = state.pop(name)
        if value != kept.get(name):
            _warn_ignored(name, value, kept.get(name))
    if current is None:
        return
    model, current_model = state.get("model"), getattr(current, "model", None)
    provider = _provider(model)
    other_provider = provider is None or provider != _provider(current_model)
    if isinstance(model, str) and model != current_model and other_provider:
        del state["model"]
        _warn_ignored("model", model, current_model, why="it is served by another provider")
    if "backend" in state and state["backend"] != getattr(current, "backend_ref", None):
        _warn_ignored("backend", state.pop("backend"), getattr(current, "backend_ref", None))


def _provider(model: Any) -> str | None:
    # "openai/gpt-4o" -> "openai"; without a prefix the backend infers the provider: unknown
    if not isinstance(model, str) or "/" not in model:
        return None
    return model.split("/", 1)[0]


def _warn_ignored(name: str, value: Any, kept: Any, why: str = "") -> None:
    keeps = f"the LM keeps {name}={kept!r}" if kept is not None else "the backend's default applies"
    logger.warning(
        "Ignored %s=%r from the saved LM settings%s: a loaded file does not choose where requests go "
        "(%s). If you trust the file, load it inside `%s`.",
        name,
        value,
        f" ({why})" if why else "",
        keeps,
        _OPT_IN,
    )
