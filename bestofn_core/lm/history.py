"""LM call history: bounded lists on each LM, each running module and the process, and a printer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bestofn_core.settings import settings

#: Every LM call of the process, newest last (bounded by ``settings.max_history_size``).
GLOBAL_HISTORY: list[dict[str, Any]] = []


def record(entry: dict[str, Any], histories: Iterable[list[dict[str, Any]]]) -> None:
    """Append ``entry`` to the global history and each of ``histories``, trimming to the size bound.

    Nothing is recorded while ``settings.disable_history`` is true.
    """
    if settings.disable_history:
        return
    limit = settings.max_history_size
    for history in (GLOBAL_HISTORY, *histories):
        history.append(entry)
        if len(history) > limit:
            del history[: len(history) - limit]


def pretty_print_history(history: list[dict[str, Any]], n: int = 1) -> str:
    """Print the last ``n`` entries of ``history`` (messages and outputs) and return the text."""
    lines: list[str] = []
    for entry in history[-n:] if n > 0 else []:
        when = entry.get("timestamp", "")
        lines.append(f"\n[{when}] {entry.get('model')}" + (" (cached)" if entry.get("cache_hit") else ""))
        for message in entry.get("messages") or []:
            content = message.get("content", "")
            if isinstance(content, list):
                content = "\n".join(str(part.get("text", part)) for part in content)
            lines.append(f"\n{message.get('role', '?').title()} message:\n\n{content}")
        outputs = entry.get("outputs") or []
        for index, output in enumerate(outputs):
            label = "Response" if len(outputs) == 1 else f"Response {index + 1}/{len(outputs)}"
            lines.append(f"\n{label}:\n\n{output}")
    text = "\n".join(lines) + "\n"
    print(text)
    return text


def inspect_history(n: int = 1) -> str:
    """Print (and return) the last ``n`` LM calls of the whole process."""
    return pretty_print_history(GLOBAL_HISTORY, n)
