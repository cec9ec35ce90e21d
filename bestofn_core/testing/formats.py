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
# CompactAdapter's last line: 'Reply with the answer only.', 'Reply with the answer only, a whole number.'
# or 'Reply with a "Reasoning:" line, then an "Answer:" line.'
_COMPACT_ONE_RE = re.compile(r"^Reply with the ([A-Za-z0-9 ]+?) only(?:[,.]| \()", re.MULTILINE)
_COMPACT_MANY_RE = re.compile(r'^Reply with an? "[^"\n]+:" line', re.MULTILINE)
_COMPACT_LABEL_RE = re.compile(r'"([^"\n]+):" line')


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
    When both phrases occur, the later one wins. ``("compact", names)`` when the text ends with the
    CompactAdapter's request (``Reply with the answer only.``, ``Reply with a "Reasoning:" line, then an
    "Answer:" line.``): names are the labels in lower case, spaces as underscores.
    """
    compact = _compact_fields(text)
    if compact:
        return "compact", compact
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


def _compact_fields(text: str) -> list[str]:
    lines = text.rstrip().rsplit("\n", 1)
    last = lines[-1]
    if _COMPACT_MANY_RE.match(last):
        return _unique([_field_name(label) for label in _COMPACT_LABEL_RE.findall(last)])
    one = _COMPACT_ONE_RE.match(last)
    return [_field_name(one.group(1))] if one else []


def _field_name(label: str) -> str:
    return "_".join(label.strip().lower().split())


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def render_fields(form: str, values: dict[str, Any]) -> str:
    """Render output field ``values`` (in order) in ``form``: "chat", "json" or "text".

    "chat" gives ``[[ ## name ## ]]`` sections separated by blank lines and ending with
    ``[[ ## completed ## ]]`` (non-string values JSON-encoded); "json" gives one JSON object (values encoded
    natively); "compact" gives a single value alone and several as ``Label: value`` lines (CompactAdapter's
    form); "text" gives the values alone, separated by blank lines.
    """
    if form == "chat":
        sections = [f"[[ ## {name} ## ]]\n{_as_text(value)}" for name, value in values.items()]
        sections.append("[[ ## completed ## ]]")
        return "\n\n".join(sections)
    if form == "json":
        return json.dumps(values, ensure_ascii=False, default=str)
    if form == "compact":
        if len(values) == 1:
            return _as_text(next(iter(values.values())))
        return "\n".join(f"{_label(name)}: {_as_text(value)}" for name, value in values.items())
    if form == "text":
        return "\n\n".join(_as_text(value) for value in values.values())
    raise ValueError(f"unknown form {form!r}; expected 'chat', 'json', 'compact' or 'text'")


def _label(name: str) -> str:
    return " ".join(word.capitalize() for word in name.split("_"))
