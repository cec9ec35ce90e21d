"""One library's measurements for the best-of-N benchmark, run in a fresh process.

``benchmarks/best_of_n.py`` starts this script once per (library, measurement) so that imports, caches,
connection pools and event loops of one library never touch the other's numbers::

    python benchmarks/best_of_n_worker.py LIBRARY MEASUREMENT [--url URL] [--repeats R] ...

LIBRARY is ``ours`` (bestofn_core), ``dspy`` (dspy 3.4.1 with its default engine) or ``dspy-litellm``
(dspy 3.4.1 with ``engine="litellm"``). MEASUREMENT is one of

- ``wall``: wall time of one plain ChainOfThought call (one HTTP request) and of one BestOfN call
  (N=8, a reward that never reaches the threshold), against the server at ``--url`` (started by the
  driver with 100 ms latency); for ``ours`` also BestOfN with ``sampling="batched"``.
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
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "openai/bench-model"
API_KEY = "bench-dummy-key"
N = 8
LIBRARIES = ("ours", "dspy", "dspy-litellm")
MEASUREMENTS = ("wall", "cpu", "requests")


def never_good_enough(inputs: dict[str, Any], prediction: Any) -> float:
    """The reward: always 0.0, so the threshold of 1.0 is never reached and every attempt runs."""
    return 0.0


class Harness:
    """The same program in either library: a ChainOfThought and BestOfN over it, caches off."""

    def __init__(self, library: str, url: str, *, track_usage: bool = False) -> None:
        self.library = library
        if library == "ours":
            import bestofn_core as bon

            bon.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
            lm = bon.LM(MODEL, api_base=url, api_key=API_KEY, temperature=1.0, cache=False)
            bon.configure(lm=lm, track_usage=track_usage)
            self.module: Any = bon.ChainOfThought("question -> answer")
            self.best_of_n: Any = bon.BestOfN(self.module, N=N, reward_fn=never_good_enough, threshold=1.0)
            self.batched: Any = bon.BestOfN(
                self.module, N=N, reward_fn=never_good_enough, threshold=1.0, sampling="batched"
            )
            self.version = bon.__version__
        else:
            import dspy

            dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
            engine = {"engine": "litellm"} if library == "dspy-litellm" else {}
            lm = dspy.LM(MODEL, api_base=url, api_key=API_KEY, temperature=1.0, cache=False, **engine)
            dspy.configure(lm=lm, track_usage=track_usage)
            self.module = dspy.ChainOfThought("question -> answer")
            self.best_of_n = dspy.BestOfN(module=self.module, N=N, reward_fn=never_good_enough, threshold=1.0)
            self.batched = None  # DSPy's BestOfN has no batched sampling
            self.version = dspy.__version__

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
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("measurement", choices=MEASUREMENTS)
    parser.add_argument("--url", help="the test server's api_base (wall, cpu)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--calls", type=int, default=20, help="BestOfN calls per cpu repeat")
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
        else:
            result.update(measure_cpu(harness, args.repeats, args.warmup, args.calls))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
