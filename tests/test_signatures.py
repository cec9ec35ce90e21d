"""Signatures: string and class forms, derived copies, saved state, and every malformed-string error."""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic
import pytest
from pydantic.fields import FieldInfo

from bestofn_core.errors import SignatureError
from bestofn_core.signatures import InputField, OutputField, Signature, ensure_signature, make_signature
from bestofn_core.signatures.field import FIELD_TYPE_KEY, infer_prefix


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


class Item(pydantic.BaseModel):
    name: str
    price: float


def _types(sig: type[Signature]) -> dict[str, Any]:
    return {name: info.annotation for name, info in sig.fields.items()}


# ---------------------------------------------------------------------------------------------- fields


def test_fields_carry_kind_desc_and_prefix() -> None:
    field = InputField(desc="a question", prefix="Q:")
    assert isinstance(field, FieldInfo)
    assert field.json_schema_extra == {FIELD_TYPE_KEY: "input", "desc": "a question", "prefix": "Q:"}
    assert OutputField().json_schema_extra == {FIELD_TYPE_KEY: "output"}


def test_field_defaults_are_filled_from_the_name() -> None:
    extra = QA.fields["question"].json_schema_extra
    assert isinstance(extra, dict)
    assert extra["prefix"] == "Question:" and extra["desc"] == "${question}"
    assert QA.fields["answer"].json_schema_extra["desc"] == "often between 1 and 5 words"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("question", "Question"),
        ("some_field", "Some Field"),
        ("camelCase", "Camel Case"),
        ("user_ID", "User ID"),
    ],
)
def test_infer_prefix(name: str, words: str) -> None:
    assert infer_prefix(name) == words


def test_pydantic_field_arguments_pass_through_and_constraints_are_described() -> None:
    field = OutputField(ge=0, le=10, default=3, description="a score")
    assert field.default == 3 and field.description == "a score"
    extra = field.json_schema_extra
    assert extra["desc"] == "a score"
    assert extra["constraints"] == "greater than or equal to: 0, less than or equal to: 10"


# ------------------------------------------------------------------------------------------ class form


def test_class_signature_views() -> None:
    assert QA.instructions == "Answer questions with short factoid answers."
    assert list(QA.input_fields) == ["question"] and list(QA.output_fields) == ["answer"]
    assert list(QA.fields) == ["question", "answer"]
    assert QA.signature == "question -> answer"
    assert "question -> answer" in repr(QA)


def test_class_without_docstring_gets_default_instructions() -> None:
    class Sum(Signature):
        a: int = InputField()
        b: int = InputField()
        total: int = OutputField()

    assert Sum.instructions == "Given the fields `a`, `b`, produce the fields `total`."


def test_fields_without_a_type_are_str_and_keep_their_order() -> None:
    class Untyped(Signature):
        context = InputField()
        question: str = InputField()
        answer = OutputField()

    assert list(Untyped.fields) == ["context", "question", "answer"]
    assert _types(Untyped) == {"context": str, "question": str, "answer": str}


def test_inputs_are_listed_before_outputs_whatever_the_declaration_order() -> None:
    class Mixed(Signature):
        answer: str = OutputField()
        question: str = InputField()

    assert list(Mixed.fields) == ["question", "answer"]
    assert Mixed.signature == "question -> answer"


def test_subclass_inherits_fields_and_instructions() -> None:
    class WithConfidence(QA):
        confidence: float = OutputField()

    assert WithConfidence.signature == "question -> answer, confidence"
    assert WithConfidence.instructions == QA.instructions


def test_signature_instances_are_pydantic_models() -> None:
    qa = QA(question="q", answer="a")
    assert qa.question == "q" and qa.model_dump() == {"question": "q", "answer": "a"}
    with pytest.raises(pydantic.ValidationError):
        QA(question="q")


def test_field_without_input_or_output_field_is_named() -> None:
    with pytest.raises(SignatureError, match=r"Field `context` in `Bad` must be declared with InputField"):

        class Bad(Signature):
            question: str = InputField()
            context: str
            answer: str = OutputField()


@pytest.mark.parametrize("name", ["json", "model_dump", "copy", "schema", "append", "instructions", "fields"])
def test_field_names_colliding_with_internals_are_refused(name: str) -> None:
    with pytest.raises(SignatureError, match=rf"Field `{name}`.*collides.*rename"):
        type(Signature)("Bad", (Signature,), {"__annotations__": {name: str}, name: InputField()})


def test_private_field_name_is_refused() -> None:
    with pytest.raises(SignatureError, match="underscore"):

        class Bad(Signature):
            _hidden: str = InputField()


# ----------------------------------------------------------------------------------------- string form


def test_string_signature_is_built_by_calling_signature() -> None:
    sig = Signature("question -> answer")
    assert issubclass(sig, Signature) and sig.__name__ == "StringSignature"
    assert sig.signature == "question -> answer" and _types(sig) == {"question": str, "answer": str}
    assert sig.instructions == "Given the fields `question`, produce the fields `answer`."


def test_string_signature_with_instructions() -> None:
    sig = Signature("question -> answer", "Be brief.")
    assert sig.instructions == "Be brief."
    assert make_signature("q -> a", instructions="Short.").instructions == "Short."


def test_typed_string_signature() -> None:
    sig = make_signature("a, b: int -> c: list[str], d: Literal['x','y'], e: float, f: bool")
    assert _types(sig) == {
        "a": str,
        "b": int,
        "c": list[str],
        "d": Literal["x", "y"],
        "e": float,
        "f": bool,
    }


def test_nested_generics_optional_and_unions() -> None:
    sig = make_signature(
        "x: dict[str, list[tuple[int, ...]]], y: Optional[int] -> z: int | None, w: Union[int, str], "
        "v: set[str], u: Any, t: List[Dict[str, int]]"
    )
    types = _types(sig)
    assert types["x"] == dict[str, list[tuple[int, ...]]]
    assert types["y"] == int | None and types["z"] == int | None
    assert types["w"] == int | str and types["v"] == set[str] and types["u"] is Any
    assert types["t"] == list[dict[str, int]]


def test_literal_with_commas_arrows_and_numbers_inside() -> None:
    sig = make_signature("q -> label: Literal['a, b', '->', -1, True, None]")
    assert _types(sig)["label"] == Literal["a, b", "->", -1, True, None]


def test_custom_types() -> None:
    sig = make_signature("query -> items: list[Item], best: Item", custom_types={"Item": Item})
    assert _types(sig) == {"query": str, "items": list[Item], "best": Item}
    via_call = Signature("query -> best: Item", custom_types={"Item": Item})
    assert _types(via_call)["best"] is Item


def test_dotted_custom_type() -> None:
    class Namespace:
        Inner = Item

    sig = make_signature("q -> a: ns.Inner", custom_types={"ns": Namespace})
    assert _types(sig)["a"] is Item


def test_empty_inputs_are_allowed() -> None:
    sig = Signature("-> answer")
    assert sig.input_fields == {} and list(sig.output_fields) == ["answer"]


def test_multiline_string_and_spacing() -> None:
    sig = make_signature("""
        context : list[str],
        question
        ->
        answer : str
    """)
    assert sig.signature == "context, question -> answer" and _types(sig)["context"] == list[str]


def test_dict_spec() -> None:
    sig = make_signature(
        {"question": (str, InputField()), "n": InputField(), "answer": (int, OutputField(desc="a number"))},
        "Count.",
        signature_name="Counter",
    )
    assert sig.__name__ == "Counter" and sig.instructions == "Count."
    assert _types(sig) == {"question": str, "n": str, "answer": int}
    assert Signature({"q": (str, InputField()), "a": (str, OutputField())}).signature == "q -> a"


def test_dict_spec_with_a_plain_value_is_refused() -> None:
    with pytest.raises(SignatureError, match="Field `q` must map to InputField"):
        make_signature({"q": str, "a": (str, OutputField())})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("question answer", r"has no '->'.*e\.g\. 'question -> answer'"),
        ("a -> b -> c", r"has 2 '->' but needs exactly one"),
        ("question ->", r"has no output fields"),
        ("question ->   ", r"has no output fields"),
        ("1st -> answer", r"`1st` is not a valid field name.*identifier"),
        ("a b -> answer", r"`a b` is not a valid field name"),
        ("class -> answer", r"`class` is not a valid field name.*keyword"),
        ("q -> answer-text", r"`answer-text` is not a valid field name"),
        ("a, a -> b", r"field `a` appears more than once"),
        ("a -> a", r"field `a` appears more than once"),
        ("a, , b -> c", r"input field has no name.*doubled or trailing comma"),
        ("a, -> c", r"input field has no name"),
        ("a -> c,", r"output field has no name"),
        ("a -> : int", r"output field has no name"),
        ("a: -> b", r"field `a` has ':' but no type"),
        ("a: Foo -> b", r"type name `Foo` is unknown\. Allowed names: .*str.*custom_types"),
        ("a -> b: typing.List[str]", r"type name `typing\.List` is unknown"),
        ("a -> b: list[str", r"`\[` is never closed"),
        ("a -> b: list[str]]", r"`\]` has no matching opening bracket"),
        ("a -> b: Literal['x]", r"quote is never closed"),
        ("a -> b: 1 + 2", r"`1 \+ 2` is not a type expression"),
        ("a -> b: __import__('os').system('x')", r"is not a type expression"),
        ("a -> b: list[str]()", r"is not a type expression"),
        ("a -> b: int int", r"cannot parse the type `int int`"),
        ("a -> b: Literal[x]", r"Literal values must be constants"),
        ("a -> b: Literal", r"bare Literal; give it arguments"),
        ("a -> b: Optional", r"bare Optional"),
        ("a -> b: str[int]", r"`str\[int\]` is not a valid type"),
        ("_a -> b", r"field name `_a` is reserved \(it starts with an underscore\)"),
        ("a -> json", r"field name `json` is reserved \(a pydantic/Signature attribute\)"),
    ],
)
def test_malformed_strings_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        make_signature(spec)


def test_not_a_string_or_dict_is_refused() -> None:
    with pytest.raises(SignatureError, match="must be a string"):
        make_signature(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ ensure_signature


def test_ensure_signature() -> None:
    assert ensure_signature(QA) is QA
    assert ensure_signature("q -> a", "Do it.").instructions == "Do it."
    with pytest.raises(SignatureError, match="with_instructions"):
        ensure_signature(QA, "other")
    with pytest.raises(SignatureError, match="Expected a signature string"):
        ensure_signature(3)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- derived copies


def test_with_instructions_returns_a_new_class() -> None:
    new = QA.with_instructions("Be terse.")
    assert new is not QA and new.instructions == "Be terse."
    assert QA.instructions == "Answer questions with short factoid answers."
    assert new.signature == QA.signature and new.__name__ == "QA"


def test_with_updated_fields() -> None:
    new = QA.with_updated_fields("answer", type_=int, desc="a number", prefix="Ans:")
    extra = new.fields["answer"].json_schema_extra
    assert extra["desc"] == "a number" and extra["prefix"] == "Ans:" and extra[FIELD_TYPE_KEY] == "output"
    assert new.fields["answer"].annotation is int
    assert QA.fields["answer"].json_schema_extra["desc"] == "often between 1 and 5 words"
    assert QA.fields["answer"].annotation is str
    with pytest.raises(SignatureError, match=r"no such field.*question, answer"):
        QA.with_updated_fields("missing", desc="x")


def test_prepend_append_insert_delete() -> None:
    with_reasoning = QA.prepend("reasoning", OutputField())
    assert with_reasoning.signature == "question -> reasoning, answer"
    with_context = QA.prepend("context", InputField(), list[str])
    assert with_context.signature == "context, question -> answer"
    assert with_context.fields["context"].annotation == list[str]
    appended = QA.append("confidence", OutputField(), type_=float)
    assert appended.signature == "question -> answer, confidence"
    assert appended.fields["confidence"].annotation is float
    inserted = appended.insert(1, "note", OutputField())
    assert inserted.signature == "question -> answer, note, confidence"
    assert inserted.insert(-2, "x", OutputField()).signature == "question -> answer, note, x, confidence"
    deleted = inserted.delete("note")
    assert deleted.signature == "question -> answer, confidence"
    assert QA.signature == "question -> answer"  # never mutated
    assert inserted.instructions == QA.instructions
    assert with_reasoning.fields["reasoning"].json_schema_extra["prefix"] == "Reasoning:"


def test_insert_errors() -> None:
    with pytest.raises(SignatureError, match="index must be between -2 and 1"):
        QA.insert(5, "x", OutputField())
    with pytest.raises(SignatureError, match="a field with that name exists"):
        QA.append("answer", OutputField())
    with pytest.raises(SignatureError, match="must be an InputField"):
        QA.append("x", pydantic.Field())
    with pytest.raises(SignatureError, match="no such field"):
        QA.delete("nope")


def test_derived_copy_keeps_pydantic_field_settings() -> None:
    class Scored(Signature):
        text: str = InputField()
        score: int = OutputField(ge=0, le=10)

    copy = Scored.with_instructions("Score it.")
    with pytest.raises(pydantic.ValidationError):
        copy(text="t", score=11)
    assert copy(text="t", score=5).score == 5


def test_equals() -> None:
    assert QA.equals(QA.with_instructions(QA.instructions))
    assert not QA.equals(QA.with_instructions("other"))
    assert not QA.equals(QA.with_updated_fields("answer", desc="other"))
    assert not QA.equals(QA.with_updated_fields("answer", type_=int))
    assert not QA.equals(QA.append("x", OutputField()))
    assert not QA.equals("question -> answer")
    assert Signature("a: int | None -> b").equals(Signature("a: Optional[int] -> b"))


def test_dump_state_and_load_state_round_trip() -> None:
    state = QA.dump_state()
    assert state == {
        "instructions": "Answer questions with short factoid answers.",
        "fields": [
            {"prefix": "Question:", "description": "${question}"},
            {"prefix": "Answer:", "description": "often between 1 and 5 words"},
        ],
    }
    assert json.loads(json.dumps(state)) == state
    changed = {
        "instructions": "New instructions.",
        "fields": [
            {"prefix": "Q:", "description": "the question"},
            {"prefix": "A:", "description": "the answer"},
        ],
    }
    loaded = QA.load_state(changed)
    assert loaded is not QA and loaded.dump_state() == changed
    assert loaded.signature == QA.signature and loaded.fields["answer"].annotation is str
    assert QA.dump_state() == state  # untouched
    assert QA.load_state(state).equals(QA)


def test_load_state_errors() -> None:
    with pytest.raises(SignatureError, match=r"state has 1 field.*signature has 2"):
        QA.load_state({"instructions": "x", "fields": [{"prefix": "a", "description": "b"}]})
    with pytest.raises(SignatureError, match="expected a dict with 'instructions'"):
        QA.load_state({"fields": []})
