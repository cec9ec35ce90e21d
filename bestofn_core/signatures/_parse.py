"""The signature-string parser: ``"a, b: int -> c: list[str]"`` into typed input and output fields.

The grammar: inputs, a single ``->``, outputs. Each side is a comma-separated list of ``name`` (typed ``str``)
or ``name: type``; commas and arrows inside brackets and quotes belong to the type, and the input side may
be empty. Types are read with ``ast`` and resolved against ``ALLOWED_TYPES`` and the caller's
``custom_types`` only: nothing in the string is ever evaluated. Which field names are reserved is the
caller's knowledge (``bestofn_core.signatures.signature`` passes the pydantic/Signature attribute names).
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Mapping, Set
from typing import Any, Literal, Optional, Union

from pydantic.fields import FieldInfo

from bestofn_core.errors import SignatureError
from bestofn_core.signatures.field import InputField, OutputField, mark_untyped

#: name -> (annotation, field) for each field of a signature, in order.
FieldSpecs = dict[str, tuple[Any, FieldInfo]]

#: Type names a signature string may use. Anything else must be passed in ``custom_types``.
ALLOWED_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "Optional": Optional,
    "Union": Union,
    "Literal": Literal,
    "Any": Any,
    # typing's capitalized aliases, as DSPy users often write them; they mean the builtins.
    "List": list,
    "Dict": dict,
    "Tuple": tuple,
    "Set": set,
}

_SPECIAL_FORMS_NEEDING_ARGS = {"Optional": Optional, "Union": Union, "Literal": Literal}


def parse_fields(
    spec: str, custom_types: Mapping[str, Any] | None = None, *, reserved: Set[str] = frozenset()
) -> FieldSpecs:
    """Parse ``"a, b: int -> c: list[str]"`` into name -> (type, field), inputs first.

    ``custom_types`` are the type names allowed besides ``ALLOWED_TYPES``; a field named in ``reserved``
    (or starting with an underscore) is refused. Raises ``SignatureError`` saying what is wrong and how to
    write it instead.
    """
    _check_balanced(spec)
    sides = _split_top_level(spec, "->")
    if len(sides) == 1:
        raise SignatureError(
            f"Invalid signature {spec!r}: it has no '->'. Write the inputs, '->', then the outputs, "
            "e.g. 'question -> answer'."
        )
    if len(sides) > 2:
        raise SignatureError(
            f"Invalid signature {spec!r}: it has {len(sides) - 1} '->' but needs exactly one between the "
            "inputs and the outputs, e.g. 'context, question -> answer'."
        )
    inputs = _parse_side(spec, sides[0], "input", custom_types, reserved)
    outputs = _parse_side(spec, sides[1], "output", custom_types, reserved)
    if not outputs:
        raise SignatureError(
            f"Invalid signature {spec!r}: it has no output fields. Name at least one after '->', "
            "e.g. 'question -> answer'."
        )
    specs: FieldSpecs = {}
    for kind, side in (("input", inputs), ("output", outputs)):
        for name, annotation in side:
            if name in specs:
                raise SignatureError(
                    f"Invalid signature {spec!r}: field `{name}` appears more than once; "
                    "field names must be unique."
                )
            field = InputField() if kind == "input" else OutputField()
            # a field written without a type is a str, marked so its values are never type-checked
            specs[name] = (str, mark_untyped(field)) if annotation is None else (annotation, field)
    return specs


def _parse_side(
    spec: str, side: str, kind: str, custom_types: Mapping[str, Any] | None, reserved: Set[str]
) -> list[tuple[str, Any]]:
    if not side.strip():
        return []
    fields = []
    for entry in _split_top_level(side, ","):
        name, colon, type_text = entry.partition(":")
        name = name.strip()
        if not name:
            raise SignatureError(
                f"Invalid signature {spec!r}: an {kind} field has no name (look for a doubled or trailing "
                "comma, or a ':' with no name before it)."
            )
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SignatureError(
                f"Invalid signature {spec!r}: `{name}` is not a valid field name; use a Python identifier "
                "(letters, digits and underscores, not starting with a digit, not a keyword)."
            )
        if name.startswith("_") or name in reserved:
            why = "it starts with an underscore" if name.startswith("_") else "a pydantic/Signature attribute"
            raise SignatureError(
                f"Invalid signature {spec!r}: field name `{name}` is reserved ({why}); rename the field."
            )
        if colon and not type_text.strip():
            raise SignatureError(
                f"Invalid signature {spec!r}: field `{name}` has ':' but no type; "
                f"write e.g. `{name}: str` or drop ':'."
            )
        annotation = _parse_type(spec, name, type_text.strip(), custom_types) if colon else None
        fields.append((name, annotation))
    return fields


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is outside brackets and quotes."""
    parts: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _check_balanced(spec: str) -> None:
    """Refuse unclosed or mismatched brackets and quotes up front: they would hide the '->' and ','."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = ""
    escaped = False
    for char in spec:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            raise SignatureError(f"Invalid signature {spec!r}: `{char}` has no matching opening bracket.")
    if quote:
        raise SignatureError(f"Invalid signature {spec!r}: a {quote} quote is never closed.")
    if stack:
        raise SignatureError(f"Invalid signature {spec!r}: `{stack[-1]}` is never closed.")


def _parse_type(spec: str, field: str, text: str, custom_types: Mapping[str, Any] | None) -> Any:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SignatureError(
            f"Invalid signature {spec!r}: cannot parse the type `{text}` of field `{field}` ({exc.msg}). "
            "Write a type like int, list[str], dict[str, int], Literal['a', 'b'] or int | None."
        ) from None
    resolver = _TypeResolver(spec, field, text, dict(custom_types or {}))
    annotation = resolver.resolve(tree.body)
    for form_name, form in _SPECIAL_FORMS_NEEDING_ARGS.items():
        if annotation is form:
            raise SignatureError(
                f"Invalid signature {spec!r}: the type of field `{field}` is a bare {form_name}; "
                f"give it arguments, e.g. {form_name}[...]."
            )
    return annotation


class _TypeResolver:
    """Turns the ``ast`` of a type expression into a type, looking names up in allow-lists only."""

    def __init__(self, spec: str, field: str, text: str, custom_types: dict[str, Any]) -> None:
        self.spec, self.field, self.text, self.custom_types = spec, field, text, custom_types

    def fail(self, problem: str) -> SignatureError:
        return SignatureError(
            f"Invalid signature {self.spec!r}: in the type `{self.text}` of field `{self.field}`, {problem}"
        )

    def resolve(self, node: ast.expr) -> Any:
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self._lookup(node)
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Constant) and node.value is Ellipsis:
            return Ellipsis
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return Union[self.resolve(node.left), self.resolve(node.right)]  # noqa: UP007 (built at runtime)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        raise self.fail(f"`{ast.unparse(node)}` is not a type expression (use names, X[...] and X | Y).")

    def _lookup(self, node: ast.Name | ast.Attribute) -> Any:
        dotted = ast.unparse(node)
        if dotted in self.custom_types:
            return self.custom_types[dotted]
        if isinstance(node, ast.Name) and node.id in ALLOWED_TYPES:
            return ALLOWED_TYPES[node.id]
        root = dotted.split(".")[0]
        if isinstance(node, ast.Attribute) and root in self.custom_types:
            value = self.custom_types[root]
            for attr in dotted.split(".")[1:]:
                if not hasattr(value, attr):
                    raise self.fail(f"`{root}` has no attribute `{attr}`.")
                value = getattr(value, attr)
            return value
        raise self.fail(
            f"the type name `{dotted}` is unknown. Allowed names: {', '.join(sorted(ALLOWED_TYPES))}. "
            "Pass other types with custom_types, "
            f"e.g. make_signature(..., custom_types={{'{root}': {root}}})."
        )

    def _subscript(self, node: ast.Subscript) -> Any:
        origin = self.resolve(node.value)
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if not elements:  # X[()]: origin[args[0]] below would fail with an IndexError
            raise self.fail(f"`{ast.unparse(node)}` has no type arguments.")
        if origin is Literal:
            args: list[Any] = [self._literal_value(element) for element in elements]
        else:
            args = [self.resolve(element) for element in elements]
        try:
            return origin[tuple(args) if len(args) > 1 else args[0]]
        except TypeError as exc:
            raise self.fail(f"`{ast.unparse(node)}` is not a valid type ({exc}).") from None

    def _literal_value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(
            node.value, (str, int, float, bool, bytes, type(None))
        ):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            return -node.operand.value
        raise self.fail(f"Literal values must be constants like 'a', 1 or True, got `{ast.unparse(node)}`.")
