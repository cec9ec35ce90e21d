"""``bestofn run`` for one question: sample it, show the winner and every candidate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bestofn_core.best_of_n.best_of_n import BestOfN
from bestofn_core.best_of_n.candidates import BestOfNPrediction, Candidate
from bestofn_core.cli.results_file import to_json_bytes
from bestofn_core.cli.run_report import (
    EXIT_FAILED,
    format_outcome,
    one_line,
    outcome_document,
    say,
    vote_counts,
)
from bestofn_core.errors import BestOfNError

__all__ = ["run_one"]


def run_one(
    best: BestOfN, signature: Any, inputs: dict[str, Any], args: argparse.Namespace, about: Mapping[str, Any]
) -> int:
    """Sample one question, print the winner and the candidate table (or ``--json``); the exit status."""
    # on a terminal only: never in logs, pipes or CI output
    quiet = args.no_progress or args.json or not sys.stderr.isatty()
    candidates: list[Candidate]
    winner: Candidate | None
    error: BestOfNError | None = None
    try:
        with _attempt_progress(type(best.module), args.n, disable=quiet):
            prediction: BestOfNPrediction = best(**inputs)
        candidates, winner = prediction.candidates, prediction.winner
    except BestOfNError as exc:
        candidates, winner, error = list(exc.attempts), None, exc
    if args.json:
        document = outcome_document(inputs, candidates, winner, error, **about)
        sys.stdout.buffer.write(to_json_bytes(document) + b"\n")
    else:
        votes = vote_counts(best.policy, candidates) if best.reward_fn is None else None
        sys.stdout.write(format_outcome(list(signature.output_fields), candidates, winner, args.n, votes))
        if error is not None:
            say(one_line(str(error)))
    sys.stdout.flush()
    return EXIT_FAILED if error is not None else 0


@contextmanager
def _attempt_progress(program_type: type, total: int, *, disable: bool) -> Iterator[None]:
    """While the block runs, show finished attempts (done/failed) on the batch progress bar's class.

    Attempts run copies of the program; their module events (``program_type``'s start and end) feed it.
    """
    import bestofn_core as bon
    from bestofn_core.parallel.progress import Progress

    progress = Progress(total, disable=disable, description="sampling", unit="attempt", min_items=1)
    started: set[str] = set()

    class AttemptCounter(bon.BaseCallback):
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if type(instance) is program_type:
                started.add(call_id)

        def on_module_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
            if call_id in started:
                started.discard(call_id)
                if exception is None:
                    progress.succeeded()
                else:
                    progress.failed_one()

    try:
        with bon.context(callbacks=[*bon.settings.callbacks, AttemptCounter()]):
            yield
    finally:
        progress.close()
