"""``bestofn run --input/--output``: a file of examples, one result line each, resumable."""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bestofn_core._runner import run_in_thread, run_sync
from bestofn_core.best_of_n.best_of_n import BestOfN
from bestofn_core.cli.results_file import ResultsFile, ResultsWriteError, to_json_bytes
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
        if todo:
            options: dict[str, Any] = {
                "num_threads": args.num_threads,
                "return_failed_examples": True,
                # like the one-question bar: only on a terminal, never in logs or pipes
                "disable_progress_bar": args.no_progress or not sys.stderr.isatty(),
            }
            if args.straggler_timeout is not None:
                options["timeout"] = args.straggler_timeout or None  # 0: never a second try
            run_sync(run_examples(_Recorder(best, results, about), todo, options))
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


async def run_examples(recorder: _Recorder, todo: list[dict[str, Any]], options: dict[str, Any]) -> None:
    """Run ``recorder`` over ``todo`` as one batch; stop it all at the first line that cannot be written.

    Raises ``ResultsWriteError`` then: results that cannot be kept must not be reported as answered.
    """
    batch = asyncio.ensure_future(recorder.abatch(todo, **options))
    recorder.stop_batch = batch.cancel
    try:
        await batch
    except asyncio.CancelledError:
        if recorder.write_error is None:
            raise  # interrupted (SIGINT, SIGTERM): not ours to swallow
    if recorder.write_error is not None:
        raise recorder.write_error


class _Recorder(Module):
    """Runs one example of the input file and appends its result line, for successes and failures alike.

    An example can run as two tries at once (the batch's straggler resubmission: the first to succeed
    wins), so a try's line is written only when it decides the example: a success, if no try recorded one
    yet; a failure, once no other try of the example is still running (the first failure is kept, as the
    batch reports it). Exactly one line per example, however its tries end.
    """

    def __init__(self, best: BestOfN, results: ResultsFile, about: Mapping[str, Any]) -> None:
        super().__init__()
        self.best = best
        self.results = results
        self.about = about
        #: Set when a line could not be written; the batch is then stopped (see ``run_examples``).
        self.write_error: ResultsWriteError | None = None
        self.stop_batch: Callable[[], object] = lambda: None
        self._lock = threading.Lock()  # tries of one example may finish on different threads
        self._running: collections.Counter[int] = collections.Counter()
        self._first_failures: dict[int, dict[str, Any]] = {}
        self._recorded: set[int] = set()

    async def aforward(self, index: int, inputs: dict[str, Any]) -> int:
        """Run example ``index``, record the outcome, and re-raise a failure so the batch counts it."""
        with self._lock:
            self._running[index] += 1
        try:
            document, error = await self._run(inputs)
        except BaseException:  # cancelled: the other try won, or the run stops
            with self._lock:
                self._running[index] -= 1
            raise
        with self._lock:
            self._running[index] -= 1
            decided = error is None or not self._running[index]
            if error is not None and not decided:
                # the other try may still succeed; if it fails too, this first failure is recorded
                self._first_failures.setdefault(index, document)
            elif error is not None:
                document = self._first_failures.pop(index, document)
        if decided:
            await self._record(index, document)
        if error is not None:
            raise error
        return index

    async def _run(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], Exception | None]:
        try:
            prediction = await self.best.acall(**inputs)
        except BestOfNError as exc:
            return outcome_document(inputs, list(exc.attempts), None, exc, **self.about), exc
        except Exception as exc:
            return outcome_document(inputs, [], None, exc, **self.about), exc
        document = outcome_document(inputs, prediction.candidates, prediction.winner, None, **self.about)
        return document, None

    async def _record(self, index: int, document: dict[str, Any]) -> None:
        with self._lock:
            if index in self._recorded:  # the other try of a straggler recorded the example already
                return
            self._recorded.add(index)
        try:
            # the write is fsync-ed: off the event loop, which other examples' requests share
            await run_in_thread(self.results.append, {"index": index, **document})
        except ResultsWriteError as exc:
            if self.write_error is None:
                self.write_error = exc
                self.stop_batch()  # nothing more can be kept: stop the examples still running
            raise
