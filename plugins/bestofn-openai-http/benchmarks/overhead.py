"""Client CPU per LM call: the openai_http backend against the built-in litellm backend.

One command, from the repository root (bestofn-core and this plugin installed, or the plugin only checked
out: the worker then registers it in-process)::

    python plugins/bestofn-openai-http/benchmarks/overhead.py [--calls 200] [--concurrency 16] [--repeats 3]

It starts the bundled OpenAI-compatible test server as a separate process, answering at once (``--latency``
changes that), so the server's CPU is never counted in a client. Then, for every (scenario, backend), it
runs a fresh Python process that builds ``bon.LM("openai/bench", backend=...)`` with ``"litellm:litellm"``
or ``"openai_http:openai"`` (this plugin) and the response cache off, warms up (first imports,
connection set-up: excluded), and measures ``time.process_time()`` (every thread of the process) over
``--repeats`` blocks of calls. The median block gives CPU milliseconds per call. Scenarios:

- ``sequential``: ``--calls`` sync calls ``lm(messages=...)``, one after the other;
- ``concurrent``: ``--calls`` async calls ``await lm.acall(...)``, ``--concurrency`` in flight at a time;
- ``best_of_n``: ``--bon-calls`` calls of ``BestOfN(Predict("question -> answer"), N=8)`` whose reward
  never reaches the threshold, so all 8 attempts run (8 requests per call, concurrently); CPU per attempt;
- ``best_of_n_batched``: the same with ``sampling="batched"`` (one request with ``n=8`` per call).

``--scenarios concurrent,best_of_n`` runs only some. It prints one row per scenario with both backends and
the ratio litellm / openai_http (higher: this plugin is cheaper), and writes the numbers as JSON with
``--json PATH``. This is a benchmark, not a test: nothing is asserted, and the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# no network at litellm's import (its model cost map), here and in every worker started from here
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent
PLUGIN_ROOT = HERE.parent
BACKENDS = {"litellm": "litellm:litellm", "openai_http": "openai_http:openai"}
SCENARIOS = ("sequential", "concurrent", "best_of_n", "best_of_n_batched")
N = 8
MESSAGES = [{"role": "user", "content": "Say hello in one word."}]


# ---------------------------------------------------------------- the driver


@contextmanager
def test_server(latency: float) -> Iterator[str]:
    """Run ``python -m bestofn_core.testing.openai_server`` in its own process; yield its URL."""
    server = [sys.executable, "-m", "bestofn_core.testing.openai_server", "--port", "0"]
    process = subprocess.Popen(
        [*server, "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise SystemExit(f"the test server did not start (it printed {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_worker(backend: str, scenario: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one (backend, scenario) in a fresh process; return its JSON result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        backend,
        scenario,
        "--url",
        url,
        "--calls",
        str(args.calls),
        "--concurrency",
        str(args.concurrency),
        "--bon-calls",
        str(args.bon_calls),
        "--repeats",
        str(args.repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {backend}/{scenario} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def drive(args: argparse.Namespace) -> None:
    """Run every measurement and print the table."""
    print(
        f"Python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} CPUs), "
        f"litellm {_version('litellm')}, httpx {_version('httpx')}, httpcore {_version('httpcore')}; "
        f"test server in its own process, {args.latency * 1000:g} ms latency"
    )
    print(
        f"calls per block: {args.calls} (concurrent: {args.concurrency} in flight), "
        f"BestOfN: {args.bon_calls} calls of N={N}; median of {args.repeats} blocks; "
        "client CPU = time.process_time(), all threads\n"
    )
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with test_server(args.latency) as url:
        for scenario in args.scenarios:
            results[scenario] = {backend: run_worker(backend, scenario, url, args) for backend in BACKENDS}
    header = f"{'scenario':<20} {'unit':<12} {'litellm':>12} {'openai_http':>12} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for scenario, by_backend in results.items():
        slow = by_backend["litellm"]["cpu_ms"]
        fast = by_backend["openai_http"]["cpu_ms"]
        unit = "ms/attempt" if scenario.startswith("best_of_n") else "ms/call"
        print(f"{scenario:<20} {unit:<12} {slow:>12.3f} {fast:>12.3f} {slow / fast:>6.1f}x")
    print("\nratio = litellm CPU / openai_http CPU (higher: openai_http is cheaper)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------- the worker (a fresh process)


def never_good_enough(inputs: dict[str, Any], prediction: Any) -> float:
    """The BestOfN reward: always 0.0, below the threshold, so every attempt runs."""
    return 0.0


def measure(block: Callable[[], None], repeats: int, units: int) -> dict[str, Any]:
    """CPU milliseconds per unit of the median of ``repeats`` runs of ``block`` (``units`` units each)."""
    samples = []
    walls = []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        block()
        samples.append((time.process_time() - cpu) * 1000.0 / units)
        walls.append((time.perf_counter() - wall) * 1000.0 / units)
    return {
        "cpu_ms": statistics.median(samples),
        "cpu_ms_samples": samples,
        "wall_ms": statistics.median(walls),
    }


def work(backend: str, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build the LM for ``backend`` and measure ``scenario``."""
    import bestofn_core as bon
    from bestofn_core.plugins import get_plugin_manager, get_registry

    if backend == "openai_http" and BACKENDS[backend] not in get_registry().names("lm_backend"):
        # a source checkout without `pip install -e plugins/bestofn-openai-http`: register it in-process
        sys.path.insert(0, str(PLUGIN_ROOT))
        from bestofn_openai_http import plugin

        get_plugin_manager().register(plugin, name="openai_http")
    bon.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    # the same openai/ model string for both, as a user writes it; the backend chosen explicitly
    lm = bon.LM(
        "openai/bench",
        backend=BACKENDS[backend],
        api_base=args.url,
        api_key="bench-key",
        cache=False,
        temperature=1.0,
    )
    assert lm.backend is get_registry().get("lm_backend", BACKENDS[backend])

    if scenario == "sequential":

        def sequential(count: int = args.calls) -> None:
            for _ in range(count):
                lm(messages=MESSAGES)

        sequential(20)
        return measure(sequential, args.repeats, args.calls)

    if scenario == "concurrent":

        async def many(count: int) -> None:
            slots = asyncio.Semaphore(args.concurrency)

            async def one() -> None:
                async with slots:
                    await lm.acall(messages=MESSAGES)

            await asyncio.gather(*(one() for _ in range(count)))

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(many(args.concurrency * 4))
            return measure(lambda: loop.run_until_complete(many(args.calls)), args.repeats, args.calls)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    bon.configure(lm=lm)
    best = bon.BestOfN(
        bon.Predict("question -> answer"),
        N=N,
        reward_fn=never_good_enough,
        threshold=1.0,
        sampling="batched" if scenario == "best_of_n_batched" else "per_rollout",
    )
    questions = iter(range(10**9))

    def best_of_n(count: int = args.bon_calls) -> None:
        for _ in range(count):
            prediction = best(question=f"question {next(questions)}")
            assert len(prediction.candidates) == N

    best_of_n(3)
    return measure(best_of_n, args.repeats, args.bon_calls * N)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run the driver, or one worker with ``--worker BACKEND SCENARIO``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per measured block (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight, concurrent scenario")
    parser.add_argument("--bon-calls", type=int, default=25, help="BestOfN calls per measured block")
    parser.add_argument("--repeats", type=int, default=3, help="measured blocks; the median is reported")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server waits (default 0)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "SCENARIO"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("calls", "concurrency", "bon_calls", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown or not args.scenarios:
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}, got {unknown or 'none'}")
    if args.worker:
        backend, scenario = args.worker
        if backend not in BACKENDS or scenario not in SCENARIOS:
            parser.error(f"--worker takes one of {sorted(BACKENDS)} and one of {list(SCENARIOS)}")
        print(json.dumps(work(backend, scenario, args)))
        return 0
    drive(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
