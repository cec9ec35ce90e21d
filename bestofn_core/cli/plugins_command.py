"""``bestofn plugins``: list installed plugins, what they registered, where they came from, their errors."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from bestofn_core._version import __version__

if TYPE_CHECKING:
    from bestofn_core.plugins import PluginInfo

__all__ = ["add_plugins_command", "plugin_load_errors"]


def add_plugins_command(commands: Any) -> None:
    """Declare ``bestofn plugins`` on the ``commands`` subparsers."""
    parser = commands.add_parser(
        "plugins",
        help="list installed plugins, what they registered and their load errors",
        description=(
            "List the plugins found through the 'bestofn' entry-point group: name, distribution and "
            "version, where each was loaded from, what it registered, and any load error with its "
            "traceback. Broken plugins are shown, not fatal (exit status 0)."
        ),
    )
    parser.add_argument("--all", action="store_true", help="include the built-in plugins")
    parser.add_argument("--json", action="store_true", help="print a JSON document, for scripts")
    parser.set_defaults(handler=_run_plugins)


def _run_plugins(args: argparse.Namespace) -> int:
    import logging
    import traceback

    import orjson

    from bestofn_core.errors import PluginLoadError
    from bestofn_core.plugins import ENTRY_POINT_GROUP, get_registry

    plugin_logger = logging.getLogger("bestofn_core.plugins")
    # Load failures are printed below with their tracebacks, so the logger's one-line warnings would
    # only repeat them on stderr; hook tracing (BESTOFN_TRACE_PLUGINS=1) is what this command shows.
    handler: logging.Handler = logging.NullHandler()
    if os.environ.get("BESTOFN_TRACE_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.DEBUG)
        handler.addFilter(lambda record: record.levelno == logging.DEBUG)
    previous_level = plugin_logger.level
    plugin_logger.addHandler(handler)
    plugin_logger.setLevel(logging.DEBUG if isinstance(handler, logging.StreamHandler) else previous_level)
    try:
        registry = get_registry()
    except PluginLoadError as exc:  # strict mode turned the first plugin error into an exception
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        sys.stderr.write("bestofn: BESTOFN_STRICT_PLUGINS is set; unset it to list every plugin.\n")
        return 1
    finally:
        plugin_logger.removeHandler(handler)
        plugin_logger.setLevel(previous_level)
    infos = [info for info in registry.plugins if args.all or not info.builtin]
    # which model strings each backend claims: what decides which backend serves an LM(model)
    prefixes = {
        registration.qualified_name: list(registration.options.get("prefixes") or ())
        for registration in registry.registrations("lm_backend")
    }
    if args.json:
        document = {
            "bestofn_core_version": __version__,
            "entry_point_group": ENTRY_POINT_GROUP,
            "plugins": [info.to_dict() for info in infos],
            "lm_backend_prefixes": prefixes,
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    sys.stdout.write(_format_plugins(infos, prefixes, show_all=args.all))
    return 0


def _format_plugins(infos: list[PluginInfo], prefixes: dict[str, list[str]], *, show_all: bool) -> str:
    lines: list[str] = []
    if not infos:
        lines.append("No plugins installed.")
    for info in infos:
        lines.extend(_format_plugin(info, prefixes))
        lines.append("")
    if not show_all:
        lines.append("Built-in plugins are hidden; `bestofn plugins --all` lists them too.")
    if "BESTOFN_LOAD_PLUGINS" in os.environ:
        lines.append(
            f"BESTOFN_LOAD_PLUGINS={os.environ['BESTOFN_LOAD_PLUGINS']!r}: other plugins are not loaded."
        )
    return "\n".join(lines).rstrip("\n") + "\n"


def _format_plugin(info: PluginInfo, prefixes: dict[str, list[str]]) -> list[str]:
    from bestofn_core.plugins import KINDS, describe_kind

    if info.builtin:
        origin = f"built-in (bestofn-core {info.version})"
    elif info.distribution:
        origin = f"{info.distribution} {info.version}"
    else:
        origin = "registered in-process"
    status = "  [BLOCKED by BESTOFN_BLOCK_PLUGINS]" if info.blocked else "  [ERROR]" if info.error else ""
    lines = [f"{info.name}  {origin}{status}"]
    lines.append(f"  module:   {info.module or '?'}")
    lines.append(f"  location: {info.location or '?'}")
    for kind in KINDS:
        names = info.registered.get(kind)
        if names:
            shown = [_with_prefixes(name, prefixes) for name in names] if kind == "lm_backend" else names
            lines.append(f"  {describe_kind(kind, plural=True)}: {', '.join(shown)}")
    if info.error:
        lines.append("  error:")
        lines.append(textwrap.indent(info.error.rstrip("\n"), "    "))
    return lines


def _with_prefixes(name: str, prefixes: dict[str, list[str]]) -> str:
    """``"openai_http:openai (openai/)"``; a backend without a prefix is the fallback for every string."""
    claimed = [prefix for prefix in prefixes.get(name, []) if prefix]
    if not claimed:
        return f"{name} (every model string, as the fallback)"
    return f"{name} ({', '.join(claimed)})"


def plugin_load_errors() -> list[str]:
    """One line per installed plugin that is not loaded because of an error, for commands that use plugins.

    An import error, a name two distributions declare, a plugin that exits at import: the command may
    have needed what it would have registered (a reward, a backend for the model), so it says so.
    """
    from bestofn_core.plugins import get_registry

    lines = []
    for info in get_registry().plugins:
        if info.error and not info.blocked and not any(info.registered.values()):
            cause = info.error.strip().splitlines()[-1]
            origin = info.distribution or ("bestofn-core" if info.builtin else "registered in-process")
            lines.append(f'plugin "{info.name}" ({origin}) is not loaded: {cause} (see `bestofn plugins`)')
    return lines
