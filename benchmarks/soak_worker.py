"""One soak run of bestofn-core, in a fresh process: many BestOfN calls through ``abatch``, memory watched.

``benchmarks/soak.py`` starts this script once per backend::

    python benchmarks/soak_worker.py LIBRARY soak --url URL [--calls 10000] [--rounds 2] ...

LIBRARY is ``ours`` (bestofn_core with ``LM(..., backend="litellm:litellm")``) or ``ours-openai-http``
(a plain ``LM("openai/...")``, served by the installed bestofn-openai-http plugin). The program is
``BestOfN(ChainOfThought("question -> answer"), N, reward_fn=<always 0.0>, threshold=1.0)`` (every attempt
runs), model ``openai/bench-model`` at the test server ``--url``, temperature 1.0, with the library's
defaults for what a long-running process keeps: the in-memory response cache on (its default bound,
10,000 entries; the disk cache is off, so nothing is written under the home directory), the call
history on (``settings.max_history_size``, 10,000 entries per LM, per module and for the process) and
the trace on (``settings.trace``, bounded by ``settings.max_trace_size`` where the kernel has it).
``configure(max_concurrency=...)`` bounds the requests in flight.

Everything runs in one ``asyncio.run``, as in a service: ``--warmup-calls`` untimed calls, then
``--rounds`` rounds of ``--calls`` distinct questions, each one ``await program.abatch(examples,
num_threads=...)``. Per call, the wall time from the start of the BestOfN call to its end is measured by
a thin wrapper module (``Timed``: ``aforward`` awaits the BestOfN's ``acall`` between two
``time.perf_counter()`` readings); a call queued behind ``num_threads`` or waiting for a request slot
counts from when ``abatch`` started it. After each round the results are released and ``gc.collect()``
runs before the RSS and the objects the garbage collector tracks (counted by type) are read, so both are
what the process keeps: history, cache, trace, connection pools, interpreter. The result also lists the
types whose count grew most from the first round to the last. ``--trace-off`` runs with
``configure(trace=None)`` (no ``settings.trace`` recorded), to tell a growth of the trace from others.

The last stdout line is a JSON object with the figures of every round; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import sys
import time
from typing import Any

from _common import history_entries, load_library, never_good_enough, peak_rss_mib, percentile, rss_mib

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

LIBRARIES = ("ours", "ours-openai-http")
MEASUREMENTS = ("soak",)


def make_program(bon: Any, n: int) -> Any:
    """The BestOfN inside a ``Timed`` wrapper that records each call's wall time."""

    class Timed(bon.Module):  # type: ignore[misc, name-defined]
        """Awaits the wrapped module's ``acall`` and appends its wall time (seconds) to ``latencies``."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.latencies: list[float] = []

        async def aforward(self, **inputs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await self.inner.acall(**inputs)
            finally:
                self.latencies.append(time.perf_counter() - started)

    inner = bon.BestOfN(
        module=bon.ChainOfThought("question -> answer"), N=n, reward_fn=never_good_enough, threshold=1.0
    )
    return Timed(inner)


def object_counts() -> collections.Counter[str]:
    """How many objects the garbage collector tracks, per type name."""
    return collections.Counter(type(item).__qualname__ for item in gc.get_objects())


def bounded_state(bon: Any, program: Any) -> dict[str, int | None]:
    """How many entries the bounded stores hold now: the histories and the in-memory response cache."""
    from bestofn_core.lm.cache import get_cache

    lm = bon.settings.lm
    return {
        "history_process": history_entries(),
        "history_lm": len(lm.history),
        "history_program": len(program.history),
        "history_best_of_n": len(program.inner.history),
        "memory_cache": len(get_cache()),
        # settings.trace: (predictor, inputs, prediction) per call; None when tracing is off
        "trace": None if bon.settings.trace is None else len(bon.settings.trace),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """The warm-up and the timed rounds, on one event loop."""
    trace = {"trace": None} if args.trace_off else {}
    bon = load_library(
        args.library,
        args.url,
        cache=True,
        max_concurrency=args.max_concurrency,
        disable_progress_bar=True,
        **trace,
    )
    from bestofn_core.lm.cache import get_cache

    program = make_program(bon, args.n)
    stamp = time.time_ns()

    def examples(tag: str, count: int) -> list[Any]:
        return [
            bon.Example(
                question=f"[{args.library} {tag} {stamp} {index}] What is {index} + {index}?"
            ).with_inputs("question")
            for index in range(count)
        ]

    async def run(tag: str, count: int) -> tuple[float, float, int]:
        batch = examples(tag, count)
        cpu_started, started = time.process_time(), time.perf_counter()
        results = await program.abatch(batch, num_threads=args.num_threads, disable_progress_bar=True)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        failed = sum(result is None for result in results)
        del results, batch
        return wall, cpu, failed

    rss_imported = rss_mib()
    _, _, failed = await run("warmup", args.warmup_calls)
    program.latencies.clear()
    gc.collect()
    rss_before = rss_mib()
    peak = peak_before = max(peak_rss_mib(), rss_before)
    rounds: list[dict[str, Any]] = []
    counts: list[collections.Counter[str]] = []
    for index in range(args.rounds):
        wall, cpu, round_failed = await run(f"round-{index}", args.calls)
        failed += round_failed
        latencies = program.latencies
        program.latencies = []
        rss_held = rss_mib()  # the round's results are released, but not yet collected
        gc.collect()
        rss_after = rss_mib()  # before counting objects, which allocates a list of all of them
        # ru_maxrss lags VmRSS by a little: the peak is at least every RSS read
        peak = max(peak, peak_rss_mib(), rss_held, rss_after)
        counts.append(object_counts())
        requests = args.calls * args.n
        rounds.append(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "calls_per_s": args.calls / wall,
                "requests_per_s": requests / wall,
                "cpu_ms_per_request": cpu * 1000 / requests,
                "latency_ms": {
                    "p50": percentile(latencies, 0.50) * 1000,
                    "p90": percentile(latencies, 0.90) * 1000,
                    "p99": percentile(latencies, 0.99) * 1000,
                    "max": max(latencies) * 1000,
                    "mean": sum(latencies) * 1000 / len(latencies),
                    "count": len(latencies),
                },
                "rss_before_collect_mib": rss_held,
                "rss_after_mib": rss_after,
                "gc_objects": sum(counts[-1].values()),
                "peak_rss_mib": peak,
                "failed_examples": round_failed,
                "bounded_state": bounded_state(bon, program),
            }
        )
        print(
            f"{args.library} round {index}: {wall:.1f} s, {requests / wall:.0f} requests/s, "
            f"RSS {rounds[-1]['rss_after_mib']:.0f} MiB",
            file=sys.stderr,
        )
    growth = counts[-1] - counts[0]  # only the types that grew
    return {
        "version": bon.__version__,
        "gc_growth_by_type": dict(growth.most_common(10)),
        "rss_imported_mib": rss_imported,
        "rss_before_mib": rss_before,
        "peak_rss_before_mib": peak_before,
        "rounds": rounds,
        "failed_examples": failed,
        "bounds": {
            "max_history_size": bon.settings.max_history_size,
            "memory_cache_entries": get_cache().memory_entries,
            # None: this kernel keeps settings.trace without a bound
            "max_trace_size": getattr(bon.settings, "max_trace_size", None),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its JSON result as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("measurement", choices=MEASUREMENTS)
    parser.add_argument("--url", required=True, help="the test server's api_base")
    parser.add_argument("--calls", type=int, default=10_000, help="BestOfN calls per round (10000)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (2)")
    parser.add_argument("--n", type=int, default=4, help="BestOfN attempts per call (4)")
    parser.add_argument("--max-concurrency", type=int, default=128, help="configure(max_concurrency=) (128)")
    parser.add_argument("--num-threads", type=int, default=128, help="abatch(num_threads=): calls in flight")
    parser.add_argument("--warmup-calls", type=int, default=256, help="untimed calls first (256)")
    parser.add_argument("--trace-off", action="store_true", help="configure(trace=None)")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"library": args.library, "measurement": args.measurement}
    result.update(asyncio.run(soak(args)))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
