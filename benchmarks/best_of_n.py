"""Best-of-N benchmark: bestofn-core against DSPy 3.4.1, same server, same model string, same machine.

Run it with ``bash benchmarks/run_best_of_n.sh`` (which prepares ``benchmarks/.venv`` and calls this
script with that environment's Python). It

1. starts the bundled OpenAI-compatible test server (``bench_server.py``) as separate processes (one
   answering after 100 ms, one at once), so the server's CPU is never counted in a client;
2. runs every (library, measurement) pair of ``best_of_n_worker.py`` in a fresh subprocess;
3. prints a results table with ratios against DSPy measured in this same run, checks the targets, and
   writes ``benchmarks/results/best_of_n.json`` and ``benchmarks/results/best_of_n.md``.

bestofn-core runs twice: with the built-in litellm backend (``ours``, chosen with
``backend="litellm:litellm"``; the targets are checked for it, the slower of the two) and with the lean
first-party ``openai_http`` backend (``ours-openai-http``: a plain ``LM("openai/...")``, which the installed
plugin serves; reported).

The exit status is 0 when every target is met, 1 when one is missed (the results are written either way)
and 2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from _common import (
    HERE,
    LIBRARIES,
    MODEL,
    PEERS,
    MeasurementError,
    Stat,
    Target,
    finish,
    load_average,
    machine,
    machine_markdown,
    ratio_markdown,
    run_worker,
    speedups,
    targets_markdown,
    test_server,
    write_results,
)

WORKER = HERE / "best_of_n_worker.py"
LATENCY_S = 0.1
N = 8

#: the issue's targets, checked for bestofn-core's litellm backend (the slower one) against both DSPy engines
MAX_OURS_VS_SINGLE = 1.5
MIN_SPEEDUP_VS_DSPY = 5.0


# ---------------------------------------------------------------- measuring


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Take every measurement; returns the raw worker results keyed by measurement, then library."""
    raw: dict[str, dict[str, Any]] = {"wall": {}, "cpu": {}, "requests": {}}
    libraries = list(LIBRARIES)
    print(f"wall time, server latency {LATENCY_S * 1000:.0f} ms ({args.repeats} repeats):")
    with test_server(LATENCY_S) as server:
        for library in libraries:
            raw["wall"][library] = run_worker(
                WORKER,
                library,
                "wall",
                "--url",
                server.url,
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
            )
            print(" done")
    print(f"client CPU, server latency 0 ms ({args.cpu_repeats} repeats x {args.cpu_calls} calls):")
    with test_server(0.0) as server:
        for library in libraries:
            raw["cpu"][library] = run_worker(
                WORKER,
                library,
                "cpu",
                "--url",
                server.url,
                "--repeats",
                str(args.cpu_repeats),
                "--warmup",
                str(args.warmup),
                "--calls",
                str(args.cpu_calls),
            )
            print(" done")
    print("requests and token usage (in-process recording server):")
    for library in libraries:
        raw["requests"][library] = run_worker(WORKER, library, "requests")
        print(" done")
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

    vs_single = {
        library: stats["best_of_n"].median / stats["single"].median
        for library, stats in wall.items()
        if library.startswith("ours")
    }
    batched_vs_single = {
        library: stats["batched"].median / stats["single"].median
        for library, stats in wall.items()
        if "batched" in stats
    }
    speedup = speedups({library: stats["best_of_n"].median for library, stats in wall.items()})
    # CPU the other way round: ours / DSPy, below 1 bestofn-core spends less
    cpu_ratios = {
        ours: {peer: 1 / value for peer, value in row.items()}
        for ours, row in speedups({library: stat.median for library, stat in cpu.items()}).items()
    }
    per_rollout, batched = requests["ours"]["per_rollout"], requests["ours"]["batched"]

    targets = [
        Target(
            f"BestOfN N={N} / single request, {LIBRARIES['ours']}, 100 ms latency",
            f"{vs_single['ours']:.2f}x",
            f"< {MAX_OURS_VS_SINGLE}x",
            vs_single["ours"] < MAX_OURS_VS_SINGLE,
        ),
        *(
            Target(
                f"BestOfN N={N}: {LIBRARIES[peer]} / {LIBRARIES['ours']}, 100 ms latency",
                f"{speedup['ours'][peer]:.2f}x",
                f">= {MIN_SPEEDUP_VS_DSPY:g}x",
                speedup["ours"][peer] >= MIN_SPEEDUP_VS_DSPY,
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
            "best_of_n_vs_single": vs_single,
            "batched_vs_single": batched_vs_single,
            "speedup_best_of_n": speedup,
            "cpu_per_attempt_ours_vs_dspy": cpu_ratios,
        },
    }
    return summary, targets


# ---------------------------------------------------------------- reporting


def _ms(stat: Stat) -> str:
    return f"{stat.median * 1000:.1f} ({stat.min * 1000:.1f})"


def _cpu(stat: Stat) -> str:
    return f"{stat.median:.2f} ({stat.min:.2f})"


def markdown(summary: dict[str, Any], targets: list[Target], info: dict[str, Any]) -> str:
    """The results as a markdown document (tables of numbers and ratios, the targets, the machine)."""
    wall = {
        lib: {name: Stat(**values) for name, values in stats.items()}
        for lib, stats in summary["wall_s"].items()
    }
    cpu = {lib: Stat(**values) for lib, values in summary["cpu_ms_per_attempt"].items()}
    requests = summary["requests"]
    ratios = summary["ratios"]
    columns = list(LIBRARIES)
    header = "| Measurement | " + " | ".join(LIBRARIES[lib] for lib in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)

    def row(label: str, cells: dict[str, str]) -> str:
        return f"| {label} | " + " | ".join(cells.get(lib, "n/a") for lib in columns) + " |"

    def drift(lib: str) -> str:
        samples = cpu[lib].samples
        return f"{samples[0]:.2f} → {samples[-1]:.2f}"

    lines = [
        header,
        rule,
        row(
            "single request (one ChainOfThought call), ms",
            {lib: _ms(wall[lib]["single"]) for lib in columns},
        ),
        row(f"BestOfN N={N}, 100 ms latency, ms", {lib: _ms(wall[lib]["best_of_n"]) for lib in columns}),
        row(
            f"BestOfN N={N} / single request",
            {lib: f"{value:.2f}x" for lib, value in ratios["best_of_n_vs_single"].items()},
        ),
        row(
            f'BestOfN N={N}, sampling="batched", 100 ms latency, ms',
            {lib: _ms(stats["batched"]) for lib, stats in wall.items() if "batched" in stats},
        ),
        row(
            f'BestOfN N={N}, sampling="batched" / single request',
            {lib: f"{value:.2f}x" for lib, value in ratios["batched_vs_single"].items()},
        ),
        row(
            "HTTP requests per BestOfN call (per-rollout / batched)",
            {
                lib: " / ".join(str(mode["http_requests"]) for mode in requests[lib].values())
                for lib in columns
            },
        ),
        row(
            "prompt tokens per BestOfN call (per-rollout / batched)",
            {
                lib: " / ".join(str(mode["prompt_tokens"]) for mode in requests[lib].values())
                for lib in columns
            },
        ),
        row("client CPU per attempt, 0 ms latency, ms", {lib: _cpu(cpu[lib]) for lib in columns}),
        row("client CPU per attempt, first → last repeat, ms", {lib: drift(lib) for lib in columns}),
    ]
    checked = [("ours", peer) for peer in PEERS]
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
            f"BestOfN N={N} wall time, DSPy / bestofn-core (the targets are the bold ones):",
            "",
            *ratio_markdown(ratios["speedup_best_of_n"], "DSPy / bestofn-core", bold=checked),
            "",
            "Client CPU per attempt, bestofn-core / DSPy (below 1: bestofn-core spends less):",
            "",
            *ratio_markdown(ratios["cpu_per_attempt_ours_vs_dspy"], "bestofn-core / DSPy"),
            "",
            *targets_markdown(targets),
            "",
            *machine_markdown(info),
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
    try:
        raw = measure(args)
    except (MeasurementError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info["load_average_after"] = load_average()
    summary, targets = summarise(raw)
    config = {"N": N, "latency_s": LATENCY_S, "model": MODEL, **vars(args)}
    write_results("best_of_n", info, config, summary, targets, raw)
    return finish("best_of_n", markdown(summary, targets, info), targets)


if __name__ == "__main__":
    sys.exit(main())
