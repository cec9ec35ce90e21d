"""Batch benchmark: ``module.batch(...)`` of BestOfN, bestofn-core against DSPy 3.4.1, same server.

Run it with ``bash benchmarks/run_batch.sh`` (which prepares ``benchmarks/.venv`` and calls this script
with that environment's Python). It

1. starts the bundled OpenAI-compatible test server (``batch_server.py``: the same ``OpenAICompatServer``
   as ``python -m bestofn_core.testing.openai_server``, recording arrivals) as a separate process,
   answering every request after 100 ms;
2. ``compare``: runs ``BestOfN(ChainOfThought("question -> answer"), N=4, <never good enough>)`` over 64
   distinct questions with ``batch(num_threads=8)`` in each library, each in a fresh subprocess
   (``batch_worker.py``), warm-up excluded, and prints DSPy / ours;
3. ``scale``: runs ours over 1,000 questions x N=8 with ``configure(max_concurrency=64)`` in fresh
   subprocesses: wall time, LM requests/s, client CPU, peak RSS; the server counts the requests and the
   most it had in flight;
4. prints the tables, checks the targets, and writes ``benchmarks/results/batch.json`` and
   ``benchmarks/results/batch.md``.

The exit status is 0 when every target is met, 1 when one is missed (the results are written either way)
and 2 when a measurement could not be taken (a worker failed, or an example of a batch failed).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "batch_worker.py"
SERVER = HERE / "batch_server.py"
RESULTS = HERE / "results"
LATENCY_S = 0.1

#: library id -> column title. "dspy" is DSPy as a user gets it; "dspy-litellm" the same DSPy with
#: ``engine="litellm"`` (the HTTP stack bestofn-core uses). The target is checked against both.
LIBRARIES = {
    "ours": "bestofn-core",
    "dspy": "DSPy 3.4.1 (default engine)",
    "dspy-litellm": 'DSPy 3.4.1 (engine="litellm")',
}
PEERS = ("dspy", "dspy-litellm")

#: the issue's target: DSPy's batch time / ours, same num_threads
MIN_SPEEDUP_VS_DSPY = 3.0


@dataclass
class Stat:
    """Median and minimum of a list of samples, in the unit the samples are in."""

    median: float
    min: float
    samples: list[float]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        """Summarise ``samples`` (at least one)."""
        return cls(statistics.median(samples), min(samples), list(samples))


@dataclass
class Target:
    """One requirement of the issue and whether this run met it."""

    name: str
    value: str
    target: str
    met: bool


class MeasurementError(RuntimeError):
    """A measurement could not be taken (a worker or an example failed)."""


# ---------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    """Every child's environment: litellm reads its bundled cost map (no network), no PYTHONPATH."""
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


class Server:
    """The running ``batch_server.py`` process: its URL and its request statistics."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stats(self) -> dict[str, int]:
        """Requests, choices and peak in-flight requests since the previous call."""
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write("stats\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise MeasurementError("the test server exited")
        answer: dict[str, int] = json.loads(line)
        return answer


@contextmanager
def test_server(latency: float) -> Iterator[Server]:
    """Run ``batch_server.py`` as a separate process (its CPU is not the client's); yield it."""
    command = [sys.executable, str(SERVER), "--latency", str(latency)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise MeasurementError(f"the test server did not start (first line: {url!r})")
        yield Server(process, url)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: the server stops
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(library: str, measurement: str, *options: str) -> dict[str, Any]:
    """Run one measurement in a fresh process and return its JSON result."""
    command = [sys.executable, str(WORKER), library, measurement, *options]
    print(f"  {LIBRARIES[library]:<30} {measurement:<8}", end="", flush=True)
    completed = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=300, check=False
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        print(" failed")
        sys.stderr.write(completed.stderr[-4000:])
        raise MeasurementError(f"{library} {measurement} failed with exit status {completed.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("failed_examples"):
        print(" failed")
        sys.stderr.write(completed.stderr[-4000:])
        raise MeasurementError(f"{library} {measurement}: {result['failed_examples']} example(s) failed")
    return result


# ---------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """Where the numbers were taken: CPUs, CPU model, memory, Python, package versions."""
    cpu_model = platform.processor() or "unknown"
    memory_gib: float | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions: dict[str, str | None] = {}
    for package in ("bestofn-core", "dspy", "litellm", "openai", "httpx", "aiohttp"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "nproc": available,
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# ---------------------------------------------------------------- measuring


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Take every measurement; the raw worker results (with the server's counts) per measurement."""
    raw: dict[str, Any] = {"compare": {}, "scale": []}
    print(
        f"compare: {args.questions} questions x N={args.n}, batch(num_threads={args.num_threads}), "
        f"server latency {LATENCY_S * 1000:.0f} ms ({args.warmup} warm-up + {args.repeats} timed batches):"
    )
    with test_server(LATENCY_S) as server:
        server.stats()
        for library in LIBRARIES:
            result = run_worker(
                library,
                "compare",
                "--url",
                server.url,
                "--questions",
                str(args.questions),
                "--n",
                str(args.n),
                "--num-threads",
                str(args.num_threads),
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
            )
            result["server"] = server.stats()
            raw["compare"][library] = result
            seconds = Stat.of(result["seconds"])
            print(f" {seconds.median:.3f} s ({seconds.min:.3f})")
        print(
            f"scale: {args.scale_questions} questions x N={args.scale_n}, "
            f"max_concurrency={args.scale_max_concurrency}, batch(num_threads={args.scale_num_threads}), "
            f"{args.scale_runs} run(s), each in a fresh process after a "
            f"{args.scale_warmup_questions}-question warm-up:"
        )
        for _ in range(args.scale_runs):
            result = run_worker(
                "ours",
                "scale",
                "--url",
                server.url,
                "--questions",
                str(args.scale_questions),
                "--n",
                str(args.scale_n),
                "--num-threads",
                str(args.scale_num_threads),
                "--max-concurrency",
                str(args.scale_max_concurrency),
                "--warmup-questions",
                str(args.scale_warmup_questions),
            )
            result["server"] = server.stats()
            raw["scale"].append(result)
            print(f" {result['wall_s']:.2f} s, {result['requests_per_s']:.0f} requests/s")
    return raw


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[Target]]:
    """Medians, minima, ratios against DSPy, the scale figures and the target checks."""
    compare = raw["compare"]
    wall = {library: Stat.of(result["seconds"]) for library, result in compare.items()}
    cpu = {library: Stat.of(result["cpu_seconds"]) for library, result in compare.items()}
    speedups = {peer: wall[peer].median / wall["ours"].median for peer in PEERS}
    speedups_min = {peer: wall[peer].min / wall["ours"].min for peer in PEERS}
    batches = args.warmup + args.repeats
    expected_requests = batches * args.questions * args.n
    server = {library: result["server"] for library, result in compare.items()}
    # share of the batch's wall time bestofn-core's event-loop thread was on a CPU (all its work runs there)
    loop_busy = Stat.of(
        [
            loop / seconds
            for loop, seconds in zip(
                compare["ours"]["loop_cpu_seconds"], compare["ours"]["seconds"], strict=True
            )
            if loop is not None
        ]
        or [float("nan")]
    )

    runs = raw["scale"]
    scale = {
        "wall_s": asdict(Stat.of([run["wall_s"] for run in runs])),
        "requests_per_s": asdict(Stat.of([run["requests_per_s"] for run in runs])),
        "cpu_s": asdict(Stat.of([run["cpu_s"] for run in runs])),
        "cpu_ms_per_request": asdict(Stat.of([run["cpu_ms_per_request"] for run in runs])),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "rss_before_mib": asdict(Stat.of([run["rss_before_mib"] for run in runs])),
        "rss_after_mib": asdict(Stat.of([run["rss_after_mib"] for run in runs])),
        "rss_after_release_mib": asdict(Stat.of([run["rss_after_release_mib"] for run in runs])),
        "loop_busy": asdict(
            Stat.of(
                [run["loop_cpu_s"] / run["wall_s"] for run in runs if run["loop_cpu_s"] is not None]
                or [float("nan")]
            )
        ),
        "history_entries": max((run.get("history_entries") or 0) for run in runs),
        "max_in_flight": max(run["server"]["max_in_flight"] for run in runs),
        "server_requests_per_run": [run["server"]["requests"] for run in runs],
        "expected_requests_per_run": (args.scale_questions + args.scale_warmup_questions) * args.scale_n,
    }
    # what the latency alone would allow: ours runs num_threads examples at a time with all N attempts
    # concurrent; DSPy runs num_threads examples at a time with the N attempts one after another
    waves = -(-args.questions // args.num_threads)
    latency_bound = {"ours": waves * LATENCY_S, "dspy": waves * args.n * LATENCY_S}

    targets = [
        *(
            Target(
                f"{args.questions} x N={args.n} batch(num_threads={args.num_threads}): "
                f"{LIBRARIES[peer]} / ours",
                f"{speedups[peer]:.2f}x",
                f">= {MIN_SPEEDUP_VS_DSPY:g}x",
                speedups[peer] >= MIN_SPEEDUP_VS_DSPY,
            )
            for peer in PEERS
        ),
        Target(
            f"{args.questions} x N={args.n}: every attempt reached the server (requests per library)",
            " / ".join(str(server[library]["requests"]) for library in LIBRARIES),
            str(expected_requests),
            all(server[library]["requests"] == expected_requests for library in LIBRARIES),
        ),
        Target(
            f"{args.scale_questions} x N={args.scale_n}: requests in flight at the server, "
            f"max_concurrency={args.scale_max_concurrency}",
            str(scale["max_in_flight"]),
            f"<= {args.scale_max_concurrency}",
            scale["max_in_flight"] <= args.scale_max_concurrency,
        ),
        Target(
            f"{args.scale_questions} x N={args.scale_n}: every attempt reached the server (per run, "
            f"with the warm-up)",
            ", ".join(str(count) for count in scale["server_requests_per_run"]),
            str(scale["expected_requests_per_run"]),
            all(count == scale["expected_requests_per_run"] for count in scale["server_requests_per_run"]),
        ),
    ]
    summary = {
        "compare": {
            "wall_s": {library: asdict(stat) for library, stat in wall.items()},
            "cpu_s": {library: asdict(stat) for library, stat in cpu.items()},
            "server": server,
            "executor": compare["ours"].get("executor"),
            "loop_busy": asdict(loop_busy),
            "speedup_vs": speedups,
            "speedup_of_minima_vs": speedups_min,
            "latency_bound_s": latency_bound,
        },
        "scale": scale,
    }
    return summary, targets


# ---------------------------------------------------------------- reporting


def _s(stat: dict[str, Any], digits: int = 3) -> str:
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f})"


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def markdown(
    summary: dict[str, Any], targets: list[Target], info: dict[str, Any], args: argparse.Namespace
) -> str:
    """The results as a markdown document (tables of numbers, a table of targets, the machine)."""
    compare, scale = summary["compare"], summary["scale"]
    wall, cpu, server = compare["wall_s"], compare["cpu_s"], compare["server"]
    speedup, bound = compare["speedup_vs"], compare["latency_bound_s"]
    columns = list(LIBRARIES)
    attempts = args.questions * args.n

    def row(label: str, cells: dict[str, str], ratio: str = "") -> str:
        return f"| {label} | " + " | ".join(cells.get(lib, "n/a") for lib in columns) + f" | {ratio} |"

    compare_lines = [
        "| Measurement | " + " | ".join(LIBRARIES[lib] for lib in columns) + " | Ratio |",
        "|---|" + "---:|" * len(columns) + "---|",
        row(
            f"{args.questions} questions x N={args.n}, `batch(num_threads={args.num_threads})`, s",
            {lib: _s(wall[lib]) for lib in columns},
            f"DSPy / ours: **{speedup['dspy']:.2f}x** (litellm engine: **{speedup['dspy-litellm']:.2f}x**)",
        ),
        row(
            "client CPU per batch (all threads), s",
            {lib: _s(cpu[lib]) for lib in columns},
            f"ours / DSPy: {cpu['ours']['median'] / cpu['dspy']['median']:.2f}x "
            f"(litellm engine: {cpu['ours']['median'] / cpu['dspy-litellm']['median']:.2f}x)",
        ),
        row(
            "client CPU per attempt, ms",
            {lib: f"{cpu[lib]['median'] * 1000 / attempts:.2f}" for lib in columns},
        ),
        row(
            "bestofn-core's event-loop thread: CPU / wall time",
            {"ours": f"{compare['loop_busy']['median']:.0%}"},
        ),
        row(
            "latency-only bound (100 ms per request, no client CPU), s",
            {"ours": f"{bound['ours']:.1f}", **dict.fromkeys(PEERS, f"{bound['dspy']:.1f}")},
            f"{bound['dspy'] / bound['ours']:.1f}x",
        ),
        row(
            "requests received by the server (warm-up included)",
            {lib: str(server[lib]["requests"]) for lib in columns},
        ),
        row(
            "most requests in flight at the server",
            {lib: str(server[lib]["max_in_flight"]) for lib in columns},
        ),
    ]
    scale_lines = [
        "| Measurement | bestofn-core |",
        "|---|---:|",
        f"| wall time, s | {_s(scale['wall_s'], 2)} |",
        f"| LM requests/s ({args.scale_questions * args.scale_n:,} requests / wall time) "
        f"| {_s(scale['requests_per_s'], 0)} |",
        f"| client CPU (all threads), s | {_s(scale['cpu_s'], 2)} |",
        f"| client CPU per request, ms | {_s(scale['cpu_ms_per_request'], 2)} |",
        f"| event-loop thread: CPU / wall time | {scale['loop_busy']['median']:.0%} |",
        f"| peak RSS of the client (`ru_maxrss`, max over runs), MiB | {scale['peak_rss_mib']:.0f} |",
        f"| RSS before the batch (after the warm-up), MiB | {_s(scale['rss_before_mib'], 0)} |",
        f"| RSS after the batch (results held), MiB | {_s(scale['rss_after_mib'], 0)} |",
        f"| RSS after releasing the results (`gc.collect()`; {scale['history_entries']:,} LM calls still in "
        f"the bounded call history), MiB | {_s(scale['rss_after_release_mib'], 0)} |",
        f"| most requests in flight at the server | {scale['max_in_flight']} |",
    ]
    target_lines = ["| Target | This run | Required | Met |", "|---|---:|---:|---|"]
    target_lines += [
        f"| {t.name} | {t.value} | {t.target} | {'yes' if t.met else '**NO**'} |" for t in targets
    ]
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    return "\n".join(
        [
            "# Batch benchmark results",
            "",
            f"Measured {info['date']} with `bash benchmarks/run_batch.sh`.",
            f"Server latency {LATENCY_S * 1000:.0f} ms; each library in its own fresh process against the",
            "same test server (a separate process); caches off, progress bars off. Times are median (min).",
            "",
            f"## {args.questions} questions x N={args.n}, `batch(num_threads={args.num_threads})`",
            "",
            f"{args.warmup} warm-up batch(es) excluded, {args.repeats} timed batches per library. "
            f"bestofn-core's executor: `{compare['executor']}`.",
            "",
            *compare_lines,
            "",
            f"## {args.scale_questions:,} questions x N={args.scale_n}, `max_concurrency="
            f"{args.scale_max_concurrency}`, `batch(num_threads={args.scale_num_threads})` (ours only)",
            "",
            f"{args.scale_runs} run(s), each in a fresh process after a "
            f"{args.scale_warmup_questions}-question warm-up batch.",
            "",
            *scale_lines,
            "",
            "## Targets",
            "",
            *target_lines,
            "",
            f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
            f"Python {info['python']}, {info['platform']}. Load average (1, 5, 15 min) before the run: "
            f"{_load(info['load_average'])}; after: {_load(info['load_average_after'])} (other work on the "
            "machine shows here).",
            f"Packages: {versions}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables, write the results; the exit status says whether targets were met."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="compare: timed batches per library (5)")
    parser.add_argument("--warmup", type=int, default=1, help="compare: untimed batches first (1)")
    parser.add_argument("--questions", type=int, default=64, help="compare: examples per batch (64)")
    parser.add_argument("--n", type=int, default=4, help="compare: BestOfN N (4)")
    parser.add_argument("--num-threads", type=int, default=8, help="compare: num_threads, both libraries (8)")
    parser.add_argument("--scale-questions", type=int, default=1000, help="scale: examples (1000)")
    parser.add_argument("--scale-n", type=int, default=8, help="scale: BestOfN N (8)")
    parser.add_argument("--scale-max-concurrency", type=int, default=64, help="scale: max_concurrency (64)")
    parser.add_argument("--scale-num-threads", type=int, default=64, help="scale: num_threads (64)")
    parser.add_argument("--scale-runs", type=int, default=3, help="scale: fresh processes (3)")
    parser.add_argument("--scale-warmup-questions", type=int, default=64, help="scale: warm-up examples (64)")
    args = parser.parse_args(argv)

    info = machine()
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        raw = measure(args)
        info["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    except (MeasurementError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary, targets = summarise(raw, args)
    report = markdown(summary, targets, info, args)

    RESULTS.mkdir(exist_ok=True)
    document = {
        "machine": info,
        "config": {"latency_s": LATENCY_S, "model": "openai/bench-model", **vars(args)},
        "summary": summary,
        "targets": [asdict(target) for target in targets],
        "raw": raw,
    }
    (RESULTS / "batch.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "batch.md").write_text(report)
    print()
    print(report)
    print(f"wrote {RESULTS.relative_to(ROOT)}/batch.json and batch.md")
    missed = [target.name for target in targets if not target.met]
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
