"""Best-of-N benchmark: bestofn-core against DSPy 3.4.1, same server, same model string, same machine.

Run it with ``bash benchmarks/run_best_of_n.sh`` (which prepares ``benchmarks/.venv`` and calls this
script with that environment's Python). It

1. starts the bundled OpenAI-compatible test server as separate processes (one answering after 100 ms,
   one at once), so the server's CPU is never counted in a client;
2. runs every (library, measurement) pair of ``best_of_n_worker.py`` in a fresh subprocess;
3. prints a results table with ratios against DSPy measured in this same run, checks the targets, and
   writes ``benchmarks/results/best_of_n.json`` and ``benchmarks/results/best_of_n.md``.

The exit status is 0 when every target is met, 1 when one is missed (the results are written either way)
and 2 when a measurement could not be taken.
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
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "best_of_n_worker.py"
RESULTS = HERE / "results"
LATENCY_S = 0.1
N = 8

#: library id -> column title. "dspy" is the peer the targets are checked against; "dspy-litellm" is the
#: same DSPy with ``engine="litellm"`` (the HTTP stack bestofn-core uses), checked as well.
LIBRARIES = {
    "ours": "bestofn-core",
    "dspy": "DSPy 3.4.1 (default engine)",
    "dspy-litellm": 'DSPy 3.4.1 (engine="litellm")',
}
PEERS = ("dspy", "dspy-litellm")

#: the issue's targets
MAX_OURS_VS_SINGLE = 1.5
MIN_SPEEDUP_VS_DSPY = 5.0


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


# ---------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    """Every child's environment: litellm reads its bundled cost map (no network), no PYTHONPATH."""
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


@contextmanager
def test_server(latency: float) -> Iterator[str]:
    """Run ``python -m bestofn_core.testing.openai_server`` as a separate process; yield its URL."""
    command = [
        sys.executable,
        "-m",
        "bestofn_core.testing.openai_server",
        "--port",
        "0",
        "--latency",
        str(latency),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the test server did not start (first line: {url!r})")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(library: str, measurement: str, *options: str) -> dict[str, Any]:
    """Run one measurement in a fresh process and return its JSON result."""
    command = [sys.executable, str(WORKER), library, measurement, *options]
    print(f"  {library:<13} {measurement:<9}", end="", flush=True)
    completed = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=300, check=False
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        print(" failed")
        sys.stderr.write(completed.stderr[-4000:])
        raise RuntimeError(f"{library} {measurement} failed with exit status {completed.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    print(" done")
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
        "nproc": available,
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# ---------------------------------------------------------------- measuring


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Take every measurement; returns the raw worker results keyed by measurement, then library."""
    raw: dict[str, dict[str, Any]] = {"wall": {}, "cpu": {}, "requests": {}}
    libraries = list(LIBRARIES)
    print(f"wall time, server latency {LATENCY_S * 1000:.0f} ms ({args.repeats} repeats):")
    with test_server(LATENCY_S) as url:
        for library in libraries:
            raw["wall"][library] = run_worker(
                library, "wall", "--url", url, "--repeats", str(args.repeats), "--warmup", str(args.warmup)
            )
    print(f"client CPU, server latency 0 ms ({args.cpu_repeats} repeats x {args.cpu_calls} calls):")
    with test_server(0.0) as url:
        for library in libraries:
            raw["cpu"][library] = run_worker(
                library,
                "cpu",
                "--url",
                url,
                "--repeats",
                str(args.cpu_repeats),
                "--warmup",
                str(args.warmup),
                "--calls",
                str(args.cpu_calls),
            )
    print("requests and token usage (in-process recording server):")
    for library in libraries:
        raw["requests"][library] = run_worker(library, "requests")
    return raw


def summarise(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Target]]:
    """Medians, minima, ratios against DSPy, and the target checks."""
    wall = {
        library: {name: Stat.of(samples) for name, samples in result["seconds"].items()}
        for library, result in raw["wall"].items()
    }
    cpu = {library: Stat.of(result["cpu_ms_per_attempt"]) for library, result in raw["cpu"].items()}
    requests = {
        library: {mode: values for mode, values in result.items() if isinstance(values, dict)}
        for library, result in raw["requests"].items()
    }

    ours = wall["ours"]
    ours_vs_single = ours["best_of_n"].median / ours["single"].median
    speedups = {peer: wall[peer]["best_of_n"].median / ours["best_of_n"].median for peer in PEERS}
    cpu_ratios = {peer: cpu["ours"].median / cpu[peer].median for peer in PEERS}
    per_rollout, batched = requests["ours"]["per_rollout"], requests["ours"]["batched"]

    targets = [
        Target(
            "BestOfN N=8 (ours) / single request (ours), 100 ms latency",
            f"{ours_vs_single:.2f}x",
            f"< {MAX_OURS_VS_SINGLE}x",
            ours_vs_single < MAX_OURS_VS_SINGLE,
        ),
        *(
            Target(
                f"BestOfN N=8 speed-up vs {LIBRARIES[peer]}, 100 ms latency",
                f"{speedups[peer]:.2f}x",
                f">= {MIN_SPEEDUP_VS_DSPY}x",
                speedups[peer] >= MIN_SPEEDUP_VS_DSPY,
            )
            for peer in PEERS
        ),
        Target(
            'HTTP requests per BestOfN call, sampling="batched" (per-rollout)',
            f"{batched['http_requests']} ({per_rollout['http_requests']})",
            f"1 ({N})",
            batched["http_requests"] == 1 and per_rollout["http_requests"] == N,
        ),
        Target(
            'prompt tokens per BestOfN call, sampling="batched" x N = per-rollout',
            f"{batched['prompt_tokens']} x {N} = {(batched['prompt_tokens'] or 0) * N} "
            f"vs {per_rollout['prompt_tokens']}",
            "counted once",
            batched["prompt_tokens"] is not None
            and batched["prompt_tokens"] * N == per_rollout["prompt_tokens"],
        ),
    ]
    summary = {
        "wall_s": {lib: {k: asdict(v) for k, v in stats.items()} for lib, stats in wall.items()},
        "cpu_ms_per_attempt": {lib: asdict(stat) for lib, stat in cpu.items()},
        "requests": requests,
        "ratios": {
            "ours_best_of_n_vs_ours_single": ours_vs_single,
            "ours_batched_vs_ours_single": ours["batched"].median / ours["single"].median,
            "speedup_best_of_n_vs": speedups,
            "cpu_per_attempt_ours_vs": cpu_ratios,
        },
    }
    return summary, targets


# ---------------------------------------------------------------- reporting


def _ms(stat: Stat) -> str:
    return f"{stat.median * 1000:.1f} ({stat.min * 1000:.1f})"


def _cpu(stat: Stat) -> str:
    return f"{stat.median:.2f} ({stat.min:.2f})"


def markdown(summary: dict[str, Any], targets: list[Target], info: dict[str, Any]) -> str:
    """The results as a markdown document (a table of numbers, a table of targets, the machine)."""
    wall = {
        lib: {name: Stat(**values) for name, values in stats.items()}
        for lib, stats in summary["wall_s"].items()
    }
    cpu = {lib: Stat(**values) for lib, values in summary["cpu_ms_per_attempt"].items()}
    requests = summary["requests"]
    ratios = summary["ratios"]
    speedup = ratios["speedup_best_of_n_vs"]
    cpu_ratio = ratios["cpu_per_attempt_ours_vs"]
    columns = list(LIBRARIES)
    header = "| Measurement | " + " | ".join(LIBRARIES[lib] for lib in columns) + " | Ratio |"
    rule = "|---|" + "---:|" * len(columns) + "---|"

    def row(label: str, cells: dict[str, str], ratio: str) -> str:
        return f"| {label} | " + " | ".join(cells.get(lib, "n/a") for lib in columns) + f" | {ratio} |"

    def drift(lib: str) -> str:
        samples = cpu[lib].samples
        return f"{samples[0]:.2f} → {samples[-1]:.2f}"

    lines = [
        header,
        rule,
        row(
            "single request (one ChainOfThought call), ms",
            {lib: _ms(wall[lib]["single"]) for lib in columns},
            "",
        ),
        row(
            "BestOfN N=8, 100 ms latency, ms",
            {lib: _ms(wall[lib]["best_of_n"]) for lib in columns},
            f"DSPy / ours: **{speedup['dspy']:.2f}x** (litellm engine: {speedup['dspy-litellm']:.2f}x); "
            f"ours / single request: **{ratios['ours_best_of_n_vs_ours_single']:.2f}x**",
        ),
        row(
            'BestOfN N=8, sampling="batched", 100 ms latency, ms',
            {"ours": _ms(wall["ours"]["batched"])},
            f"ours / single request: {ratios['ours_batched_vs_ours_single']:.2f}x",
        ),
        row(
            "HTTP requests per BestOfN call (per-rollout / batched)",
            {
                lib: " / ".join(str(mode["http_requests"]) for mode in requests[lib].values())
                for lib in columns
            },
            "",
        ),
        row(
            "prompt tokens per BestOfN call (per-rollout / batched)",
            {
                lib: " / ".join(str(mode["prompt_tokens"]) for mode in requests[lib].values())
                for lib in columns
            },
            "",
        ),
        row(
            "client CPU per attempt, 0 ms latency, ms",
            {lib: _cpu(cpu[lib]) for lib in columns},
            f"ours / DSPy: **{cpu_ratio['dspy']:.2f}x** (litellm engine: {cpu_ratio['dspy-litellm']:.2f}x)",
        ),
        row("client CPU per attempt, first → last repeat, ms", {lib: drift(lib) for lib in columns}, ""),
    ]
    target_lines = ["| Target | This run | Required | Met |", "|---|---:|---:|---|"]
    target_lines += [
        f"| {t.name} | {t.value} | {t.target} | {'yes' if t.met else '**NO**'} |" for t in targets
    ]
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    return "\n".join(
        [
            "# Best-of-N benchmark results",
            "",
            f"Measured {info['date']} with `bash benchmarks/run_best_of_n.sh`.",
            "Times are median (min) over the repeats; warm-up calls are excluded. Each library ran in its",
            "own fresh process against the same test server (a separate process), with caches off.",
            "",
            *lines,
            "",
            *target_lines,
            "",
            f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
            f"Python {info['python']}, {info['platform']}.",
            f"Packages: {versions}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, write the results; the exit status says whether targets were met."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed BestOfN calls per library (wall)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--cpu-repeats", type=int, default=5, help="CPU repeats per library (default 5)")
    parser.add_argument("--cpu-calls", type=int, default=20, help="BestOfN calls per CPU repeat (default 20)")
    args = parser.parse_args(argv)

    info = machine()
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        raw = measure(args)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary, targets = summarise(raw)
    report = markdown(summary, targets, info)

    RESULTS.mkdir(exist_ok=True)
    document = {
        "machine": info,
        "config": {"N": N, "latency_s": LATENCY_S, "model": "openai/bench-model", **vars(args)},
        "summary": summary,
        "targets": [asdict(target) for target in targets],
        "raw": raw,
    }
    (RESULTS / "best_of_n.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "best_of_n.md").write_text(report)
    print()
    print(report)
    print(f"wrote {RESULTS.relative_to(ROOT)}/best_of_n.json and best_of_n.md")
    missed = [target.name for target in targets if not target.met]
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
