"""Building the registry: call each plugin's ``register_*`` hooks, check what it registers, index it.

``build_registry(pm)`` calls every hook once per plugin (so one failing hook leaves the other plugins'
items intact), hands each call a ``register`` callback that checks names, options and the item's shape
against ``bestofn_core.protocols``, and assembles the ``Registry`` with one ``PluginInfo`` per plugin
(its registrations, load and hook errors). Private: ``bestofn_core.plugins`` calls it and caches the result.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

import importlib_metadata
import pluggy

from bestofn_core import hookspecs
from bestofn_core._registry import _KIND_SPECS, KINDS, Kind, PluginInfo, Registration, Registry, describe_kind
from bestofn_core.errors import PluginLoadError, RegistrationError

if TYPE_CHECKING:
    from bestofn_core.plugins import BestOfNPluginManager

# Every plugin message goes to the one logger `bestofn plugins` captures and the docs name.
logger = logging.getLogger("bestofn_core.plugins")

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def build_registry(pm: BestOfNPluginManager) -> Registry:
    """Call the ``register_*`` hooks of every plugin ``pm`` holds and index what they register.

    A failing hook call contributes nothing and is recorded as that plugin's error (raised as
    ``PluginLoadError`` instead when ``pm.strict``).
    """
    plugins = [(name, plugin) for name, plugin in pm.list_name_plugin() if plugin is not None]
    # Plugin names are unique and each (kind, plugin) hook call is made once, so the qualified names of
    # one kind never collide across calls; the collector rejects duplicates within a call.
    registrations: list[Registration] = []
    hook_errors: dict[str, list[str]] = {}
    for kind in KINDS:
        hook_name = _KIND_SPECS[kind].hook
        hook = getattr(pm.hook, hook_name)
        implementers = {id(impl.plugin) for impl in hook.get_hookimpls()}
        for plugin_name, plugin in plugins:
            if id(plugin) not in implementers:
                continue
            collector = _Collector(kind, plugin_name)
            # Calling each plugin on its own is what lets one failing hook leave the others' items intact.
            caller = pm.subset_hook_caller(hook_name, [other for _, other in plugins if other is not plugin])
            try:
                results = caller(register=collector.callback())
                collector.raise_swallowed_error()
            except (Exception, SystemExit) as exc:  # a hook calling sys.exit() must not end the program
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
            registrations.extend(collector.registrations)
    return Registry(registrations, _plugin_infos(pm, registrations, hook_errors), not_loaded=pm._not_loaded)


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
    except (TypeError, OSError):  # built-ins, and classes of an interactive __main__ (OSError), have no file
        location = None
    return PluginInfo(name, module, None, None, builtin=False, location=location)


# Frames of the loading machinery (bestofn_core.plugins, this module, pluggy, importlib): they open every
# plugin traceback and say nothing about the plugin, so they are cut from the front of what
# `bestofn plugins` shows. plugins.py is named by path: importing it from here would be circular.
_MACHINERY_FILES: tuple[str, ...] = (
    os.path.join(os.path.dirname(__file__), "plugins.py"),
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


class _Collector:
    """The ``register`` callbacks handed to one plugin's hook: checks each item, keeps them pending.

    Items are committed only when the hook returns without error, so a failing hook call contributes
    nothing (atomic per plugin per hook).
    """

    def __init__(self, kind: Kind, plugin: str) -> None:
        self.kind = kind
        self.plugin = plugin
        self.registrations: list[Registration] = []
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
            hookspecs.RegisterAdapter,
        ] = (
            self.lm_backend,
            self.reward,
            self.selection_policy,
            self.serializer,
            self.executor,
            self.adapter,
        )
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

    def adapter(self, adapter: Any, /, *, name: str) -> None:
        """``register`` of ``register_adapters``."""
        self._add(adapter, name)

    def _add(self, obj: Any, name: str, **options: Any) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            self._fail(
                f"invalid name {name!r}: use letters, digits, '_', '-' and '.', without ':'", item=None
            )
        problem = _shape_problem(self.kind, obj, options)
        if problem:
            self._fail(problem, item=name)
        qualified = f"{self.plugin}:{name}"
        previous = next((reg for reg in self.registrations if reg.qualified_name == qualified), None)
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
