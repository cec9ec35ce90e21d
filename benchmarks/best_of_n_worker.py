"""One library's measurements for the best-of-N benchmarks, run in a fresh process.

``benchmarks/best_of_n.py`` and ``benchmarks/sweep.py`` start this script once per (library,
measurement) so that imports, caches, connection pools and event loops of one library never touch the
other's numbers::

    python benchmarks/best_of_n_worker.py LIBRARY MEASUREMENT [--url URL] [--repeats R] ...

LIBRARY is ``ours`` (bestofn_core with ``LM(..., backend="litellm:litellm")``), ``ours-openai-http``
(bestofn_core with a plain ``LM("openai/...")``, served by the installed bestofn-openai-http plugin),
``dspy`` (dspy 3.4.1 with its default engine) or ``dspy-litellm`` (dspy 3.4.1 with
``engine="litellm"``). MEASUREMENT is one of

- ``wall``: wall time of one plain ChainOfThought call (one HTTP request) and of one BestOfN call
  (N=8, a reward that never reaches the threshold), against the server at ``--url`` (started by the
  driver with 100 ms latency); for bestofn-core also BestOfN with ``sampling="batched"``.
- ``sweep``: the same, for each N of ``--ns`` (one BestOfN per N), plus the single request; the N values
  are interleaved within each repeat so drift hits them alike.
- ``cpu``: client CPU (``time.process_time()``, every thread of this process) per attempt over
  ``--calls`` BestOfN calls, against the server at ``--url`` (0 ms latency, another process).
- ``requests``: HTTP requests, choices and token usage of one BestOfN call, counted by an in-process
  ``OpenAICompatServer`` (which records every request it receives); nothing is timed.

The last stdout line is a JSON object with the samples; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _common import LIBRARIES, MODEL, load_library, never_good_enough

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

N = 8
MEASUREMENTS = ("wall", "sweep", "cpu", "requests")


class Harness:
    """The same program in either library: a ChainOfThought and BestOfN over it, caches off."""

    def __init__(self, library: str, url: str, *, track_usage: bool = False, n: int = N) -> None:
        self.library = library
        self.package = load_library(library, url, track_usage=track_usage)
        self.module: Any = self.package.ChainOfThought("question -> answer")
        self.best_of_n: Any = self.program(n)
        # DSPy's BestOfN has no batched sampling
        self.batched: Any = self.program(n, sampling="batched") if library.startswith("ours") else None
        self.version = self.package.__version__

    def program(self, n: int, **options: Any) -> Any:
        """``BestOfN`` over this harness's ChainOfThought with ``n`` attempts and the never-good reward."""
        return self.package.BestOfN(
            module=self.module, N=n, reward_fn=never_good_enough, threshold=1.0, **options
        )

    def question(self, tag: str, index: int) -> str:
        """A question no earlier call has asked, so no cache anywhere could answer it."""
        return f"[{self.library} {tag} {index} {time.time_ns()}] What is {index} + {index}?"


def timed(call: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure_wall(harness: Harness, repeats: int, warmup: int) -> dict[str, Any]:
    """Single-request and BestOfN wall times, warm-up excluded, interleaved so drift hits both alike."""
    programs: dict[str, Any] = {"single": harness.module, "best_of_n": harness.best_of_n}
    if harness.batched is not None:
        programs["batched"] = harness.batched
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for index in range(warmup + repeats):
        for name, program in programs.items():
            question = harness.question(f"wall-{name}", index)
            seconds = timed(functools.partial(program, question=question))
            if index >= warmup:
                samples[name].append(seconds)
    return {"seconds": samples}


def measure_sweep(harness: Harness, ns: Sequence[int], repeats: int, warmup: int) -> dict[str, Any]:
    """Wall time of one BestOfN call for each N in ``ns`` (and of one single request), warm-up excluded.

    Within each repeat every program runs once, in order, so slow drift of the machine hits all alike.
    bestofn-core also runs ``sampling="batched"`` (one request asking for N choices) for each N.
    """
    programs: dict[str, Any] = {"single": harness.module}
    for n in ns:
        programs[f"best_of_n/{n}"] = harness.program(n)
        if harness.library.startswith("ours"):
            programs[f"batched/{n}"] = harness.program(n, sampling="batched")
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for index in range(warmup + repeats):
        for name, program in programs.items():
            seconds = timed(functools.partial(program, question=harness.question(f"sweep-{name}", index)))
            if index >= warmup:
                samples[name].append(seconds)
        print(f"{harness.library} sweep repeat {index} done", file=sys.stderr)
    return {"seconds": samples, "ns": list(ns)}


def measure_cpu(harness: Harness, repeats: int, warmup: int, calls: int) -> dict[str, Any]:
    """Client CPU per attempt: process time (all threads) around ``calls`` BestOfN calls, per repeat."""
    for index in range(warmup):
        harness.best_of_n(question=harness.question("cpu-warmup", index))
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    for repeat in range(repeats):
        questions = [harness.question(f"cpu-{repeat}", index) for index in range(calls)]
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        for question in questions:
            harness.best_of_n(question=question)
        cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
        attempts = calls * N
        cpu_ms.append(cpu * 1000 / attempts)
        wall_ms.append(wall * 1000 / attempts)
    return {"cpu_ms_per_attempt": cpu_ms, "wall_ms_per_attempt": wall_ms, "calls": calls, "N": N}


def measure_requests(library: str) -> dict[str, Any]:
    """Requests, choices and token usage of one BestOfN call, per sampling mode, seen by the server."""
    from bestofn_core.testing.openai_server import OpenAICompatServer

    results: dict[str, Any] = {}
    with OpenAICompatServer() as server:
        harness = Harness(library, server.url, track_usage=True)
        modes = {"per_rollout": harness.best_of_n}
        if harness.batched is not None:
            modes["batched"] = harness.batched
        for mode, program in modes.items():
            program(question=harness.question(f"requests-warmup-{mode}", 0))
            server.reset()
            prediction = program(question=harness.question(f"requests-{mode}", 1))
            received = server.requests
            usage = prediction.get_lm_usage() or {}
            totals: dict[str, Any] = usage.get(MODEL) or next(iter(usage.values()), {})
            results[mode] = {
                "http_requests": len(received),
                "choices_requested": sum(request.n for request in received),
                "prompt_tokens": totals.get("prompt_tokens"),
                "completion_tokens": totals.get("completion_tokens"),
            }
    return results


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its JSON result as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("library", choices=list(LIBRARIES))
    parser.add_argument("measurement", choices=MEASUREMENTS)
    parser.add_argument("--url", help="the test server's api_base (wall, cpu)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20, help="BestOfN calls per cpu repeat")
    parser.add_argument("--ns", default="1,2,4,8,16", help="sweep: comma-separated N values")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"library": args.library, "measurement": args.measurement}
    if args.measurement == "requests":
        result.update(measure_requests(args.library))
    else:
        if not args.url:
            parser.error(f"{args.measurement} needs --url")
        harness = Harness(args.library, args.url)
        result["version"] = harness.version
        if args.measurement == "wall":
            result.update(measure_wall(harness, args.repeats, args.warmup))
        elif args.measurement == "sweep":
            ns = [int(value) for value in args.ns.split(",")]
            result.update(measure_sweep(harness, ns, args.repeats, args.warmup))
        else:
            result.update(measure_cpu(harness, args.repeats, args.warmup, args.calls))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
