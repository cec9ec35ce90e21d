"""LM: a BaseLM whose requests go to the backend plugin that claims its model string."""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections.abc import Mapping
from typing import Any

from bestofn_core._validation import validate_arguments
from bestofn_core.errors import ConfigurationError
from bestofn_core.lm.base import (
    _ATTRIBUTES,
    BUILTIN_LM_CLASSES,
    DSPY_LM_CLASS_KEY,
    LM_CLASS_KEY,
    BaseLM,
    LMArguments,
)
from bestofn_core.lm.credentials import is_connection_setting, is_secret, without_secrets
from bestofn_core.protocols import (
    DEFAULT_SUPPORTED_PARAMS,
    LMBackend,
    LMRequest,
    LMResponse,
    backend_capability,
)
from bestofn_core.settings import settings

logger = logging.getLogger(__name__)

_OPT_IN = "with bestofn_core.context(allow_lm_from_file=True): program.load(path)"


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
        self._backend_name = ""
        # resolve now so an unclaimed model string fails at construction, not at the first call
        self._resolve_backend()

    def _resolve_backend(self) -> LMBackend:
        if self._backend is None:
            from bestofn_core.plugins import get_registry

            registration = get_registry().lm_backend_for(self.model, backend=self.backend_ref)
            if self.model_type == "text" and not getattr(
                registration.obj, "supports_text_completions", False
            ):
                raise ConfigurationError(
                    f"{self.model}: model_type='text' needs a backend that sends text completions, and "
                    f"{registration.qualified_name} sends chat completions only. Use model_type='chat', or "
                    "choose a backend that declares supports_text_completions (backend='litellm:litellm')."
                )
            self._backend = registration.obj
            self._backend_name = registration.qualified_name
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
        """Whether this model honours a JSON-schema ``response_format``, as its backend declares
        (the litellm backend asks ``litellm.supports_response_schema``); ``False`` when it does not say."""
        return bool(backend_capability(self.backend, "supports_response_schema", self.model, False))

    @property
    def supported_params(self) -> set[str]:
        """The request parameters this model accepts, as its backend declares (the litellm backend asks
        ``litellm.get_supported_openai_params``); ``DEFAULT_SUPPORTED_PARAMS`` when it does not say."""
        declared = backend_capability(self.backend, "supported_params", self.model, None)
        return set(DEFAULT_SUPPORTED_PARAMS if declared is None else declared)

    @property
    def preferred_adapter(self) -> str | None:
        """The adapter the backend says suits its models (its optional attribute), e.g. ``"compact"``."""
        preferred = getattr(self.backend, "preferred_adapter", None)
        return preferred if isinstance(preferred, str) and preferred else None

    async def acomplete(self, request: LMRequest) -> LMResponse:
        """Send ``request`` through the backend, or a subclass's own ``forward`` (written the DSPy way).

        ``BaseLM`` keeps secrets out of what it raises, whichever way the request went.
        """
        if type(self).forward is not BaseLM.forward or type(self).aforward is not BaseLM.aforward:
            return await super().acomplete(request)
        return await self.backend.acomplete(request)

    def _cache_scope(self) -> str:
        # the backend serving the requests (the same model string may go elsewhere through another)
        self._resolve_backend()
        return self._backend_name

    def copy(self, **kwargs: Any) -> LM:
        """See ``BaseLM.copy``; changing ``model`` or ``backend`` picks the backend again."""
        backend = kwargs.pop("backend", self.backend_ref)
        new = super().copy(**kwargs)
        assert isinstance(new, LM)
        if new.model != self.model or backend != self.backend_ref or new.model_type != self.model_type:
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


def lm_from_state(saved: Any, current: Any = None, *, trusted: bool = False) -> Any:
    """The LM a predictor gets from LM settings read from a saved file, which is not trusted.

    A file never sets a secret (``api_key``, headers, tokens: ignored with a warning). Unless the user
    trusts the file (``settings.allow_lm_from_file``, or its first name ``allow_api_base_from_file``),
    it does not choose the LM either, so requests go where the user configured them:

    - with a ``current`` LM, the saved sampling settings (``temperature``, ``max_tokens``, ...) are applied
      to a copy of it, which keeps its credentials, host and backend; a saved model that differs, another
      ``backend`` and every routing setting (``credentials.ROUTING_SETTINGS``: ``api_base``,
      ``model_list``, ``custom_llm_provider``, ...) are ignored with a warning naming them;
    - without one (the predictor uses the configured ``settings.lm``), nothing is built: ``None`` is
      returned and a warning names the saved LM that was not applied (none when it matches the
      configured LM).

    With the opt-in, the saved settings are applied to ``current``, or a new ``LM`` is built from them.
    Bad values raise ``ConfigurationError`` naming the field, applied or not.

    Settings saved from a ``BaseLM`` subclass name its class (``"lm_class"``, or DSPy's
    ``"_dspy_lm_class"``). Without a ``current`` LM, such a class is imported and built from the file only
    when ``trusted`` (``load(..., allow_unsafe_lm_state=True)``: importing a class the file names runs its
    code), and is refused with an error otherwise. ``trusted`` is also an opt-in to the file's LM
    settings, as DSPy's is.
    """
    if not isinstance(saved, Mapping):
        raise ConfigurationError(
            f"The saved LM settings ('lm') must be a mapping of settings, got {type(saved).__name__}."
        )
    state = dict(saved)
    saved_class = state.pop(LM_CLASS_KEY, None) or state.pop(DSPY_LM_CLASS_KEY, None)
    state.pop(DSPY_LM_CLASS_KEY, None)
    custom_class = None if saved_class is None or saved_class in BUILTIN_LM_CLASSES else str(saved_class)
    if custom_class is not None and current is None and not trusted:
        raise ConfigurationError(
            f"Refusing to import custom serialized LM class `{custom_class}`: importing a class a file names "
            "runs its code. If you trust the file, load it with allow_unsafe_lm_state=True "
            "(program.load(path, allow_unsafe_lm_state=True)); or set the predictor's LM before loading, "
            "and the file only tunes its settings."
        )
    for name in [name for name in state if is_secret(name)]:
        del state[name]  # never log the value
        logger.warning(
            "Ignored %r in the saved LM settings%s: credentials are never loaded from a file; "
            "they come from your LM or the environment.",
            name,
            _of_parameter(),
        )
    has_lm = current is not None and hasattr(current, "copy")
    model = state.get("model", getattr(current, "model", None) if has_lm else None)
    if not isinstance(model, str) and custom_class is None:
        raise ConfigurationError(f"The saved LM settings have no model string (model: {model!r}).")
    checked = {name: state[name] for name in (*_ATTRIBUTES, "temperature", "max_tokens") if name in state}
    if isinstance(model, str):
        validate_arguments(LMArguments, "the saved LM settings", **{**checked, "model": model})
    if trusted or trusts_file_lm():
        if has_lm:
            return current.copy(**state)
        if custom_class is not None:
            return _custom_lm(custom_class, state)
        del state["model"]
        return LM(str(model), **state)
    if not has_lm:
        _warn_not_applied(state)
        return None
    _drop_connection_settings(state, current)
    return current.copy(**state)


def trusts_file_lm() -> bool:
    """Whether the user lets loaded files choose the LM (``allow_lm_from_file``, or its first name)."""
    return bool(settings.allow_lm_from_file or settings.allow_api_base_from_file)


#: The predictor whose state is being loaded (set by ``Module.load_state``), named in warnings.
loading_parameter: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bestofn_loading_parameter", default=None
)


def _of_parameter() -> str:
    name = loading_parameter.get()
    return f" of {name}" if name else ""


def _custom_lm(path: str, state: dict[str, Any]) -> BaseLM:
    """An LM of the class at ``path`` (``module.QualName``), built by its ``load_state`` from ``state``."""
    found = _import_class(path)
    if not (isinstance(found, type) and issubclass(found, BaseLM)):
        raise ConfigurationError(
            f"The saved LM class `{path}` is not a BaseLM subclass ({found!r:.80}): it cannot be an LM."
        )
    try:
        return found.load_state(state)
    except TypeError as exc:
        raise ConfigurationError(
            f"Cannot rebuild the saved LM of class `{path}` from its settings ({', '.join(state)}): {exc}. "
            "A class with more state than BaseLM's constructor arguments overrides dump_state() and the "
            "load_state() classmethod."
        ) from exc


def _import_class(path: str) -> Any:
    # the module is the longest importable prefix: "pkg.mod.Outer.Inner" imports pkg.mod, then getattr
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                found = getattr(found, attribute)
        except AttributeError:
            break
        return found
    raise ConfigurationError(
        f"The saved LM class `{path}` cannot be imported here: install or import the package that defines "
        "it, or set the predictor's LM before loading."
    )


def _drop_connection_settings(state: dict[str, Any], current: Any) -> None:
    kept = dict(getattr(current, "kwargs", None) or {})
    for name in sorted(name for name in state if is_connection_setting(name)):
        value = state.pop(name)
        if value != kept.get(name):
            _warn_ignored(name, value, kept.get(name))
    model, current_model = state.get("model"), getattr(current, "model", None)
    if model is not None and model != current_model:
        del state["model"]
        _warn_ignored("model", model, current_model)
    if "backend" in state and state["backend"] != getattr(current, "backend_ref", None):
        _warn_ignored("backend", state.pop("backend"), getattr(current, "backend_ref", None))


def _warn_ignored(name: str, value: Any, kept: Any) -> None:
    keeps = f"the LM keeps {name}={_shown(kept)}" if kept is not None else "the backend's default applies"
    logger.warning(
        "Ignored %s=%s from the saved LM settings%s: a loaded file does not choose the LM nor where its "
        "requests go (%s). If you trust the file, load it inside `%s`.",
        name,
        _shown(value),
        _of_parameter(),
        keeps,
        _OPT_IN,
    )


def _warn_not_applied(state: dict[str, Any]) -> None:
    configured = settings.lm
    if configured is not None and hasattr(configured, "dump_state"):
        current = configured.dump_state()
        uses = f"the configured LM (settings.lm, model={_shown(getattr(configured, 'model', None))})"
    else:
        current = {name: field.default for name, field in LMArguments.model_fields.items()}
        uses = "the configured LM (settings.lm, not set yet)"
    # what the saved LM would change: its model, and the settings that differ
    differs = {name: value for name, value in state.items() if current.get(name) != value}
    if not differs:
        return  # the configured LM already is the saved one: nothing is lost
    shown = {"model": state["model"], **differs}
    listed = ", ".join(f"{name}={_shown(value)}" for name, value in sorted(shown.items(), key=_model_first))
    logger.warning(
        "Not applied: the saved LM%s (%s). The predictor has no LM of its own, so its requests go to %s, "
        "as before loading: a loaded file does not choose the LM. To use the saved sampling settings with "
        "your LM, set it first (program.set_lm(lm)) and load again; if you trust the file to choose the "
        "LM, load it inside `%s`.",
        _of_parameter(),
        listed,
        uses,
        _OPT_IN,
    )


def _model_first(item: tuple[str, Any]) -> tuple[bool, str]:
    return item[0] != "model", item[0]


def _shown(value: Any) -> str:
    # a URL in a setting may carry a key (http://user:KEY@host): warnings show it masked
    return repr(without_secrets({"value": value})["value"])
