"""Process-wide configuration (`configure`) with per-thread / per-task overrides (`context`).

`configure(...)` sets the process-wide defaults. `context(...)` overrides them for the current thread or
asyncio task only, through a ``contextvars.ContextVar``, so concurrent tasks each see their own values.
Worker threads started by this library copy the caller's context, so they see the caller's overrides.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from bestofn_core.errors import ConfigurationError
from bestofn_core.protocols import LanguageModel

#: Every known setting with its default. Unknown names are refused so a typo never goes unnoticed.
DEFAULTS: dict[str, Any] = {
    "lm": None,  # the LM predictors use when they have none of their own
    "adapter": None,  # an Adapter or "plugin:name"; None: the LM's preferred adapter, else "chat"
    "trace": [],  # list of (predictor, inputs, prediction) appended by Predict; None disables tracing
    "callbacks": [],  # BaseCallback instances called for every module, LM and adapter event
    "track_usage": False,  # attach per-model token usage to the outermost call's Prediction
    "usage_tracker": None,  # the UsageTracker of the running outermost call (set internally)
    "caller_modules": (),  # the stack of modules currently running (set internally)
    "num_threads": 8,  # default worker count for Module.batch / Parallel
    "max_errors": None,  # default error budget for Module.batch / Parallel (None: unlimited)
    "provide_traceback": False,  # include tracebacks when batch logs failures
    "disable_progress_bar": False,  # hide progress bars in batch runs
    "max_concurrency": None,  # bound on in-flight LM requests across the whole process (None: unbounded)
    "max_history_size": 10_000,  # entries kept in the global and per-LM/module histories
    "disable_history": False,  # record no LM call in any history (global, LM, module)
    "warn_on_type_mismatch": True,  # log a warning when an input's value does not match its field's type
    "max_trace_size": 10_000,  # newest entries kept in settings.trace
    "allow_lm_from_file": False,  # let a loaded file choose the LM: its model, backend, host and routing
    "allow_api_base_from_file": False,  # the first name of allow_lm_from_file, kept working
}


_NO_OVERRIDES: Mapping[str, Any] = MappingProxyType({})
#: Settings that describe the call running now, not configuration: never saved by ``Settings.save``.
_RUNNING_STATE = frozenset({"usage_tracker", "caller_modules"})


class Settings:
    """The live view of configuration: ``settings.lm`` reads the current context's value.

    Attribute reads look at the current context's overrides first, then the process-wide configuration.
    Use ``bestofn_core.configure`` and ``bestofn_core.context`` to change values.
    """

    _global: dict[str, Any]
    _overrides: contextvars.ContextVar[Mapping[str, Any]]
    _lock: threading.Lock

    def __init__(self) -> None:
        object.__setattr__(self, "_global", {k: _fresh(v) for k, v in DEFAULTS.items()})
        object.__setattr__(
            self, "_overrides", contextvars.ContextVar("bestofn_settings", default=_NO_OVERRIDES)
        )
        object.__setattr__(self, "_lock", threading.Lock())

    def __getattr__(self, name: str) -> Any:
        overrides = self._overrides.get()
        if name in overrides:
            return overrides[name]
        try:
            return self._global[name]
        except KeyError:
            raise AttributeError(f"bestofn_core.settings has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Set settings with bestofn_core.configure({name}=...) or bestofn_core.context({name}=...)"
        )

    def get(self, name: str, default: Any = None) -> Any:
        """The current value of ``name``, or ``default`` if it is not a known setting."""
        try:
            return getattr(self, name)
        except AttributeError:
            return default

    def snapshot(self) -> dict[str, Any]:
        """Every setting's current value (process-wide values with this context's overrides on top)."""
        return {**self._global, **self._overrides.get()}

    def copy(self) -> dict[str, Any]:
        """Every setting's current value, as a dict that ``configure(**...)`` accepts (DSPy's ``copy``)."""
        return self.snapshot()

    def save(
        self,
        path: str | os.PathLike[str],
        modules_to_serialize: list[Any] | None = None,
        exclude_keys: list[str] | None = None,
    ) -> None:
        """Pickle the current settings to ``path`` (a ``.pkl`` file); ``load_settings`` reads them back.

        Args:
            path: the file to write (its suffix must name a pickle serializer, e.g. ``.pkl``).
            modules_to_serialize: Python modules to pickle by value (code the loading side cannot import).
            exclude_keys: settings to leave out of the file.

        LMs are pickled without their secrets (``BaseLM.__getstate__``); the running call's bookkeeping
        (``usage_tracker``, ``caller_modules``) is never saved.
        """
        # the file format and the pickle guard live with the other save/load code
        from bestofn_core.serialization import save_settings

        excluded = list(exclude_keys or ())
        _check_names(dict.fromkeys(excluded))
        values = {k: v for k, v in self.snapshot().items() if k not in excluded and k not in _RUNNING_STATE}
        save_settings(values, path, modules_to_serialize=modules_to_serialize)

    def configure(self, **kwargs: Any) -> None:
        """Set process-wide values. Raises ``ConfigurationError`` for an unknown setting name or a bad LM."""
        _check_names(kwargs)
        with self._lock:
            # copy-on-write: readers in other threads never see a half-updated dict
            object.__setattr__(self, "_global", {**self._global, **kwargs})

    @contextmanager
    def context(self, **kwargs: Any) -> Iterator[None]:
        """Override settings for the current thread or asyncio task until the block ends."""
        _check_names(kwargs)
        token = self._overrides.set({**self._overrides.get(), **kwargs})
        try:
            yield
        finally:
            self._overrides.reset(token)

    def reset(self) -> None:
        """Restore every process-wide value to its default (for tests)."""
        with self._lock:
            object.__setattr__(self, "_global", {k: _fresh(v) for k, v in DEFAULTS.items()})

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.snapshot().items() if v != DEFAULTS.get(k)}
        return f"Settings({shown})"


def _fresh(value: Any) -> Any:
    # mutable defaults must not be shared between resets
    return list(value) if isinstance(value, list) else value


def _check_names(kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ConfigurationError(
            f"Unknown setting(s) {', '.join(unknown)}. Known settings: {', '.join(sorted(DEFAULTS))}."
        )
    if "lm" in kwargs:
        check_lm(kwargs["lm"], "settings.lm")


def check_lm(lm: Any, what: str) -> None:
    """Raise ``ConfigurationError`` unless ``lm`` is ``None`` or a language model (``LanguageModel``).

    Checked where an LM is given (``configure``, ``context``, a predictor's ``lm``), so a model string or
    another object fails there, with the fix, rather than as an ``AttributeError`` inside the first call.
    """
    if lm is None or isinstance(lm, LanguageModel):
        return
    if isinstance(lm, str):
        raise ConfigurationError(
            f"{what} must be a language model (a bestofn_core.BaseLM such as bestofn_core.LM), not a string. "
            f"Instead of configure(lm={lm!r}), write configure(lm=bestofn_core.LM({lm!r}))."
        )
    raise ConfigurationError(
        f"{what} must be a language model (a bestofn_core.BaseLM such as "
        f"bestofn_core.LM('openai/gpt-4o-mini')), not {type(lm).__name__} ({lm!r:.80})."
    )


#: The one settings object of the process.
settings = Settings()


def configure(**kwargs: Any) -> None:
    """Set process-wide defaults, e.g. ``configure(lm=LM("openai/gpt-4o-mini"))``."""
    settings.configure(**kwargs)


def context(**kwargs: Any) -> Any:
    """Override settings for the current thread or task: ``with context(lm=other_lm): ...``."""
    return settings.context(**kwargs)


def load_settings(path: str | os.PathLike[str], allow_pickle: bool = False) -> dict[str, Any]:
    """The settings ``settings.save(path)`` wrote, as a dict for ``configure(**...)``.

    The file is a pickle, and loading a pickle can run any code: ``allow_pickle=True`` is required, and
    only for files you trust.
    """
    from bestofn_core.serialization import read_settings

    return read_settings(path, allow_pickle=allow_pickle)
