"""ChatAdapter: DSPy's ``[[ ## field ## ]]`` chat format, with a one-time JSONAdapter fallback.

The prompt layout matches DSPy's, so programs and prompts move between the two unchanged: a system message
describing the fields, their structure and the instructions; demos as user/assistant turns; the inputs in a
final user message that ends by asking for the output markers in order.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo

from bestofn_core.adapters.base import Adapter
from bestofn_core.adapters.template_copy import template_copy
from bestofn_core.adapters.values import (
    allows_none,
    format_value,
    output_type_note,
    parse_value,
    prompt_type_name,
)
from bestofn_core.errors import AdapterParseError
from bestofn_core.signatures.field import default_desc, field_extra

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature

logger = logging.getLogger(__name__)

#: A field marker, ``[[ ## answer ## ]]``, tolerant of spacing. Only markers that start a line count (as
#: in DSPy): a marker quoted inside a value, e.g. in a JSON string, never splits it.
FIELD_MARKER = re.compile(r"^[ \t]*\[\[[ \t]*##[ \t]*(\w+)[ \t]*##[ \t]*\]\]", re.MULTILINE)
#: The end-of-answer marker, honoured anywhere, also at the end of a value's line.
COMPLETED_MARKER = re.compile(r"\[\[[ \t]*##[ \t]*completed[ \t]*##[ \t]*\]\]")

#: What an incomplete demo shows for an output it does not supply (DSPy's words).
NOT_SUPPLIED = "Not supplied for this particular example. "
STRUCTURE_INTRO = (
    "All interactions will be structured in the following way, with the appropriate values filled in."
)
INCOMPLETE_DEMO_PREFIX = (
    "This is an example of the task, though some input or output fields are not supplied."
)


class ChatAdapter(Adapter):
    """Formats prompts with ``[[ ## field ## ]]`` markers and parses answers written the same way.

    When an answer cannot be parsed, ``acall`` asks the LM once more through ``JSONAdapter`` (DSPy does the
    same), unless ``use_json_adapter_fallback=False``.
    """

    def __init__(self, callbacks: list[Any] | None = None, use_json_adapter_fallback: bool = True) -> None:
        """``use_json_adapter_fallback``: retry once with ``JSONAdapter`` when the answer cannot be parsed."""
        super().__init__(callbacks)
        self.use_json_adapter_fallback = use_json_adapter_fallback

    # ---------------------------------------------------------------------------------------------- calling

    async def acall(
        self,
        lm: Any,
        lm_kwargs: dict[str, Any],
        signature: type[Signature],
        demos: list[Mapping[str, Any]],
        inputs: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Like ``Adapter.acall``; on ``AdapterParseError`` it retries once with ``JSONAdapter``.

        The retry is a second LM call, logged as a warning. Only parse failures trigger it: LM errors
        propagate unchanged. When the retry fails too, the ``AdapterParseError`` says
        ``"ChatAdapter->JSONAdapter"``, carries the retry's text as ``lm_response`` and quotes the first
        text in its message; the first error is its ``__cause__``.
        """
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as first:
            if not self.use_json_adapter_fallback:
                raise
            logger.warning(
                "ChatAdapter could not parse the LM response for `%s` (missing or invalid: %s); "
                "retrying once with JSONAdapter.",
                signature.signature,
                ", ".join(first.missing_fields) or "-",
            )
            from bestofn_core.adapters.json_adapter import JSONAdapter

            try:
                return await JSONAdapter(callbacks=self.callbacks).acall(
                    lm, lm_kwargs, signature, demos, inputs
                )
            except AdapterParseError as second:
                both = AdapterParseError(
                    "ChatAdapter->JSONAdapter",
                    signature,
                    lm_response=second.lm_response,
                    message=(
                        "Neither the [[ ## field ## ]] answer nor the JSON retry could be parsed; the first "
                        f"answer lacked or had invalid: {', '.join(first.missing_fields) or '-'}.\n\n"
                        f"First (ChatAdapter) LM response:\n{_clip(first.lm_response)}"
                    ),
                    parsed_result=second.parsed_result,
                    missing_fields=second.missing_fields,
                )
                both.choices = second.choices  # the retry's choices: the answers that were kept
                raise both from first

    # ------------------------------------------------------------------------------------------- formatting

    def format(
        self, signature: type[Signature], demos: list[Mapping[str, Any]], inputs: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """System message, then a user/assistant pair per demo, then the inputs as the last user message."""
        return [
            {"role": "system", "content": self.format_system_message(signature)},
            *self.format_demos(signature, demos),
            {
                "role": "user",
                "content": self.format_user_message_content(signature, inputs, main_request=True),
            },
        ]

    def format_system_message(self, signature: type[Signature]) -> str:
        """Field descriptions, the structure of an exchange, then the task's instructions."""
        return "\n".join(
            [
                self.format_field_description(signature),
                self.format_field_structure(signature),
                self.format_task_description(signature),
            ]
        )

    def format_field_description(self, signature: type[Signature]) -> str:
        """``Your input fields are:`` / ``Your output fields are:`` with a numbered line per field."""
        return (
            f"Your input fields are:\n{_describe_fields(signature.input_fields)}\n"
            f"Your output fields are:\n{_describe_fields(signature.output_fields)}"
        )

    def format_field_structure(self, signature: type[Signature]) -> str:
        """The marker layout of an exchange, with placeholders and type notes for typed outputs."""
        parts = [
            STRUCTURE_INTRO,
            marker_blocks((name, f"{{{name}}}") for name in signature.input_fields),
            marker_blocks(
                (name, output_placeholder(name, info)) for name, info in signature.output_fields.items()
            ),
            "[[ ## completed ## ]]\n",
        ]
        return "\n\n".join(parts).strip()

    def format_task_description(self, signature: type[Signature]) -> str:
        """``In adhering to this structure, your objective is:`` followed by the indented instructions."""
        instructions = textwrap.dedent(signature.instructions)
        objective = ("\n" + " " * 8).join(["", *instructions.splitlines()])
        return f"In adhering to this structure, your objective is: {objective}"

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: Mapping[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        """``prefix``, the inputs present as marker blocks, the closing sentence when ``main_request``,
        then ``suffix``, separated by blank lines (the whole stripped, as DSPy does)."""
        parts = [prefix]
        for name, info in signature.input_fields.items():
            if name in inputs:
                parts.append(marker_block(name, format_value(inputs[name], info.annotation)))
        if main_request:
            parts.append(self.user_message_output_requirements(signature))
        parts.append(suffix)
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """The closing sentence naming each output marker in order (test servers parse it: keep it exact)."""
        markers = ", then ".join(
            f"`[[ ## {name} ## ]]`{python_type_hint(info)}" for name, info in signature.output_fields.items()
        )
        return (
            f"Respond with the corresponding output fields, starting with the field {markers}, "
            "and then ending with the marker for `[[ ## completed ## ]]`."
        )

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        """A demo's outputs as marker blocks, then the completed marker and a line break; an absent output
        shows ``missing_field_message`` (``None`` when there is none, as in DSPy)."""
        blocks = marker_blocks(
            (name, format_value(outputs.get(name, missing_field_message), info.annotation))
            for name, info in signature.output_fields.items()
        )
        return blocks + "\n\n[[ ## completed ## ]]\n"

    def format_demos(
        self, signature: type[Signature], demos: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """User/assistant turns for the demos: incomplete ones first (flagged as such), then complete ones.

        A demo is complete when every field is there and not ``None``; an incomplete one is shown when
        it has at least one input and one output key (``None`` values count, and are shown as ``None``),
        else it is skipped. These are DSPy's rules, so the same demos give the same prompt.
        """
        complete, incomplete = [], []
        for demo in demos:
            if all(name in demo and demo[name] is not None for name in signature.fields):
                complete.append(demo)
            elif any(name in demo for name in signature.input_fields) and any(
                name in demo for name in signature.output_fields
            ):
                incomplete.append(demo)
        messages: list[dict[str, Any]] = []
        for demo in incomplete:
            user = self.format_user_message_content(signature, demo, prefix=INCOMPLETE_DEMO_PREFIX)
            assistant = self.format_assistant_message_content(signature, demo, NOT_SUPPLIED)
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        for demo in complete:
            user = self.format_user_message_content(signature, demo)
            assistant = self.format_assistant_message_content(signature, demo)
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return messages

    # ---------------------------------------------------------------------------------------------- parsing

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """Read the output fields from ``[[ ## name ## ]]`` sections of ``completion``.

        Markers must start a line (leading spaces are fine; the value may follow on the same line). Text
        before the first marker, unknown markers and a missing completed marker are tolerated; when a
        field appears twice, the first occurrence wins. Raises ``AdapterParseError`` naming every output
        field that is missing or does not fit its type.
        """
        outputs = signature.output_fields
        markers = list(FIELD_MARKER.finditer(completion))
        sections: dict[str, str] = {}
        for i, marker in enumerate(markers):
            name = marker.group(1)
            if name in outputs and name not in sections:
                end = markers[i + 1].start() if i + 1 < len(markers) else len(completion)
                section = completion[marker.end() : end]
                sections[name] = COMPLETED_MARKER.split(section, maxsplit=1)[0]
        return parse_fields(self, signature, completion, sections, parse_value)


def parse_fields(
    adapter: Adapter,
    signature: type[Signature],
    completion: str,
    raw: Mapping[str, Any],
    convert: Callable[[Any, Any], Any],
) -> dict[str, Any]:
    """Convert each output's raw value with ``convert(raw, annotation)``; raise one ``AdapterParseError``
    listing every output that is missing, invalid or a copy of the prompt's template (see
    ``template_copy``), with the reasons and what did parse.

    An output the answer leaves out takes its default when it has one, else ``None`` when its type
    allows ``None`` (DSPy's rule); only the others are missing.
    """
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for name, info in signature.output_fields.items():
        if name not in raw:
            if not info.is_required():
                parsed[name] = info.get_default(call_default_factory=True)
            elif allows_none(info.annotation):
                parsed[name] = None
            continue
        value = raw[name]
        try:
            converted = convert(value, info.annotation)
        except ValueError as exc:
            shown = value.strip() if isinstance(value, str) else value
            problems.append(
                f"Failed to parse field {name} with value {shown} from the LM response. Error message: {exc}"
            )
            continue
        template = (STRUCTURE_INTRO, NOT_SUPPLIED, INCOMPLETE_DEMO_PREFIX)
        copied = template_copy(converted, signature, template, info.annotation)
        if copied is not None:
            problems.append(f"`{name}` copies the prompt's template ({copied!r}) instead of answering")
            continue
        parsed[name] = converted
    missing = [name for name in signature.output_fields if name not in parsed]
    if missing:
        raise AdapterParseError(
            type(adapter).__name__,
            signature,
            lm_response=completion,
            message="\n".join(problems) or None,
            parsed_result=parsed,
            missing_fields=missing,
        )
    return parsed


def _describe_fields(fields: Mapping[str, FieldInfo]) -> str:
    # DSPy's lines: "1. `name` (type): desc", the colon kept when there is no description
    lines = []
    for i, (name, info) in enumerate(fields.items(), start=1):
        extra = field_extra(info)
        desc = extra.get("desc", "")
        if desc == default_desc(name):
            desc = ""
        line = f"{i}. `{name}` ({prompt_type_name(info.annotation)}): {desc}"
        if extra.get("constraints"):
            line += f"\nConstraints: {extra['constraints']}"
        lines.append(line)
    return "\n".join(lines).strip()


def marker_block(name: str, value: str) -> str:
    """``[[ ## name ## ]]`` then the value on the next line."""
    return f"[[ ## {name} ## ]]\n{value}"


def marker_blocks(named_values: Iterable[tuple[str, str]]) -> str:
    """Marker blocks for ``(name, formatted value)`` pairs, separated by blank lines, the whole stripped."""
    return "\n\n".join(marker_block(name, value) for name, value in named_values).strip()


def output_placeholder(name: str, info: FieldInfo) -> str:
    """``{name}``, with a note on what the value must look like for non-text types (system message)."""
    note = output_type_note(info.annotation)
    return f"{{{name}}}" + (f"        # note: the value you produce {note}" if note else "")


def python_type_hint(info: FieldInfo) -> str:
    """`` (must be formatted as a valid Python int)`` for a non-text output, ``""`` for ``str``."""
    if info.annotation is str:
        return ""
    return f" (must be formatted as a valid Python {prompt_type_name(info.annotation)})"


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "...[truncated]"
