"""Telling an answer from a copy of the prompt's template.

Small models copy what a prompt shows as the answer's shape: DSPy's layout shows ``{answer}`` and
``[[ ## answer ## ]]`` where the value goes, and a 135M model (or a JSON grammar, which accepts any string)
gives that back as the answer. Such a value is no answer: every adapter's parse treats it as a parse
failure (``AdapterParseError``), so the adapter's fallback, BestOfN's ``fail_count`` and the candidate
table all see a failed attempt instead of a candidate that might win.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from bestofn_core.signatures.field import field_extra, infer_prefix

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature

__all__ = ["template_copy"]

# What a template is made of: a ``{name}`` placeholder, a ``[[ ## name ## ]]`` marker, a type note.
_PLACEHOLDER = re.compile(r"\{\s*\$?\{?\s*(\w+)\s*\}?\s*\}")
_MARKER = re.compile(r"\[\[\s*##\s*(\w+)\s*##\s*\]\]")
_TYPE_NOTE = re.compile(r"#\s*note:.*$", re.MULTILINE | re.IGNORECASE)
# What is left of a value made of template pieces: punctuation, quotes, brackets, "`" and whitespace.
_FILLER = re.compile(r"[\s\"'`.,:;()\[\]{}<>#*_\-]+")


def template_copy(
    value: Any, signature: type[Signature], template_texts: Iterable[str] = (), annotation: Any = str
) -> str | None:
    """What ``value`` copies from the prompt's template, or ``None`` when it is an answer.

    A value is a copy when it is made of nothing but template pieces: ``{name}`` placeholders, ``[[ ## name
    ## ]]`` markers, field names (``answer``, ``Answer``, ``"answer":``) and a field's prefix label, or
    when it is one of ``template_texts`` (sentences the adapter's prompt shows, such as its description of
    the structure) or the signature's instructions. Only values of text fields (``annotation`` ``str``,
    ``Optional[str]`` or ``Any``) are checked: a number, a list or a ``Literal`` choice parsed from the
    answer is a value of the field's type, never the template.
    """
    if not isinstance(value, str) or not _is_text(annotation):
        return None
    text = value.strip()
    if not text:
        return None
    pieces = [match.group(0) for regex in (_PLACEHOLDER, _MARKER) for match in regex.finditer(text)]
    rest = _squash(_TYPE_NOTE.sub(" ", _MARKER.sub(" ", _PLACEHOLDER.sub(" ", text))))
    if not rest and pieces:
        return pieces[0]
    names = {_squash(name) for name in signature.fields}
    names |= {_squash(_label(info)) for info in signature.fields.values()}
    names |= {_squash(infer_prefix(name)) for name in signature.fields}
    if rest and rest in names:
        return text if len(text) <= 60 else _clip(text)
    folded = _squash(text)
    for sentence in (*template_texts, signature.instructions):
        if sentence and _squash(sentence) == folded:
            return _clip(sentence)
    return None


def _is_text(annotation: Any) -> bool:
    if annotation in (str, Any, None):
        return True
    args = get_args(annotation)
    return (
        get_origin(annotation) in (Union, types.UnionType)
        and str in args
        and len(args) == 2
        and type(None) in args
    )


def _label(info: FieldInfo) -> str:
    prefix = field_extra(info).get("prefix")
    return str(prefix).rstrip(":").strip() if prefix else ""


def _squash(text: str) -> str:
    return " ".join(_FILLER.sub(" ", text).casefold().split())


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
