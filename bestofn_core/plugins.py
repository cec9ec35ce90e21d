"""The plugin manager: built-in and entry-point plugins, allow/block lists, error isolation, the registry.

``get_plugin_manager()`` builds a pluggy manager once, lazily: it registers the built-in plugins (the
modules listed in ``bestofn_core.default_plugins``), then every entry point of the ``bestofn`` group. Each
plugin is loaded in its own ``try`` so one broken plugin never breaks the others: its error is recorded
(``bestofn plugins`` shows it) unless ``BESTOFN_STRICT_PLUGINS=1`` asks for an exception instead.

``get_registry()`` calls the ``register_*`` hooks, one plugin at a time (again for isolation), checks every
registration against ``bestofn_core.protocols`` and indexes it by kind and ``"plugin:name"``. It is cached
until a plugin is registered or unregistered. Environment variables, read when the manager is built
(call ``reset_plugins()`` after changing them):

- ``BESTOFN_LOAD_PLUGINS``: unset loads every entry point; ``""`` loads none; ``"a,b"`` only those.
- ``BESTOFN_BLOCK_PLUGINS="a,b"``: never load these names, built-ins included.
- ``BESTOFN_STRICT_PLUGINS=1``: the first plugin error raises ``PluginLoadError``.
- ``BESTOFN_TRACE_PLUGINS=1``: log every hook call (pluggy tracing) to the ``bestofn_core.plugins`` logger.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType, ModuleType
from typing import Any, Literal, NoReturn, get_args

import importlib_metadata
import pluggy

from bestofn_core import default_plugins, hookspecs, protocols
from bestofn_core._version import __version__
from bestofn_core.errors import (
    AmbiguousNameError,
    ConfigurationError,
    NoBackendError,
    PluginError,
    PluginLoadError,
    RegistrationError,
    SerializationError,
    UnknownNameError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "BestOfNPluginManager",
    "Kind",
    "PluginInfo",
    "Registration",
    "Registry",
    "describe_kind",
    "get_plugin_manager",
    "get_registry",
    "reset_plugins",
]

#: The entry-point group plugins publish under; also pluggy's project name for the markers.
ENTRY_POINT_GROUP = "bestofn"

logger = logging.getLogger(__name__)

#: What a plugin can register.
Kind = Literal["lm_backend", "reward", "selection_policy", "serializer", "executor"]
#: Every ``Kind``, in the order hooks are called and listed.
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True)
class _KindSpec:
    hook: str
    label: str
    plural: str
    protocol: type | None  # None: the item only has to be callable (rewards)


_KIND_SPECS: dict[Kind, _KindSpec] = {
    "lm_backend": _KindSpec("register_lm_backends", "LM backend", "LM backends", protocols.LMBackend),
    "reward": _KindSpec("register_rewards", "reward", "rewards", None),
    "selection_policy": _KindSpec(
        "register_selection_policies", "selection policy", "selection policies", protocols.SelectionPolicy
    ),
    "serializer": _KindSpec("register_serializers", "serializer", "serializers", protocols.Serializer),
    "executor": _KindSpec("register_executors", "executor", "executors", protocols.Executor),
}
_HOOK_NAMES = tuple(spec.hook for spec in _KIND_SPECS.values())


def describe_kind(kind: Kind, *, plural: bool = False) -> str:
    """The words for ``kind`` in messages: ``"lm_backend"`` -> ``"LM backend"`` (``"LM backends"``)."""
    spec = _KIND_SPECS[kind]
    return spec.plural if plural else spec.label


_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Registration:
    """One registered item: a reward, backend, policy, serializer or executor, and where it came from.

    Attributes:
        kind: what it is (``"reward"``, ``"lm_backend"``, ...).
        name: its name inside the plugin's namespace.
        plugin: the name of the plugin that registered it.
        obj: the registered object itself.
        options: what was registered with it: ``prefixes`` (LM backends), ``suffixes`` (serializers),
            ``factory`` (rewards).
    """

    kind: Kind
    name: str
    plugin: str
    obj: Any
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def qualified_name(self) -> str:
        """``"plugin:name"``, the reference that always resolves to this item."""
        return f"{self.plugin}:{self.name}"


@dataclass
class PluginInfo:
    """What is known about one plugin, loaded or not: shown by ``bestofn plugins``.

    Attributes:
        name: the plugin's name and namespace (its entry-point name; the module's for built-ins).
        module: the module it was loaded from (``None`` when unknown).
        distribution: the installed distribution that declares it (``None`` for built-ins and plugins
            registered in-process with ``pm.register``).
        version: the distribution's version (bestofn-core's for built-ins).
        builtin: whether it ships with bestofn-core.
        location: the file it was loaded from, for security review (``None`` when unknown).
        registered: the qualified names it registered, per kind (every kind present, maybe empty).
        error: traceback text of every failure (import, registration, hook), ``None`` when it works.
        blocked: whether ``BESTOFN_BLOCK_PLUGINS`` kept it from loading.
    """

    name: str
    module: str | None
    distribution: str | None
    version: str | None
    builtin: bool
    location: str | None
    registered: dict[Kind, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    error: str | None = None
    blocked: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (``bestofn plugins --json``)."""
        return dataclasses.asdict(self)


class Registry:
    """Everything the plugins registered, indexed by kind and ``"plugin:name"``; see ``get_registry()``."""

    def __init__(
        self,
        registrations: Sequence[Registration],
        plugins: Sequence[PluginInfo] = (),
        *,
        not_loaded: Sequence[str] = (),
    ) -> None:
        self._entries: dict[Kind, dict[str, Registration]] = {kind: {} for kind in KINDS}
        for registration in registrations:
            self._entries[registration.kind][registration.qualified_name] = registration
        #: Every plugin known, loaded or failed, in load order.
        self.plugins: list[PluginInfo] = list(plugins)
        # Installed entry points that BESTOFN_LOAD_PLUGINS left out: named in "unknown" errors.
        self._not_loaded = frozenset(not_loaded)

    def resolve(self, kind: Kind, ref: str) -> Registration:
        """The registration ``ref`` names: ``"plugin:name"``, or a bare ``"name"`` only one plugin offers.

        Raises ``UnknownNameError`` (listing what is available) or ``AmbiguousNameError`` (listing the
        qualified names to choose from).
        """
        entries = self._kind_entries(kind)
        if not isinstance(ref, str) or not ref:
            label = _KIND_SPECS[kind].label
            raise UnknownNameError(f"A {label} reference must be a non-empty string, not {ref!r}")
        plugin, sep, _ = ref.partition(":")
        if sep:
            if ref in entries:
                return entries[ref]
            raise UnknownNameError(self._unknown_message(kind, ref, plugin))
        matches = [registration for registration in entries.values() if registration.name == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            choices = ", ".join(sorted(f'"{match.qualified_name}"' for match in matches))
            raise AmbiguousNameError(
                f'The {_KIND_SPECS[kind].label} name "{ref}" is offered by several plugins: {choices}. '
                "Use the qualified name to pick one."
            )
        raise UnknownNameError(self._unknown_message(kind, ref, None))

    def get(self, kind: Kind, ref: str) -> Any:
        """The registered object ``ref`` names (``resolve(kind, ref).obj``)."""
        return self.resolve(kind, ref).obj

    def names(self, kind: Kind) -> list[str]:
        """The qualified ``"plugin:name"`` of every item of ``kind``, sorted."""
        return sorted(self._kind_entries(kind))

    def registrations(self, kind: Kind) -> list[Registration]:
        """Every registration of ``kind``, sorted by qualified name."""
        entries = self._kind_entries(kind)
        return [entries[name] for name in sorted(entries)]

    def build_reward(self, ref: str, **params: Any) -> Callable[..., Any]:
        """The reward ``ref`` names, built with ``params`` when it was registered as a factory.

        A plain reward takes no parameters: passing some raises ``ConfigurationError``.
        """
        registration = self.resolve("reward", ref)
        if registration.options.get("factory"):
            reward: Callable[..., Any] = registration.obj(**params)
            return reward
        if params:
            raise ConfigurationError(
                f'The reward "{registration.qualified_name}" takes no parameters, but got '
                f"{', '.join(sorted(params))}. Only rewards registered with factory=True accept parameters."
            )
        plain: Callable[..., Any] = registration.obj
        return plain

    def lm_backend_for(self, model: str, backend: str | None = None) -> Registration:
        """The LM backend serving ``model``: ``backend`` when given, else the longest matching prefix.

        A backend registered with no prefix (or ``""``) claims every model string, as a fallback. Raises
        ``AmbiguousNameError`` when backends tie on the longest prefix, ``NoBackendError`` when none
        claims ``model``.
        """
        if backend is not None:
            return self.resolve("lm_backend", backend)  # explicit choice: no prefix check
        best_length = -1
        best: list[Registration] = []
        for registration in self.registrations("lm_backend"):
            lengths = [len(prefix) for prefix in _prefixes(registration) if model.startswith(prefix)]
            if not lengths:
                continue
            length = max(lengths)
            if length > best_length:
                best_length, best = length, [registration]
            elif length == best_length:
                best.append(registration)
        if len(best) == 1:
            return best[0]
        if best:
            prefix = model[:best_length]
            claim = f'the prefix "{prefix}"' if prefix else "every model string (no prefix)"
            choices = ", ".join(f'"{registration.qualified_name}"' for registration in best)
            raise AmbiguousNameError(
                f'Several LM backends claim the model "{model}" with {claim}: {choices}. '
                f'Pass backend="plugin:name" to LM(...) to choose one, e.g. '
                f'LM("{model}", backend="{best[0].qualified_name}").'
            )
        raise NoBackendError(self._no_backend_message(model))

    def serializer_for(self, path: str | os.PathLike[str]) -> Registration:
        """The serializer for ``path``'s suffix (case-insensitive; the longest registered suffix wins).

        Raises ``SerializationError`` naming the suffix and the supported ones when none matches, and
        ``AmbiguousNameError`` when two serializers registered the same longest suffix.
        """
        filename = PurePath(os.fspath(path)).name.lower()
        by_suffix: dict[str, list[Registration]] = {}
        for registration in self.registrations("serializer"):
            for suffix in registration.options.get("suffixes", ()):
                by_suffix.setdefault(suffix.lower(), []).append(registration)
        # Longest first, so ".tar.gz" is tried before ".gz".
        for suffix in sorted(by_suffix, key=len, reverse=True):
            if filename.endswith(suffix):
                matches = by_suffix[suffix]
                if len(matches) == 1:
                    return matches[0]
                choices = ", ".join(f'"{match.qualified_name}"' for match in matches)
                raise AmbiguousNameError(
                    f'Several serializers handle "{suffix}" files: {choices}. Uninstall or block one of '
                    "these plugins (BESTOFN_BLOCK_PLUGINS) to choose."
                )
        suffix = "".join(PurePath(filename).suffixes) or "(no suffix)"
        supported = ", ".join(sorted(by_suffix)) or "none (no serializer is registered)"
        raise SerializationError(
            f'No serializer handles "{suffix}" files ({os.fspath(path)}). Supported suffixes: {supported}.'
        )

    def _kind_entries(self, kind: Kind) -> dict[str, Registration]:
        if kind not in self._entries:
            raise ConfigurationError(f"Unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")
        return self._entries[kind]

    def _unknown_message(self, kind: Kind, ref: str, plugin: str | None) -> str:
        spec = _KIND_SPECS[kind]
        lines = [f'Unknown {spec.label} "{ref}".']
        if plugin:  # None for a bare name; "" for a malformed ":name"
            lines.append(self._plugin_status(plugin, spec.label))
        available = self.names(kind)
        candidates = available + sorted({self._entries[kind][name].name for name in available})
        close = difflib.get_close_matches(ref, candidates, n=1)
        if close:
            lines.append(f'Did you mean "{close[0]}"?')
        lines.append(f"Available {spec.plural}: {', '.join(available) if available else 'none'}.")
        return " ".join(lines)

    def _plugin_status(self, plugin: str, label: str) -> str:
        infos = [info for info in self.plugins if info.name == plugin]
        if any(info.blocked for info in infos):
            return f'The plugin "{plugin}" is blocked by BESTOFN_BLOCK_PLUGINS.'
        failed = next((info.error for info in infos if info.error), None)
        if failed:
            last_line = failed.strip().splitlines()[-1]
            return f'The plugin "{plugin}" had errors ({last_line}); run `bestofn plugins` for details.'
        if infos:
            return f'The plugin "{plugin}" registers no {label} with that name.'
        if plugin in self._not_loaded:
            return f'The plugin "{plugin}" is installed but not loaded: add it to BESTOFN_LOAD_PLUGINS.'
        package = "bestofn-" + plugin.replace("_", "-").lower()
        return (
            f'No plugin named "{plugin}" is installed; a package such as "{package}" may provide it '
            f"(pip install {package}). Run `bestofn plugins` to see what is installed."
        )

    def _no_backend_message(self, model: str) -> str:
        backends = self.registrations("lm_backend")
        if not backends:
            return (
                f'No LM backend is installed to serve the model "{model}": the built-in litellm backend is '
                "missing, failed to load or is blocked. Run `bestofn plugins --all` to see why."
            )
        listed = "; ".join(
            f"{registration.qualified_name} ({', '.join(repr(prefix) for prefix in _prefixes(registration))})"
            for registration in backends
        )
        return (
            f'No LM backend claims the model "{model}". Installed backends and their model prefixes: '
            f"{listed}. "
            "Use a model string with one of these prefixes, install a backend plugin for it, or pass "
            'backend="plugin:name" to LM(...).'
        )


def _prefixes(registration: Registration) -> tuple[str, ...]:
    # No prefix at all means "every model string", the same as the empty prefix.
    return tuple(registration.options.get("prefixes", ())) or ("",)


# --------------------------------------------------------------------------------------------- manager


@dataclass
class _LoadRecord:
    """How a built-in or entry-point plugin was loaded (or why it was not)."""

    info: PluginInfo
    plugin: object | None = None


class BestOfNPluginManager(pluggy.PluginManager):
    """pluggy's manager plus what bestofn needs: load records and a registry cache.

    ``register``/``unregister`` invalidate the cached registry, so tests can add plugins in-process with
    ``get_plugin_manager().register(obj, name="...")`` and see them in the next ``get_registry()``.
    """

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        #: Raise ``PluginLoadError`` at the first plugin error instead of recording it.
        self.strict = strict
        self._records: list[_LoadRecord] = []
        self._not_loaded: list[str] = []
        self._registry: Registry | None = None
        # Bumped by every register/unregister, so a registry built while plugins changed is not cached.
        self._generation = 0
        self._building = False
        self._lock = threading.RLock()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` under ``name``; reject names with ``":"`` and hooks that do not exist."""
        if name is not None and (not name or ":" in name):
            raise ValueError(f"Invalid plugin name {name!r}: it must be non-empty and cannot contain ':'")
        _check_hook_names(self, plugin, name or self.get_canonical_name(plugin))
        registered = super().register(plugin, name)
        self._invalidate()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """Unregister a plugin (by object or name) and forget the cached registry."""
        removed = super().unregister(plugin, name)
        self._invalidate()
        return removed

    @property
    def registry(self) -> Registry:
        """The registry built from the hooks, cached until a plugin is registered or unregistered."""
        with self._lock:
            if self._registry is not None:
                return self._registry
            if self._building:
                raise PluginError("A plugin hook asked for the plugin registry while it was being built")
            self._building = True
            try:
                generation = self._generation
                registry = _build_registry(self)
                if generation == self._generation:
                    self._registry = registry
                return registry
            finally:
                self._building = False

    def _invalidate(self) -> None:
        self._generation += 1
        self._registry = None

    def _record(self, info: PluginInfo, plugin: object | None = None) -> None:
        self._records.append(_LoadRecord(info, plugin))


def _check_hook_names(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    # pluggy accepts an @hookimpl whose name matches no hook (it could be a hook added later); here a
    # typo such as `register_reward` would silently register nothing, so it is an error.
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        if hook not in _HOOK_NAMES:
            close = difflib.get_close_matches(hook, _HOOK_NAMES, n=1)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise pluggy.PluginValidationError(
                plugin,
                f'Plugin "{name}" implements an unknown hook "{hook}".{hint} Known hooks: '
                f"{', '.join(_HOOK_NAMES)}.",
            )


_manager: BestOfNPluginManager | None = None
# Re-entrant, with a flag, so a plugin that asks for the manager while being imported gets an error
# (recorded as its load failure) instead of deadlocking the process.
_manager_lock = threading.RLock()
_manager_building = False


def get_plugin_manager() -> BestOfNPluginManager:
    """The process's plugin manager, built on first use (built-ins first, then entry points)."""
    global _manager, _manager_building
    with _manager_lock:
        if _manager is None:
            if _manager_building:
                raise PluginError("A plugin asked for the plugin manager while plugins were being loaded")
            _manager_building = True
            try:
                _manager = _build_plugin_manager()
            finally:
                _manager_building = False
        return _manager


def get_registry() -> Registry:
    """The registry of everything the plugins registered, built on first use and cached."""
    return get_plugin_manager().registry


def reset_plugins() -> None:
    """Forget the plugin manager and registry: the next use reloads plugins and re-reads the env vars."""
    global _manager
    with _manager_lock:
        _manager = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_names(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _build_plugin_manager() -> BestOfNPluginManager:
    pm = BestOfNPluginManager(strict=_env_flag("BESTOFN_STRICT_PLUGINS"))
    if _env_flag("BESTOFN_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda message: logger.debug("%s", message.rstrip("\n")))
        pm.enable_tracing()
    for name in _env_names("BESTOFN_BLOCK_PLUGINS"):
        pm.set_blocked(name)
    for module in default_plugins.BUILTIN_PLUGINS:
        _load_builtin(pm, module)
    allowed = _env_names("BESTOFN_LOAD_PLUGINS") if "BESTOFN_LOAD_PLUGINS" in os.environ else None
    _load_entry_points(pm, allowed)
    return pm


def _load_builtin(pm: BestOfNPluginManager, module: str) -> None:
    name = default_plugins.builtin_plugin_name(module)
    info = PluginInfo(name, module, None, __version__, builtin=True, location=None)
    if pm.is_blocked(name):
        info.blocked = True
        info.location = _module_location(module)
        pm._record(info)
        return
    try:
        plugin = importlib.import_module(module)
        pm.register(plugin, name=name)
    except Exception as exc:
        info.location = _module_location(module)
        _record_failure(pm, info, exc, f'Built-in plugin "{name}" ({module}) failed to load')
        return
    info.location = _module_location(module)
    pm._record(info, plugin)


def _load_entry_points(pm: BestOfNPluginManager, allowed: list[str] | None) -> None:
    entry_points = sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    for ep in entry_points:
        if allowed is not None and ep.name not in allowed:
            pm._not_loaded.append(ep.name)
            continue
        dist = ep.dist
        info = PluginInfo(
            ep.name,
            ep.module,
            dist.name if dist is not None else None,
            dist.version if dist is not None else None,
            builtin=False,
            location=None,
        )
        if pm.is_blocked(ep.name):
            info.blocked = True
            info.location = _module_location(ep.module)
            pm._record(info)
            continue
        taken = next((record.info for record in pm._records if record.info.name == ep.name), None)
        try:
            if taken is not None:
                owner = taken.distribution or "bestofn-core (built-in)"
                raise PluginError(
                    f'The plugin name "{ep.name}" is already taken by {owner}; uninstall one of the two '
                    "distributions."
                )
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            info.location = _module_location(ep.module)
            _record_failure(pm, info, exc, f'Plugin "{ep.name}" ({info.distribution}) failed to load')
            continue
        info.location = _module_location(ep.module)
        pm._record(info, plugin)
    known = {ep.name for ep in entry_points}
    for name in allowed or ():
        if name not in known:
            logger.warning("BESTOFN_LOAD_PLUGINS names %r, but no installed plugin has that name", name)


def _record_failure(pm: BestOfNPluginManager, info: PluginInfo, exc: BaseException, summary: str) -> None:
    if pm.strict:
        raise PluginLoadError(f"{summary}: {type(exc).__name__}: {exc}") from exc
    info.error = _format_error(exc)
    logger.warning("%s: %s: %s (run `bestofn plugins` for details)", summary, type(exc).__name__, exc)
    logger.debug("%s", info.error)
    pm._record(info)


# Frames of the loading machinery (this module, pluggy, importlib): they open every plugin traceback and
# say nothing about the plugin, so they are cut from the front of what `bestofn plugins` shows.
_MACHINERY_FILES: tuple[str, ...] = (
    __file__,
    os.path.dirname(pluggy.__file__),
    os.path.dirname(importlib.__file__),
    os.path.dirname(importlib_metadata.__file__),
    "<frozen importlib.",
)


def _format_error(exc: BaseException) -> str:
    """``exc``'s traceback text, starting at the first frame that is not loading machinery."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_MACHINERY_FILES):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _module_location(module: str | None) -> str | None:
    """The file of ``module`` without importing it (a broken or blocked plugin must not run)."""
    if not module:
        return None
    loaded = sys.modules.get(module)
    if isinstance(loaded, ModuleType):
        return getattr(loaded, "__file__", None)
    parent = module.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return None  # find_spec would import the parent package, running the plugin's code
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


# --------------------------------------------------------------------------------------------- registry


def _build_registry(pm: BestOfNPluginManager) -> Registry:
    plugins = [(name, plugin) for name, plugin in pm.list_name_plugin() if plugin is not None]
    registrations: dict[str, Registration] = {}  # keyed by "kind plugin:name"
    hook_errors: dict[str, list[str]] = {}
    for kind in KINDS:
        hook_name = _KIND_SPECS[kind].hook
        hook = getattr(pm.hook, hook_name)
        implementers = {id(impl.plugin) for impl in hook.get_hookimpls()}
        for plugin_name, plugin in plugins:
            if id(plugin) not in implementers:
                continue
            collector = _Collector(kind, plugin_name, registrations)
            # Calling each plugin on its own is what lets one failing hook leave the others' items intact.
            caller = pm.subset_hook_caller(hook_name, [other for _, other in plugins if other is not plugin])
            try:
                results = caller(register=collector.callback())
                collector.raise_swallowed_error()
            except Exception as exc:
                if pm.strict:
                    raise PluginLoadError(
                        f'Plugin "{plugin_name}" failed in hook {hook_name}: {type(exc).__name__}: {exc}'
                    ) from exc
                text = _format_error(exc)
                hook_errors.setdefault(plugin_name, []).append(f"In hook {hook_name}:\n{text}")
                logger.warning(
                    'Plugin "%s" failed in hook %s, nothing it registered there is used: %s: %s',
                    plugin_name,
                    hook_name,
                    type(exc).__name__,
                    exc,
                )
                logger.debug("%s", text)
                continue
            if any(result is not None for result in results):
                logger.warning(
                    'Plugin "%s": hook %s returned a value, which is ignored; call register(...) instead',
                    plugin_name,
                    hook_name,
                )
            for registration in collector.registrations:
                registrations[_key(registration)] = registration
    return Registry(
        list(registrations.values()),
        _plugin_infos(pm, list(registrations.values()), hook_errors),
        not_loaded=pm._not_loaded,
    )


def _key(registration: Registration) -> str:
    return f"{registration.kind} {registration.qualified_name}"


def _plugin_infos(
    pm: BestOfNPluginManager, registrations: list[Registration], hook_errors: dict[str, list[str]]
) -> list[PluginInfo]:
    registered: dict[str, dict[Kind, list[str]]] = {}
    for registration in registrations:
        by_kind = registered.setdefault(registration.plugin, {kind: [] for kind in KINDS})
        by_kind[registration.kind].append(registration.qualified_name)

    def finish(info: PluginInfo, loaded: bool = True) -> PluginInfo:
        # Registrations and hook errors belong to the loaded plugin of that name, never to a failed or
        # blocked record sharing it (two distributions declaring the same entry-point name).
        errors = ([info.error] if info.error else []) + (hook_errors.get(info.name, []) if loaded else [])
        by_kind = registered.get(info.name, {}) if loaded else {}
        by_kind = {kind: by_kind.get(kind, []) for kind in KINDS}
        return dataclasses.replace(
            info,
            registered={kind: sorted(names) for kind, names in by_kind.items()},
            error="\n".join(errors) or None,
        )

    infos: list[PluginInfo] = []
    seen: set[int] = set()
    for record in pm._records:
        loaded = record.plugin is not None and pm.get_plugin(record.info.name) is record.plugin
        if loaded:
            seen.add(id(record.plugin))
        elif record.info.error is None and not record.info.blocked:
            continue  # unregistered since it was loaded
        infos.append(finish(record.info, loaded))
    for name, plugin in pm.list_name_plugin():
        if plugin is not None and id(plugin) not in seen:
            infos.append(finish(_in_process_info(name, plugin)))
    return infos


def _in_process_info(name: str, plugin: object) -> PluginInfo:
    module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
    try:
        location: str | None = inspect.getfile(plugin if isinstance(plugin, ModuleType) else type(plugin))
    except TypeError:  # classes defined in __main__ of an interactive session have no file
        location = None
    return PluginInfo(name, module, None, None, builtin=False, location=location)


class _Collector:
    """The ``register`` callbacks handed to one plugin's hook: checks each item, keeps them pending.

    Items are committed only when the hook returns without error, so a failing hook call contributes
    nothing (atomic per plugin per hook).
    """

    def __init__(self, kind: Kind, plugin: str, committed: Mapping[str, Registration]) -> None:
        self.kind = kind
        self.plugin = plugin
        self.registrations: list[Registration] = []
        self._committed = committed
        self._error: RegistrationError | None = None

    def __repr__(self) -> str:
        # Shown by hook tracing (BESTOFN_TRACE_PLUGINS=1) as the value of `register`.
        return f"<register {describe_kind(self.kind)} for plugin {self.plugin!r}>"

    def callback(self) -> object:
        """The bound method matching this kind's ``Register*`` protocol."""
        # The typed tuple makes mypy check each method against its protocol in hookspecs.
        callbacks: tuple[
            hookspecs.RegisterLMBackend,
            hookspecs.RegisterReward,
            hookspecs.RegisterSelectionPolicy,
            hookspecs.RegisterSerializer,
            hookspecs.RegisterExecutor,
        ] = (self.lm_backend, self.reward, self.selection_policy, self.serializer, self.executor)
        return dict(zip(KINDS, callbacks, strict=True))[self.kind]

    def raise_swallowed_error(self) -> None:
        """Re-raise a registration error the plugin caught, so it is still reported."""
        if self._error is not None:
            raise self._error

    def lm_backend(self, backend: Any, /, *, name: str, prefixes: Sequence[str] = ()) -> None:
        """``register`` of ``register_lm_backends``."""
        self._add(backend, name, prefixes=self._strings(name, "prefixes", prefixes))

    def reward(self, reward: Any, /, *, name: str | None = None, factory: bool = False) -> None:
        """``register`` of ``register_rewards``."""
        if name is None:
            default = getattr(reward, "__name__", None)
            if not isinstance(default, str) or not _NAME_RE.match(default):
                self._fail(f"{reward!r} has no usable __name__ ({default!r}): pass name=...", item=None)
            name = default
        if not isinstance(factory, bool):
            self._fail(f"factory must be True or False, not {factory!r}", item=name)
        self._add(reward, name, factory=factory)

    def selection_policy(self, policy: Any, /, *, name: str) -> None:
        """``register`` of ``register_selection_policies``."""
        self._add(policy, name)

    def serializer(self, serializer: Any, /, *, name: str, suffixes: Sequence[str]) -> None:
        """``register`` of ``register_serializers``."""
        checked = self._strings(name, "suffixes", suffixes)
        for suffix in checked:
            if not suffix.startswith(".") or len(suffix) < 2:
                self._fail(f'suffix {suffix!r} must start with "." (e.g. ".json")', item=name)
        self._add(serializer, name, suffixes=checked)

    def executor(self, executor: Any, /, *, name: str) -> None:
        """``register`` of ``register_executors``."""
        self._add(executor, name)

    def _add(self, obj: Any, name: str, **options: Any) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            self._fail(
                f"invalid name {name!r}: use letters, digits, '_', '-' and '.', without ':'", item=None
            )
        problem = _shape_problem(self.kind, obj, options)
        if problem:
            self._fail(problem, item=name)
        qualified = f"{self.plugin}:{name}"
        previous = self._committed.get(f"{self.kind} {qualified}") or next(
            (reg for reg in self.registrations if reg.qualified_name == qualified), None
        )
        if previous is not None:
            self._fail(
                f"the name is already taken by {previous.obj!r}; now registered again: {obj!r}", item=name
            )
        self.registrations.append(Registration(self.kind, name, self.plugin, obj, MappingProxyType(options)))

    def _strings(self, item: str, argument: str, values: Any) -> tuple[str, ...]:
        # A bare string is a Sequence[str] too: prefixes="openai/" would silently claim "o", "p", ...
        if isinstance(values, str) or not all(isinstance(value, str) for value in values):
            self._fail(f"{argument} must be a list or tuple of strings, not {values!r}", item=item)
        return tuple(values)

    def _fail(self, problem: str, *, item: str | None) -> NoReturn:
        spec = _KIND_SPECS[self.kind]
        what = f'{spec.label} "{item}"' if item else spec.label
        error = RegistrationError(
            f'Plugin "{self.plugin}" registered an invalid {what} in hook {spec.hook}: {problem}'
        )
        self._error = self._error or error
        raise error


def _shape_problem(kind: Kind, obj: Any, options: Mapping[str, Any]) -> str | None:
    """Why ``obj`` cannot be registered as ``kind``, or ``None`` when it fits the protocol."""
    protocol = _KIND_SPECS[kind].protocol
    if protocol is None:  # a reward, or a factory of rewards
        if not callable(obj):
            return f"{obj!r} is not callable"
        if options.get("factory"):
            return None
        try:
            inspect.signature(obj).bind(None, None)
        except TypeError:
            return f"a reward is called as reward(inputs, prediction), which {_describe(obj)} cannot accept"
        except ValueError:  # no signature available (some builtins): cannot check, accept
            pass
        return None
    if isinstance(obj, type):
        return f"register an instance, not the class {obj.__qualname__} (e.g. {obj.__qualname__}())"
    for member, expected in _protocol_members(protocol):
        where = f"{protocol.__module__}.{protocol.__qualname__}"
        if not hasattr(obj, member):
            kind_of = "method" if expected is not None else "attribute"
            return f'{obj!r} does not satisfy {where}: missing {kind_of} "{member}"'
        if expected is None:
            continue
        value = getattr(obj, member)
        if not callable(value):
            return f'{obj!r} does not satisfy {where}: "{member}" must be a method'
        if inspect.iscoroutinefunction(expected) and not inspect.iscoroutinefunction(value):
            return f'{obj!r} does not satisfy {where}: "{member}" must be a coroutine function (async def)'
    return None


def _protocol_members(protocol: type) -> Iterator[tuple[str, Callable[..., Any] | None]]:
    """``(name, function or None for a data member)`` of each member ``protocol`` declares.

    Read from the protocol class itself so the check cannot drift from ``bestofn_core.protocols``.
    """
    for name in getattr(protocol, "__annotations__", {}):
        yield name, None
    for name, value in vars(protocol).items():
        if not name.startswith("_") and inspect.isfunction(value):
            yield name, value


def _describe(obj: Any) -> str:
    try:
        return f"{getattr(obj, '__qualname__', obj)!s}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return repr(obj)
