"""How ``bestofn run`` shows a result: the winning answer and a table of every candidate, or a JSON document.

The JSON document is built from :meth:`Candidate.to_dict`, so it holds exactly what the Python API shows
(no LM settings beyond the model string: credentials never reach it).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bestofn_core.best_of_n.candidates import Candidate

__all__ = [
    "EXIT_FAILED",
    "EXIT_SIGNAL_BASE",
    "EXIT_USAGE",
    "candidate_tokens",
    "format_outcome",
    "one_line",
    "outcome_document",
    "say",
    "vote_counts",
]

#: Exit statuses (besides 0): an example failed; bad input; interrupted (plus the signal's number).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGNAL_BASE = 128

#: Widest answer and error shown in a table cell; the JSON output has them whole.
ANSWER_WIDTH = 48
ERROR_WIDTH = 60
#: The output fields a table leaves out: the reasoning of ChainOfThought is long and not the answer.
HIDDEN_FIELDS = frozenset({"reasoning"})


def candidate_tokens(candidate: Candidate) -> int | None:
    """Tokens the attempt used, summed over models (``None`` when the backend reported none)."""
    total = 0
    found = False
    for usage in candidate.usage.values():
        tokens = usage.get("total_tokens")
        if tokens is None:
            tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        if tokens:
            found = True
            total += int(tokens)
    return total if found else None


def outcome_document(
    inputs: Mapping[str, Any],
    candidates: Sequence[Candidate],
    winner: Candidate | None,
    error: BaseException | None,
    **about: Any,
) -> dict[str, Any]:
    """The JSON-able result of one example: ``about`` (signature, lm, n, ...) first, then the outcome."""
    outputs = winner.prediction.toDict() if winner is not None and winner.prediction is not None else None
    return {
        **about,
        "inputs": dict(inputs),
        "outputs": outputs,
        "winner": (
            {"index": winner.index, "rollout_id": winner.rollout_id, "reward": winner.reward}
            if winner is not None
            else None
        ),
        "error": _error_text(error) if error is not None else None,
        "candidates": [
            {**candidate.to_dict(), "tokens": candidate_tokens(candidate)} for candidate in candidates
        ],
    }


def format_outcome(
    output_fields: Sequence[str],
    candidates: Sequence[Candidate],
    winner: Candidate | None,
    n: int,
    votes: Mapping[int, int] | None = None,
) -> str:
    """The winning fields, then one table row per candidate (``*`` marks the winner), for people.

    ``votes`` (candidate index -> votes for its answer) adds a ``votes`` column, for a call decided by a
    vote rather than by rewards.
    """
    shown = [name for name in output_fields if name not in HIDDEN_FIELDS] or list(output_fields)
    lines: list[str] = []
    if winner is not None and winner.prediction is not None:
        for name in shown:
            lines.append(f"{name}: {winner.prediction.get(name)}")
    else:
        lines.append("No answer: every attempt failed (see the errors below).")
    lines.append("")
    score = "votes" if votes is not None else "reward"
    header = ["", "rollout", score, ", ".join(shown), "tokens", "latency", "error"]
    rows = [header]
    for candidate in candidates:
        rows.append(
            [
                "*" if candidate is winner else "",
                str(candidate.rollout_id),
                _score_cell(candidate, votes),
                _answer_cell(candidate, shown),
                _optional(candidate_tokens(candidate)),
                f"{candidate.latency:.2f}s",
                _clip(_error_text(candidate.error), ERROR_WIDTH) if candidate.error is not None else "",
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    notes = []
    if winner is not None and votes is not None:
        share = f"{votes.get(winner.index, 0)} of {sum(1 for c in candidates if c.ok)} votes"
        notes.append(f"* the winner (rollout {winner.rollout_id}, the most frequent answer: {share})")
    elif winner is not None:
        reward = "-" if winner.reward is None else f"{winner.reward:.3g}"
        notes.append(f"* the winner (rollout {winner.rollout_id}, reward {reward})")
    not_run = n - len(candidates)
    if not_run > 0:
        notes.append(f"{not_run} of {n} attempt(s) not needed: sampling stopped early")
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines) + "\n"


def _score_cell(candidate: Candidate, votes: Mapping[int, int] | None) -> str:
    if votes is not None:
        return str(votes[candidate.index]) if candidate.index in votes else "-"
    return "-" if candidate.reward is None else f"{candidate.reward:.3g}"


def _answer_cell(candidate: Candidate, shown: Sequence[str]) -> str:
    if candidate.prediction is None:
        return "-"
    values = [str(candidate.prediction.get(name)) for name in shown]
    text = (
        values[0] if len(values) == 1 else ", ".join(f"{n}={v}" for n, v in zip(shown, values, strict=True))
    )
    return _clip(text, ANSWER_WIDTH)


def _optional(value: int | None) -> str:
    return "-" if value is None else str(value)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: newlines and runs of spaces would break the table
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(text: str) -> str:
    """``text`` on one line (a multi-line error message, say), for stderr and table cells."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def say(message: str) -> None:
    """One line on stderr, prefixed ``bestofn run:``."""
    sys.stderr.write(f"bestofn run: {message}\n")
    sys.stderr.flush()


def vote_counts(policy: Any, candidates: Sequence[Candidate]) -> dict[int, int] | None:
    """Candidate index -> the votes its answer got, from a voting policy's ``tally`` (``None`` without)."""
    tally = getattr(policy, "tally", None)
    if not callable(tally):
        return None
    counts: dict[int, int] = {}
    for vote in tally(list(candidates)):
        for holder in getattr(vote, "candidates", ()):
            counts[holder.index] = int(getattr(vote, "votes", 0))
    return counts
