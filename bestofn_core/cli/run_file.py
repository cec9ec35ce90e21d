"""``bestofn run --input/--output``: a file of examples, one result line each, resumable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from bestofn_core._runner import run_in_thread
from bestofn_core.best_of_n.best_of_n import BestOfN
from bestofn_core.cli.results_file import ResultsFile, to_json_bytes
from bestofn_core.cli.run_report import EXIT_FAILED, outcome_document, say
from bestofn_core.errors import BestOfNError
from bestofn_core.primitives.module import Module

__all__ = ["run_file"]


def run_file(
    best: BestOfN, examples: list[dict[str, Any]], args: argparse.Namespace, about: Mapping[str, Any]
) -> int:
    """Run every example of ``--input`` not yet in ``--output``, appending one line each; the exit status."""
    results = ResultsFile.open(args.output, examples, retry_failed=args.retry_failed)
    try:
        if results.discarded_bytes:
            say(
                f"{args.output}: removed an incomplete last line ({results.discarded_bytes} bytes) left "
                "by an interrupted run; that example runs again"
            )
        skipped = len(results.records)
        todo = [
            {"index": index, "inputs": examples[index]}
            for index in range(len(examples))
            if index not in results.records
        ]
        recorder = _Recorder(best, results, about)
        if todo:
            recorder.batch(
                todo,
                num_threads=args.num_threads,
                return_failed_examples=True,
                # like the one-question bar: only on a terminal, never in logs or pipes
                disable_progress_bar=args.no_progress or not sys.stderr.isatty(),
            )
    finally:
        results.close()
    failed = sum(1 for record in results.records.values() if record.get("error") is not None)
    answered = len(results.records) - failed
    summary = {
        "input": str(args.input),
        "output": str(args.output),
        "examples": len(examples),
        "answered": answered,
        "failed": failed,
        "skipped": skipped,
        "ran": len(examples) - skipped,
    }
    if args.json:
        sys.stdout.buffer.write(to_json_bytes(summary) + b"\n")
    else:
        sys.stdout.write(
            f"{args.output}: {len(examples)} example(s): {answered} answered, {failed} failed "
            f"({skipped} already there, {len(examples) - skipped} run now)\n"
        )
        if failed:
            sys.stdout.write("Their errors are in the file; --retry-failed runs them again.\n")
    sys.stdout.flush()
    return EXIT_FAILED if failed else 0


class _Recorder(Module):
    """Runs one example of the input file and appends its result line, for successes and failures alike."""

    def __init__(self, best: BestOfN, results: ResultsFile, about: Mapping[str, Any]) -> None:
        super().__init__()
        self.best = best
        self.results = results
        self.about = about

    async def aforward(self, index: int, inputs: dict[str, Any]) -> int:
        """Run example ``index``, record the outcome, and re-raise a failure so the batch counts it."""
        try:
            prediction = await self.best.acall(**inputs)
        except BestOfNError as exc:
            await self._record(index, outcome_document(inputs, list(exc.attempts), None, exc, **self.about))
            raise
        except Exception as exc:
            await self._record(index, outcome_document(inputs, [], None, exc, **self.about))
            raise
        document = outcome_document(inputs, prediction.candidates, prediction.winner, None, **self.about)
        await self._record(index, document)
        return index

    async def _record(self, index: int, document: dict[str, Any]) -> None:
        # the write is fsync-ed: off the event loop, which other examples' requests share
        await run_in_thread(self.results.append, {"index": index, **document})
