"""The text of one choice as its tokens arrive: stop strings, ``max_tokens`` and the finish reason.

The rules are ``Llama.create_completion``'s, so a choice ends where it ended before the batched engine:
an end-of-generation token ends it with ``"stop"`` (and is not counted), a stop string ends it with
``"stop"`` (the text is cut where the earliest stop string begins, the tokens that produced it are
counted), and ``max_tokens`` ends it with ``"length"``. A stop string is looked for only once the text
ends on a whole UTF-8 character; incomplete bytes at the very end are dropped.
"""

from __future__ import annotations

__all__ = ["Completion"]


class Completion:
    """The tokens and bytes of one choice so far, and why it finished (``None`` while it runs)."""

    def __init__(self, max_tokens: int, stops: tuple[str, ...]) -> None:
        self.max_tokens = max_tokens
        self._stops = [stop.encode() for stop in stops if stop]
        self.tokens: list[int] = []
        self._text = bytearray()
        self._cut: int | None = None
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        """The choice's text (so far), as a string."""
        text = self._text if self._cut is None else self._text[: self._cut]
        return bytes(text).decode("utf-8", errors="ignore")

    def add(self, token: int, piece: bytes, end_of_generation: bool) -> bool:
        """Take the next sampled token; return whether the choice is finished."""
        if end_of_generation:
            self.finish_reason = "stop"
            return True
        self.tokens.append(token)
        self._text += piece
        if self._stops and _whole_characters(self._text):
            found = [index for stop in self._stops if (index := self._text.find(stop)) >= 0]
            if found:
                self._cut = min(found)
                self.finish_reason = "stop"
                return True
        if len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
            return True
        return False


def _whole_characters(text: bytearray) -> bool:
    """Whether ``text`` does not end inside a multi-byte UTF-8 character."""
    for back in range(1, min(4, len(text)) + 1):
        byte = text[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the start of the last character
            return back >= _character_length(byte)
    return True


def _character_length(lead: int) -> int:
    """The length in bytes of the UTF-8 character that starts with byte ``lead``."""
    if lead < 0x80:
        return 1
    if lead < 0xE0:
        return 2
    return 3 if lead < 0xF0 else 4
