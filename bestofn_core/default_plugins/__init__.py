"""Built-in plugins, registered through the same hooks as external ones.

Each module here is a plugin exactly like one published by a third party: it defines ``@hookimpl``
functions, and it must stay cheap to import (a backend imports its client library lazily, on first use).
The plugin's name, its namespace in ``"plugin:name"`` references and in ``BESTOFN_BLOCK_PLUGINS``, is the
module's name without a trailing kind word: ``litellm_backend`` -> ``litellm``, ``json_serializer`` ->
``json``, ``selection_policies`` -> ``selection_policies`` (see ``builtin_plugin_name``). The name must be
known without importing the module, so that a blocked built-in never runs.
"""

from __future__ import annotations

__all__ = ["BUILTIN_PLUGINS", "builtin_plugin_name"]

#: Modules registered as built-in plugins, in this order, before any entry-point plugin.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "bestofn_core.default_plugins.litellm_backend",
    "bestofn_core.default_plugins.json_serializer",
    "bestofn_core.default_plugins.pickle_serializer",
    "bestofn_core.default_plugins.selection_policies",
    "bestofn_core.default_plugins.executors",
    "bestofn_core.default_plugins.adapters",
)

# Singular kind words only: a module offering several items (``selection_policies``) keeps its name.
_KIND_SUFFIXES = ("_backend", "_serializer", "_policy", "_executor", "_reward")


def builtin_plugin_name(module: str) -> str:
    """The plugin name of a built-in module: ``"....default_plugins.json_serializer"`` -> ``"json"``."""
    basename = module.rsplit(".", 1)[-1]
    for suffix in _KIND_SUFFIXES:
        if basename.endswith(suffix) and len(basename) > len(suffix):
            return basename[: -len(suffix)]
    return basename
