"""Reading which output fields a prompt asks for, and writing answers in that format.

Shared by the test server and ``DummyLM``: they answer the library's adapters the way a model would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["render_fields", "requested_fields"]

_CHAT_PHRASE = "Respond with the corresponding output fields"
_JSON_PHRASE = "Respond with a JSON object in the following order of fields:"
_MARKER_RE = re.compile(r"\[\[ ## (\w+) ## \]\]")
_BACKTICK_NAME_RE = re.compile(r"`(\w+)`")


def _unique(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def requested_fields(text: str) -> tuple[str, list[str]]:
    """Find the output format and field names a prompt asks for.

    Returns ``("chat", names)`` when ``text`` contains the ChatAdapter's "Respond with the corresponding
    output fields, starting with the field `[[ ## a ## ]]`, ..." sentence (names are the ``[[ ## NAME ## ]]``
    markers after that phrase, without ``completed``), ``("json", names)`` when it contains the JSONAdapter's
    "Respond with a JSON object in the following order of fields: `a`, then `b`." sentence (names are the
    backticked names on that line), and ``("text", [])`` otherwise (also when the phrase names no fields).
    When both phrases occur, the later one wins.
    """
    chat_pos = text.rfind(_CHAT_PHRASE)
    json_pos = text.rfind(_JSON_PHRASE)
    if chat_pos < 0 and json_pos < 0:
        return "text", []
    if chat_pos > json_pos:
        tail = text[chat_pos + len(_CHAT_PHRASE) :]
        names = _unique([m for m in _MARKER_RE.findall(tail) if m != "completed"])
        return ("chat", names) if names else ("text", [])
    tail = text[json_pos + len(_JSON_PHRASE) :].lstrip(" \t")
    line = tail.split("\n", 1)[0]
    names = _unique(_BACKTICK_NAME_RE.findall(line))
    return ("json", names) if names else ("text", [])


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def render_fields(form: str, values: dict[str, Any]) -> str:
    """Render output field ``values`` (in order) in ``form``: "chat", "json" or "text".

    "chat" gives ``[[ ## name ## ]]`` sections separated by blank lines and ending with
    ``[[ ## completed ## ]]`` (non-string values JSON-encoded); "json" gives one JSON object (values encoded
    natively); "text" gives the values alone, separated by blank lines.
    """
    if form == "chat":
        sections = [f"[[ ## {name} ## ]]\n{_as_text(value)}" for name, value in values.items()]
        sections.append("[[ ## completed ## ]]")
        return "\n\n".join(sections)
    if form == "json":
        return json.dumps(values, ensure_ascii=False, default=str)
    if form == "text":
        return "\n\n".join(_as_text(value) for value in values.values())
    raise ValueError(f"unknown form {form!r}; expected 'chat', 'json' or 'text'")
