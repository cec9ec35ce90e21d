"""CompactAdapter: a prompt that small local models follow, and a forgiving read of what they write.

DSPy's layout (``ChatAdapter``, ``JSONAdapter``) describes the exchange with placeholders such as
``{answer}`` and ``[[ ## answer ## ]]``; a model of a few hundred million parameters copies them back as
its answer. This adapter shows nothing that could be copied: one user message with the inputs as plain
text, the task's instructions when the signature has some of its own, and one short request naming the
outputs. Measured on SmolLM2-135M-Instruct (see docs/benchmarks-quality.md), small models answer in
sentences and ignore requests to be terse, so the reply itself is the value of a single output, and a
reply with several outputs is read from ``Label: value`` lines.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo

from bestofn_core.adapters.base import Adapter
from bestofn_core.adapters.chat_adapter import parse_fields
from bestofn_core.adapters.values import format_value, last_number, output_type_note, parse_value
from bestofn_core.signatures.field import default_desc, field_extra, infer_prefix

if TYPE_CHECKING:
    from bestofn_core.signatures.signature import Signature

__all__ = ["CompactAdapter", "field_label"]

# What Signature writes when a signature has no instructions of its own.
_DEFAULT_INSTRUCTIONS = re.compile(
    r"Given the fields (?:`\w+`(?:, )?)*, produce the fields (?:`\w+`(?:, )?)+\."
)


def field_label(name: str) -> str:
    """The label a field's value follows in this adapter's prompts and replies: ``final_answer`` ->
    ``Final Answer``."""
    return infer_prefix(name) or name


class CompactAdapter(Adapter):
    """Plain-text prompts for small local models: no placeholders, no markers, no JSON.

    The prompt is one user message (after a user/assistant pair per demo):

    - the inputs: a single input as its bare value, several as ``Label: value`` lines;
    - the signature's instructions, when they are not the default ones;
    - one request: ``Reply with the answer only.`` for a single text output, with the type for typed
      outputs (``Reply with the answer only, a whole number.``), or the labels in order for several
      outputs (``Reply with a "Reasoning:" line, then an "Answer:" line.``).

    Reading the reply: a single output is the whole reply (a leading ``Answer:`` label is dropped); a
    number output that is not a number by itself takes the last number in the reply. Several outputs are
    read from lines starting with their labels (any case, Markdown emphasis allowed), each running to the
    next label; text before the first label belongs to the first output when its label is missing. A
    value that copies the template (a field name, an empty label) is a parse failure, as in every adapter.
    """

    # ------------------------------------------------------------------------------------------- formatting

    def format(
        self, signature: type[Signature], demos: list[Mapping[str, Any]], inputs: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """A user/assistant pair per complete demo, then the inputs and the request as one user message."""
        messages: list[dict[str, Any]] = []
        for demo in demos:
            if all(_has(demo, name) for name in signature.fields):
                messages.append({"role": "user", "content": self.format_request(signature, demo)})
                messages.append({"role": "assistant", "content": self.format_reply(signature, demo)})
        messages.append({"role": "user", "content": self.format_request(signature, inputs)})
        return messages

    def format_request(self, signature: type[Signature], inputs: Mapping[str, Any]) -> str:
        """The inputs, the task's own instructions (if any), then the request for the outputs."""
        parts = [self.format_inputs(signature, inputs)]
        instructions = _own_instructions(signature)
        if instructions:
            parts.append(instructions)
        parts.append(self.output_request(signature))
        return "\n\n".join(part for part in parts if part)

    def format_inputs(self, signature: type[Signature], inputs: Mapping[str, Any]) -> str:
        """A single input as its bare value; several as ``Label: value`` lines, in signature order."""
        present = [(name, info) for name, info in signature.input_fields.items() if name in inputs]
        if len(signature.input_fields) == 1 and present:
            name, info = present[0]
            return format_value(inputs[name], info.annotation)
        return "\n".join(
            f"{field_label(name)}: {format_value(inputs[name], info.annotation)}" for name, info in present
        )

    def output_request(self, signature: type[Signature]) -> str:
        """The sentence asking for the outputs (the test server reads it: keep its shape).

        ``Reply with the answer only.``; ``Reply with the answer only, a whole number.``; with several
        outputs ``Reply with a "Reasoning:" line, then an "Answer:" line.``
        """
        outputs = list(signature.output_fields.items())
        if len(outputs) == 1:
            name, info = outputs[0]
            what = _describe_output(name, info)
            return f"Reply with the {field_label(name).lower()} only{what}."
        lines = ", then ".join(
            f'{_article(field_label(name))} "{field_label(name)}:" line{_describe_output(name, info)}'
            for name, info in outputs
        )
        return f"Reply with {lines}."

    def format_reply(self, signature: type[Signature], outputs: Mapping[str, Any]) -> str:
        """A demo's outputs as the model should write them: the bare value, or ``Label: value`` lines."""
        fields = list(signature.output_fields.items())
        if len(fields) == 1:
            name, info = fields[0]
            return format_value(outputs[name], info.annotation)
        return "\n".join(
            f"{field_label(name)}: {format_value(outputs[name], info.annotation)}" for name, info in fields
        )

    # ---------------------------------------------------------------------------------------------- parsing

    def parse(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """Read the outputs from the reply (see the class docstring); ``AdapterParseError`` when one is
        missing, does not fit its type, or copies the prompt's template."""
        outputs = signature.output_fields
        if len(outputs) == 1:
            name, info = next(iter(outputs.items()))
            text = _strip_label(completion, name)
            return parse_fields(self, signature, completion, {name: text}, _forgiving(info))
        return parse_fields(self, signature, completion, _labelled_sections(completion, outputs), parse_value)


def _own_instructions(signature: type[Signature]) -> str:
    """The signature's instructions, unless they are a generated default (noise to a small model).

    ``ChainOfThought`` keeps its base signature's default, which names fewer fields: any default counts.
    """
    instructions = textwrap.dedent(signature.instructions).strip()
    return "" if _DEFAULT_INSTRUCTIONS.fullmatch(instructions) else instructions


def _describe_output(name: str, info: FieldInfo) -> str:
    words = _type_words(info.annotation)
    desc = field_extra(info).get("desc")
    if isinstance(desc, str) and desc and desc != default_desc(name):
        words = f"{words}, {desc}" if words else f" ({desc})"
    return words


def _type_words(annotation: Any) -> str:
    if annotation is str or annotation is None:
        return ""
    if annotation is int:
        return ", a whole number"
    if annotation is float:
        return ", a number"
    if annotation is bool:
        return ", True or False"
    note = output_type_note(annotation)
    return f" (it {note})" if note else ""


def _article(label: str) -> str:
    return "an" if label[:1].lower() in "aeiou" else "a"


def _label_pattern(name: str) -> str:
    # "Answer:", "**Answer:**", "## Final answer:", "final_answer:"; the caller anchors it
    words = r"[ _]+".join(re.escape(word) for word in field_label(name).split())
    return rf"[ \t]*[*_#]*[ \t]*(?:{words}|{re.escape(name)})[ \t]*[*_]*[ \t]*:[*_]*"


def _strip_label(completion: str, name: str) -> str:
    """The reply without a leading ``Answer:`` label for the output ``name``."""
    match = re.match(_label_pattern(name), completion.strip(), re.IGNORECASE)
    return completion.strip()[match.end() :].strip() if match else completion.strip()


def _labelled_sections(completion: str, outputs: Mapping[str, FieldInfo]) -> dict[str, str]:
    """Each output's text: from the line starting with its label to the next label (first wins)."""
    starts: list[tuple[int, int, str]] = []
    for name in outputs:
        pattern = re.compile("^" + _label_pattern(name), re.IGNORECASE | re.MULTILINE)
        match = pattern.search(completion)
        if match is not None:
            starts.append((match.start(), match.end(), name))
    starts.sort()
    sections: dict[str, str] = {}
    for i, (_, end, name) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else len(completion)
        sections[name] = completion[end:stop].strip()
    first = next(iter(outputs))
    if first not in sections and starts and completion[: starts[0][0]].strip():
        sections[first] = completion[: starts[0][0]].strip()
    return sections


def _forgiving(info: FieldInfo) -> Any:
    """``parse_value``, plus: a number field reads the last number of a sentence (``"7 x 8 = 56."``)."""

    def convert(text: Any, annotation: Any) -> Any:
        try:
            return parse_value(text, annotation)
        except ValueError:
            if annotation not in (int, float) or not isinstance(text, str):
                raise
            number = last_number(text)
            if number is None:
                raise
            return parse_value(number, annotation)

    return convert


def _has(demo: Mapping[str, Any], name: str) -> bool:
    return name in demo and demo[name] is not None
