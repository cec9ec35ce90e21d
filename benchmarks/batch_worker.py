"""One library's measurement for the batch benchmark, run in a fresh process.

``benchmarks/batch.py`` starts this script once per (library, measurement), so that imports, connection
pools, thread pools and event loops of one library never touch the other's numbers::

    python benchmarks/batch_worker.py LIBRARY MEASUREMENT --url URL [options]

LIBRARY is ``ours`` (bestofn_core with ``LM(..., backend="litellm:litellm")``), ``ours-openai-http``
(bestofn_core with a plain ``LM("openai/...")``, served by the installed bestofn-openai-http plugin),
``dspy`` (dspy 3.4.1 with its default engine) or ``dspy-litellm`` (dspy 3.4.1 with
``engine="litellm"``). Every library runs
the same program,
``BestOfN(ChainOfThought("question -> answer"), N, reward_fn=<always 0.0>, threshold=1.0)``, so the
threshold is never reached and all N attempts of every example run; caches are off; model
``openai/bench-model`` at the test server ``--url``, temperature 1.0, progress bars off. MEASUREMENT is

- ``compare``: wall time and client CPU of ``program.batch(examples, num_threads=...)`` over
  ``--questions`` distinct examples, ``--warmup`` untimed batches first, then ``--repeats`` timed ones
  (every batch asks questions no earlier batch asked).
- ``scale`` (bestofn-core only): one warm-up batch of ``--warmup-questions`` examples, then one timed
  batch of ``--questions`` examples with ``configure(max_concurrency=...)``: wall time, client CPU,
  requests/s, peak RSS (``ru_maxrss``) and the RSS before and after the batch.

The last stdout line is a JSON object with the samples; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from _common import (
    LIBRARIES,
    history_entries,
    load_library,
    never_good_enough,
    peak_rss_mib,
    rss_mib,
    thread_cpu_seconds,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MEASUREMENTS = ("compare", "scale")


class Harness:
    """The same program in either library: BestOfN over a ChainOfThought, caches off."""

    def __init__(self, library: str, url: str, n: int, max_concurrency: int | None = None) -> None:
        self.library = library
        self.executor: str | None = None
        #: bestofn-core runs batches on one event-loop thread: its name, to measure that thread's CPU
        self.loop_thread: str | None = None
        if library.startswith("ours"):
            from bestofn_core._runner import RUNNER_THREAD_NAME
            from bestofn_core.parallel.parallel import resolve_executor

            settings: dict[str, Any] = {"max_concurrency": max_concurrency, "disable_progress_bar": True}
            self.loop_thread = RUNNER_THREAD_NAME
        elif max_concurrency is not None:
            raise SystemExit("max_concurrency is a bestofn-core setting; DSPy has no equivalent")
        else:
            settings = {}
        package = load_library(library, url, **settings)
        self.program: Any = package.BestOfN(
            module=package.ChainOfThought("question -> answer"),
            N=n,
            reward_fn=never_good_enough,
            threshold=1.0,
        )
        self.example_class: Any = package.Example
        self.version: str = package.__version__
        if library.startswith("ours"):
            # what batch() picks by default for this program
            self.executor = type(resolve_executor(None, [self.program])).__name__

    def examples(self, tag: str, count: int) -> list[Any]:
        """``count`` distinct examples no earlier batch has asked, so no cache anywhere could answer."""
        stamp = time.time_ns()
        return [
            self.example_class(
                question=f"[{self.library} {tag} {stamp} {index}] What is {index} + {index}?"
            ).with_inputs("question")
            for index in range(count)
        ]

    def loop_cpu(self) -> float | None:
        """CPU seconds of bestofn-core's event-loop thread so far (``None`` for DSPy or before it starts)."""
        return thread_cpu_seconds(self.loop_thread) if self.loop_thread else None

    def run(self, examples: list[Any], num_threads: int) -> Batch:
        """One batch, timed."""
        loop_started = self.loop_cpu()
        cpu_started, started = time.process_time(), time.perf_counter()
        results = self.program.batch(examples, num_threads=num_threads, disable_progress_bar=True)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        loop_ended = self.loop_cpu()
        loop = loop_ended - loop_started if loop_started is not None and loop_ended is not None else None
        return Batch(wall, cpu, loop, sum(result is None for result in results), results)


@dataclass
class Batch:
    """One timed batch: wall and CPU seconds (every thread, and the event-loop thread), failures, results."""

    wall: float
    cpu: float
    loop_cpu: float | None
    failed: int
    results: list[Any]


def measure_compare(harness: Harness, args: argparse.Namespace) -> dict[str, Any]:
    """Wall time and CPU of whole batches, warm-up batches excluded."""
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    loop_cpu_seconds: list[float | None] = []
    failed = 0
    for index in range(args.warmup + args.repeats):
        batch = harness.run(harness.examples(f"compare-{index}", args.questions), args.num_threads)
        failed += batch.failed
        print(f"{harness.library} batch {index}: {batch.wall:.3f} s, CPU {batch.cpu:.3f} s", file=sys.stderr)
        if index >= args.warmup:
            seconds.append(batch.wall)
            cpu_seconds.append(batch.cpu)
            loop_cpu_seconds.append(batch.loop_cpu)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "loop_cpu_seconds": loop_cpu_seconds,
        "failed_examples": failed,
    }


def measure_scale(harness: Harness, args: argparse.Namespace) -> dict[str, Any]:
    """One big batch after a small warm-up: wall, CPU, requests/s and memory."""
    warmup = harness.run(harness.examples("scale-warmup", args.warmup_questions), args.num_threads)
    del warmup.results
    gc.collect()
    rss_before, peak_before = rss_mib(), peak_rss_mib()
    batch = harness.run(harness.examples("scale", args.questions), args.num_threads)
    rss_after, peak = rss_mib(), peak_rss_mib()
    del batch.results
    gc.collect()
    requests = args.questions * args.n
    return {
        "wall_s": batch.wall,
        "cpu_s": batch.cpu,
        "loop_cpu_s": batch.loop_cpu,
        "requests": requests,
        "requests_per_s": requests / batch.wall,
        "cpu_ms_per_request": batch.cpu * 1000 / requests,
        "peak_rss_mib": peak,
        "peak_rss_before_mib": peak_before,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_after_release_mib": rss_mib(),
        "failed_examples": batch.failed + warmup.failed,
        # LM calls kept in the process-wide history (bounded by settings.max_history_size): they hold
        # memory that releasing the results does not free
        "history_entries": history_entries(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its JSON result as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("library", choices=list(LIBRARIES))
    parser.add_argument("measurement", choices=MEASUREMENTS)
    parser.add_argument("--url", required=True, help="the test server's api_base")
    parser.add_argument("--questions", type=int, default=64, help="examples per (timed) batch")
    parser.add_argument("--n", type=int, default=4, help="BestOfN attempts per example")
    parser.add_argument("--num-threads", type=int, default=8, help="batch(num_threads=...)")
    parser.add_argument("--max-concurrency", type=int, default=None, help="ours: configure(max_concurrency=)")
    parser.add_argument("--repeats", type=int, default=5, help="compare: timed batches")
    parser.add_argument("--warmup", type=int, default=1, help="compare: untimed batches first")
    parser.add_argument("--warmup-questions", type=int, default=64, help="scale: examples of the warm-up")
    args = parser.parse_args(argv)
    if args.measurement == "scale" and not args.library.startswith("ours"):
        parser.error("scale measures bestofn-core only")

    harness = Harness(args.library, args.url, args.n, args.max_concurrency)
    result: dict[str, Any] = {
        "library": args.library,
        "measurement": args.measurement,
        "version": harness.version,
        "executor": harness.executor,
    }
    if args.measurement == "compare":
        result.update(measure_compare(harness, args))
    else:
        result.update(measure_scale(harness, args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
