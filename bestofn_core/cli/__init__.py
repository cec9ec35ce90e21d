"""The ``bestofn`` command line.

Each command lives in its own module as one ``add_<command>_command`` function that declares its arguments
on a subparser and sets a ``handler``; adding a command means writing one and listing it in
``_COMMANDS``. Handlers import what they need themselves, so ``bestofn --help`` stays fast and loads no
plugin.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from bestofn_core._version import __version__
from bestofn_core.cli.plugins_command import add_plugins_command
from bestofn_core.cli.run_command import add_run_command

__all__ = ["build_parser", "main"]

#: A command's entry point: parsed arguments in, exit status out.
Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` on one line and exit with status 2."""
        # argparse prints the whole usage block first; one line is easier to read in scripts and CI logs.
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``bestofn`` parser with every command's subparser."""
    parser = _Parser(
        prog="bestofn",
        description="Best-of-N sampling for language-model programs: command-line tools.",
    )
    parser.add_argument("--version", action="version", version=f"bestofn-core {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for add_command in _COMMANDS:
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bestofn`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: return their status, do not exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    handler: Handler = args.handler
    return handler(args)


#: Every command, in ``--help`` order. Add new commands here.
_COMMANDS: tuple[Callable[[Any], None], ...] = (add_run_command, add_plugins_command)
