"""Typed values in prompts: how a value is written for the LM, and how the LM's text is read back.

Every adapter goes through these functions, so a value written in a demo is read back by the same rules
that read the LM's answer. Reading is forgiving about form (JSON or Python literals, code fences, quotes
around a Literal choice) and strict about content: pydantic validates the result against the field's type.
"""

from __future__ import annotations

import ast
import enum
import functools
import json
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python

_NONE_TYPE = type(None)
_NONE_WORDS = frozenset({"", "none", "null"})
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_LITERAL_WRAPPER = re.compile(r"^(?:Literal|str)\[(.*)\]$", re.DOTALL)
# A number inside a sentence. A sign counts only where it cannot be the minus between two operands
# ("52-26" ends with 26, not -26); "1,234" is one number, "1,2,3" three.
_NUMBER = re.compile(r"(?:(?<![\w).])[-+])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


# ----------------------------------------------------------------------------------------------------------
# Writing values


def format_value(value: Any, annotation: Any = str) -> str:
    """Write ``value`` for a prompt, exactly as DSPy does: a list given for a ``str`` field as a numbered
    list of «quoted» items (``N/A`` when empty); dicts, lists, tuples, sets and pydantic models as JSON;
    anything else (text, numbers, booleans, enums, dates, ``None``) as its plain JSON-compatible form
    (``42``, ``True``, ``None``, ``2024-01-31``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and annotation is str:
        return _numbered_list([item if isinstance(item, str) else format_value(item) for item in value])
    jsonable = to_jsonable(value)
    if isinstance(jsonable, (dict, list)):
        return json.dumps(jsonable, ensure_ascii=False)
    return str(jsonable)


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible data (models to dicts, enums to values, sets to lists, others to str)."""
    try:
        return to_jsonable_python(value, fallback=str)
    except (PydanticSerializationError, ValueError, TypeError, RecursionError):
        return str(value)


def _numbered_list(items: list[str]) -> str:
    # DSPy's look for passages: each item in «guillemets» so that its bounds are clear, numbered when
    # there are several; an item that has a line break or a guillemet of its own gets a fenced block.
    if not items:
        return "N/A"
    if len(items) == 1:
        return _quoted_item(items[0])
    return "\n".join(f"[{i}] {_quoted_item(item)}" for i, item in enumerate(items, start=1))


def _quoted_item(text: str) -> str:
    if "\n" not in text and "«" not in text and "»" not in text:
        return f"«{text}»"
    indented = text.replace("\n", "\n    ")
    return f"«««\n    {indented}\n»»»"


# ----------------------------------------------------------------------------------------------------------
# Reading values


def parse_value(text: str, annotation: Any) -> Any:
    """Read the LM's ``text`` as a value of type ``annotation``; ``ValueError`` says what was expected.

    ``str`` gives the text stripped. Other types read the text as JSON, then as a Python literal (after
    removing a Markdown code fence), else take it as a plain string, and validate that with pydantic:
    ``"42"`` is ``42`` for ``int`` but ``"forty"`` is an error; ``Literal`` choices may come quoted;
    ``Optional`` fields read ``""``, ``None`` and ``null`` as ``None``.
    """
    annotation = _unwrap_annotated(annotation)
    if annotation is str:
        return text.strip()
    stripped = text.strip()
    if allows_none(annotation) and stripped.lower() in _NONE_WORDS:
        return None
    if get_origin(annotation) is Literal:
        return _match_literal(stripped, annotation)
    if _is_optional_text(annotation):
        # ``Optional[str]``: the text is already a valid value, decoding it could only hurt. Other unions
        # with ``str`` (``Union[int, str]``) decode first, as DSPy does: "5" is 5 there.
        return validate_value(stripped, annotation)
    return validate_value(_decode(stripped), annotation)


def last_number(text: str) -> str | None:
    """The last number written in ``text``, thousands separators removed; ``None`` when it holds none.

    Answers in sentences end with their number: ``"7 x 8 = 56."`` and ``"The answer is 56."`` give
    ``"56"``, ``"It costs $1,234.50"`` gives ``"1234.50"``, ``"52-26=-4"`` gives ``"-4"``.
    """
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def coerce_value(value: Any, annotation: Any) -> Any:
    """Validate a value that came out of a JSON document (``JSONAdapter``) against ``annotation``.

    Strings go through ``parse_value`` (so ``"42"`` or ``"[1, 2]"`` still work); a number given for a
    ``str`` field becomes its text; everything else is validated by pydantic.
    """
    annotation = _unwrap_annotated(annotation)
    if isinstance(value, str):
        return parse_value(value, annotation)
    if annotation is str:
        if value is None:
            raise ValueError("expected str, got null")
        return format_value(value)
    if get_origin(annotation) is Literal:
        return _match_literal(value, annotation)
    return validate_value(value, annotation)


def validate_value(value: Any, annotation: Any) -> Any:
    """Validate ``value`` against ``annotation`` with pydantic (lax), refusing booleans for numbers."""
    if annotation in (int, float) and isinstance(value, bool):
        raise ValueError(f"expected {annotation.__name__}, got the boolean {value}")
    try:
        return type_adapter(annotation).validate_python(value)
    except pydantic.ValidationError as exc:
        # LMs often answer an enum by its member name rather than its value.
        if (
            isinstance(annotation, enum.EnumMeta)
            and isinstance(value, str)
            and value in annotation.__members__
        ):
            return annotation.__members__[value]
        problems = "; ".join(_describe(error) for error in exc.errors(include_url=False)[:3])
        raise ValueError(
            f"expected {annotation_name(annotation)}, got {_preview(value)}: {problems}"
        ) from None


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    return f"{location}: {error['msg']}" if location else str(error["msg"])


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _decode(text: str) -> Any:
    """The data ``text`` spells as JSON or as a Python literal, or the text itself when it spells neither."""
    fenced = _FENCE.match(text)
    body = fenced.group(1).strip() if fenced else text
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(body)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return body


def _match_literal(value: Any, annotation: Any) -> Any:
    """The ``Literal`` choice ``value`` names, tolerating quotes and a ``Literal[...]`` wrapper around it."""
    choices = get_args(annotation)
    for choice in choices:
        if type(choice) is type(value) and choice == value:
            return choice
    if isinstance(value, str):
        text = value.strip()
        wrapped = _LITERAL_WRAPPER.match(text)
        if wrapped:
            text = wrapped.group(1).strip()
        if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        for choice in choices:
            if text == (choice if isinstance(choice, str) else format_value(choice)):
                return choice
            if not isinstance(choice, str) and text in (json.dumps(choice), repr(choice)):
                return choice
    allowed = ", ".join(repr(choice) for choice in choices)
    raise ValueError(f"expected one of {allowed}, got {_preview(value)}")


def _unwrap_annotated(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _union_args(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()


def allows_none(annotation: Any) -> bool:
    """Whether ``None`` is a value of ``annotation``: ``Optional[X]``, ``X | None``, ``None`` itself."""
    return annotation is _NONE_TYPE or annotation is None or _NONE_TYPE in _union_args(annotation)


def _is_optional_text(annotation: Any) -> bool:
    return str in _union_args(annotation) and _NONE_TYPE in _union_args(annotation)


# pydantic builds a validator per type on each TypeAdapter(...): costly, so one per annotation is kept.
@functools.lru_cache(maxsize=512)
def _cached_type_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def type_adapter(annotation: Any) -> TypeAdapter[Any]:
    """A pydantic ``TypeAdapter`` for ``annotation``, built once per (hashable) annotation.

    Raises ``ValueError`` when pydantic cannot validate that type at all (e.g. an arbitrary class).
    """
    try:
        try:
            return _cached_type_adapter(annotation)
        except TypeError:  # an unhashable annotation (e.g. Annotated with a dict): build it each time
            return TypeAdapter(annotation)
    except pydantic.PydanticSchemaGenerationError as exc:
        raise ValueError(
            f"values of type {annotation_name(annotation)} cannot be read from text: {exc}"
        ) from None


# ----------------------------------------------------------------------------------------------------------
# Describing types to the LM


def annotation_name(annotation: Any) -> str:
    """A short, Python-looking type name: ``int``, ``list[str]``, ``Optional[int]``, ``Literal['a', 'b']``."""
    if annotation is _NONE_TYPE or annotation is None:
        return "None"
    if annotation is Ellipsis:
        return "..."
    if annotation is Any:
        return "Any"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return str(getattr(annotation, "__name__", None) or annotation).replace("typing.", "")
    if origin is Annotated:
        return annotation_name(args[0])
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not _NONE_TYPE]
        if len(others) == 1 and len(args) == 2:
            return f"Optional[{annotation_name(others[0])}]"
        return f"Union[{', '.join(annotation_name(arg) for arg in args)}]"
    return f"{annotation_name(origin)}[{', '.join(annotation_name(arg) for arg in args)}]"


def prompt_type_name(annotation: Any) -> str:
    """A type's name as DSPy's prompts write it, so that prompts stay byte-identical to DSPy's.

    ``int``, ``list[str]``, ``Literal['a', 'b']`` and model names read well; unions are written the way
    DSPy writes them too: ``Union[int, NoneType]`` for ``Optional[int]``, ``UnionType[int, NoneType]``
    for ``int | None``. Error messages use the friendlier ``annotation_name``.
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return annotation.__name__ if hasattr(annotation, "__name__") else str(annotation)
    if origin is Literal:
        names = (_quoted_literal(arg) if isinstance(arg, str) else prompt_type_name(arg) for arg in args)
    else:
        names = (prompt_type_name(arg) for arg in args)
    return f"{prompt_type_name(origin)}[{', '.join(names)}]"


def _quoted_literal(text: str) -> str:
    # the quotes that need no escaping: single unless the text has single quotes and no double ones
    if "'" in text and '"' not in text:
        return f'"{text}"'
    if "'" in text:
        return "'" + text.replace("'", "\\'") + "'"
    return f"'{text}'"


def output_type_note(annotation: Any) -> str | None:
    """What the LM must produce for an output of this type (``None`` for plain text), as DSPy words it:
    ``"must be a single int value"``, ``"must adhere to the JSON schema: {...}"``..."""
    annotation = _unwrap_annotated(annotation)
    if annotation is str:
        return None
    if annotation is bool:
        return "must be True or False"
    if annotation in (int, float):
        return f"must be a single {annotation.__name__} value"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return f"must be one of: {'; '.join(str(member.value) for member in annotation)}"
    if get_origin(annotation) is Literal:
        choices = "; ".join(str(choice) for choice in get_args(annotation))
        return f"must exactly match (no extra characters) one of: {choices}"
    try:
        schema = type_adapter(annotation).json_schema()
    except (ValueError, pydantic.PydanticUserError):
        return f"must be a valid Python {annotation_name(annotation)}"
    return f"must adhere to the JSON schema: {json.dumps(_type_first(schema), ensure_ascii=False)}"


def _type_first(schema: Any) -> Any:
    """``schema`` with every object's keys sorted, ``type`` first (DSPy's order, for the LM to read)."""
    if isinstance(schema, dict):
        ordered = sorted(schema.items(), key=lambda item: (item[0] != "type", item[0]))
        return {key: _type_first(value) for key, value in ordered}
    if isinstance(schema, list):
        return [_type_first(item) for item in schema]
    return schema
