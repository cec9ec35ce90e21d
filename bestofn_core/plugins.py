"""The plugin manager: built-in and entry-point plugins, allow/block lists, error isolation, the registry.

``get_plugin_manager()`` builds a pluggy manager once, lazily: it registers the built-in plugins (the
modules listed in ``bestofn_core.default_plugins``), then every entry point of the ``bestofn`` group. Each
plugin is loaded in its own ``try`` so one broken plugin never breaks the others: its error is recorded
(``bestofn plugins`` shows it) unless ``BESTOFN_STRICT_PLUGINS=1`` asks for an exception instead.

``get_registry()`` calls the ``register_*`` hooks, one plugin at a time (again for isolation), checks every
registration against ``bestofn_core.protocols`` and indexes it by kind and ``"plugin:name"`` (the private
modules ``_registration`` and ``_registry`` do that; their public names are re-exported here). It is cached
until a plugin is registered or unregistered. Environment variables, read when the manager is built
(call ``reset_plugins()`` after changing them):

- ``BESTOFN_LOAD_PLUGINS``: unset loads every entry point; ``""`` loads none; ``"a,b"`` only those.
- ``BESTOFN_BLOCK_PLUGINS="a,b"``: never load these names, built-ins included.
- ``BESTOFN_STRICT_PLUGINS=1``: the first plugin error raises ``PluginLoadError``.
- ``BESTOFN_TRACE_PLUGINS=1``: log every hook call (pluggy tracing) to the ``bestofn_core.plugins`` logger.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import importlib_metadata
import pluggy

from bestofn_core import default_plugins, hookspecs
from bestofn_core._registration import _format_error, build_registry

# Defined in the private _registry module; importable from here, as they always were.
from bestofn_core._registry import _HOOK_NAMES, KINDS, Kind, PluginInfo, Registration, Registry, describe_kind
from bestofn_core._version import __version__
from bestofn_core.errors import PluginError, PluginLoadError

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
                registry = build_registry(self)
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
    blocked = _env_names("BESTOFN_BLOCK_PLUGINS")
    for name in blocked:
        pm.set_blocked(name)
    for module in default_plugins.BUILTIN_PLUGINS:
        _load_builtin(pm, module)
    allowed = _env_names("BESTOFN_LOAD_PLUGINS") if "BESTOFN_LOAD_PLUGINS" in os.environ else None
    _load_entry_points(pm, allowed, {_normalized(name) for name in blocked})
    return pm


def _normalized(name: str) -> str:
    """A distribution name as packaging compares them (``Bestofn_Rewards`` is ``bestofn-rewards``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(ep: importlib_metadata.EntryPoint) -> set[str]:
    """What an allow or block list can call an entry point: its name, or its distribution's name."""
    return {ep.name} | ({_normalized(ep.dist.name)} if ep.dist is not None else set())


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
    except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() at import must not end the program
        info.location = _module_location(module)
        _record_failure(pm, info, exc, f'Built-in plugin "{name}" ({module}) failed to load')
        return
    info.location = _module_location(module)
    pm._record(info, plugin)


def _load_entry_points(pm: BestOfNPluginManager, allowed: list[str] | None, blocked: set[str]) -> None:
    # sorted by name, then distribution: the load order (and so every message) never depends on sys.path
    entry_points = sorted(
        importlib_metadata.entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (ep.name, _normalized(ep.dist.name) if ep.dist is not None else ""),
    )
    wanted = None if allowed is None else {_normalized(name) for name in allowed} | set(allowed)
    chosen: list[importlib_metadata.EntryPoint] = []
    for ep in entry_points:
        if wanted is not None and not _names(ep) & wanted:
            pm._not_loaded.append(ep.name)
        else:
            chosen.append(ep)
    for ep in chosen:
        dist = ep.dist
        info = PluginInfo(
            ep.name,
            ep.module,
            dist.name if dist is not None else None,
            dist.version if dist is not None else None,
            builtin=False,
            location=None,
        )
        if pm.is_blocked(ep.name) or _names(ep) & blocked:
            info.blocked = True
            info.location = _module_location(ep.module)
            pm._record(info)
            continue
        rivals = [other for other in chosen if other.name == ep.name and not _names(other) & blocked]
        taken = next((record.info for record in pm._records if record.info.name == ep.name), None)
        try:
            if len(rivals) > 1:
                # neither loads: whichever came first on sys.path would otherwise act in the other's name
                raise PluginError(_clash_message(ep.name, rivals))
            if taken is not None and taken.builtin:
                raise PluginError(
                    f'The plugin name "{ep.name}" is already taken by bestofn-core (built-in); uninstall '
                    f"{info.distribution}, or keep it out with BESTOFN_BLOCK_PLUGINS={info.distribution}."
                )
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except (
            Exception,
            SystemExit,
        ) as exc:  # a plugin calling sys.exit() at import must not end the program
            info.location = _module_location(ep.module)
            _record_failure(pm, info, exc, f'Plugin "{ep.name}" ({info.distribution}) failed to load')
            continue
        info.location = _module_location(ep.module)
        pm._record(info, plugin)
    known = {name for ep in entry_points for name in _names(ep)}
    for name in allowed or ():
        if name not in known and _normalized(name) not in known:
            logger.warning(
                "BESTOFN_LOAD_PLUGINS names %r, but no installed plugin or distribution has that name", name
            )


def _clash_message(name: str, rivals: list[importlib_metadata.EntryPoint]) -> str:
    declared = " and ".join(
        f"{ep.dist.name} {ep.dist.version} ({ep.value})" if ep.dist is not None else ep.value for ep in rivals
    )
    count = "two" if len(rivals) == 2 else str(len(rivals))
    return (
        f'The plugin name "{name}" is declared by {count} distributions: {declared}. None is loaded, so '
        "none can act in another's name. Keep the one you trust: uninstall the others, or name the trusted "
        "distribution in BESTOFN_LOAD_PLUGINS (with the other plugins you use), or the others in "
        "BESTOFN_BLOCK_PLUGINS. `bestofn plugins` shows where each is installed."
    )


def _record_failure(pm: BestOfNPluginManager, info: PluginInfo, exc: BaseException, summary: str) -> None:
    if pm.strict:
        raise PluginLoadError(f"{summary}: {type(exc).__name__}: {exc}") from exc
    info.error = _format_error(exc)
    if isinstance(exc, SystemExit):
        info.error += (
            "The plugin ended the program while it was imported: it calls sys.exit() or parses the command "
            "line (argparse) at import, as a script would. It is skipped; fix or uninstall it.\n"
        )
    logger.warning("%s: %s: %s (run `bestofn plugins` for details)", summary, type(exc).__name__, exc)
    logger.debug("%s", info.error)
    pm._record(info)


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
