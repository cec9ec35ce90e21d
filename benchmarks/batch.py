"""Batch benchmark: ``module.batch(...)`` of BestOfN, bestofn-core against DSPy 3.4.1, same server.

Run it with ``bash benchmarks/run_batch.sh`` (which prepares ``benchmarks/.venv`` and calls this script
with that environment's Python). It

1. starts the bundled OpenAI-compatible test server (``bench_server.py``: the same ``OpenAICompatServer``
   as ``python -m bestofn_core.testing.openai_server``, recording arrivals) as a separate process,
   answering every request after 100 ms;
2. ``compare``: runs ``BestOfN(ChainOfThought("question -> answer"), N=4, <never good enough>)`` over 64
   distinct questions with ``batch(num_threads=8)`` in four configurations, each in a fresh subprocess
   (``batch_worker.py``), warm-up excluded: bestofn-core as configured for an OpenAI-compatible server
   (``LM("openai/...")`` with the first-party bestofn-openai-http plugin installed, which then serves it)
   and with ``backend="litellm:litellm"``, DSPy 3.4.1 with its default (``lm15``) engine and with
   ``engine="litellm"``; prints DSPy / ours for every pair;
3. ``scale``: runs ours (both backends) over 1,000 questions x N=8 with ``configure(max_concurrency=64)``
   in fresh subprocesses: wall time, LM requests/s, client CPU, peak RSS; the server counts the requests
   and the most it had in flight;
4. prints the tables, checks the targets, and writes ``benchmarks/results/batch.json`` and
   ``benchmarks/results/batch.md``.

The issue's 3x target is checked for the pair it names: DSPy 3.4.1 as a user gets it (its default engine)
against bestofn-core as a user configures it for an OpenAI-compatible server (``LM("openai/...")``, served
by the bestofn-openai-http plugin once installed). The other three pairs, litellm on both sides among
them, are reported.

The exit status is 0 when every target is met, 1 when one is missed (the results are written either way)
and 2 when a measurement could not be taken (a worker failed, or an example of a batch failed).
"""

from __future__ import annotations

import argparse
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

WORKER = HERE / "batch_worker.py"
LATENCY_S = 0.1

#: the issue's target: DSPy's batch time / ours, same num_threads, checked for TARGET_PAIR
MIN_SPEEDUP_VS_DSPY = 3.0
#: (ours, peer) the target is checked for: both libraries with their default client for ``openai/...``
TARGET_PAIR = ("ours-openai-http", "dspy")


# ---------------------------------------------------------------- measuring


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Take every measurement; the raw worker results (with the server's counts) per measurement."""
    raw: dict[str, Any] = {"compare": {}, "scale": {}}
    print(
        f"compare: {args.questions} questions x N={args.n}, batch(num_threads={args.num_threads}), "
        f"server latency {LATENCY_S * 1000:.0f} ms ({args.warmup} warm-up + {args.repeats} timed batches):"
    )
    with test_server(LATENCY_S) as server:
        server.stats()
        for library in LIBRARIES:
            result = run_worker(
                WORKER,
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
            f"{args.scale_runs} run(s) per backend, each in a fresh process after a "
            f"{args.scale_warmup_questions}-question warm-up:"
        )
        for library in args.scale_libraries.split(","):
            raw["scale"][library] = []
            for _ in range(args.scale_runs):
                result = run_worker(
                    WORKER,
                    library,
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
                raw["scale"][library].append(result)
                print(f" {result['wall_s']:.2f} s, {result['requests_per_s']:.0f} requests/s")
    return raw


def summarise_scale(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The scale figures of one backend's runs."""
    return {
        "runs": len(runs),
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


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[Target]]:
    """Medians, minima, ratios against DSPy, the scale figures and the target checks."""
    compare = raw["compare"]
    wall = {library: Stat.of(result["seconds"]) for library, result in compare.items()}
    cpu = {library: Stat.of(result["cpu_seconds"]) for library, result in compare.items()}
    speedup = speedups({library: stat.median for library, stat in wall.items()})
    speedup_min = speedups({library: stat.min for library, stat in wall.items()})
    cpu_ratios = {
        ours: {peer: 1 / value for peer, value in row.items()}
        for ours, row in speedups({library: stat.median for library, stat in cpu.items()}).items()
    }
    batches = args.warmup + args.repeats
    expected_requests = batches * args.questions * args.n
    server = {library: result["server"] for library, result in compare.items()}
    # share of the batch's wall time bestofn-core's event-loop thread was on a CPU (all its work runs there)
    loop_busy = {
        library: asdict(
            Stat.of(
                [
                    loop / seconds
                    for loop, seconds in zip(result["loop_cpu_seconds"], result["seconds"], strict=True)
                    if loop is not None
                ]
                or [float("nan")]
            )
        )
        for library, result in compare.items()
        if library.startswith("ours")
    }
    scale = {library: summarise_scale(runs, args) for library, runs in raw["scale"].items()}
    # what the latency alone would allow: ours runs num_threads examples at a time with all N attempts
    # concurrent; DSPy runs num_threads examples at a time with the N attempts one after another
    waves = -(-args.questions // args.num_threads)
    latency_bound = {"ours": waves * LATENCY_S, "dspy": waves * args.n * LATENCY_S}

    targets = [
        Target(
            f"{args.questions} x N={args.n} `batch(num_threads={args.num_threads})`: "
            f"{LIBRARIES[peer]} / {LIBRARIES[ours]}",
            f"{speedup[ours][peer]:.2f}x",
            f">= {MIN_SPEEDUP_VS_DSPY:g}x",
            speedup[ours][peer] >= MIN_SPEEDUP_VS_DSPY,
        )
        for ours, peer in (TARGET_PAIR,)
    ]
    targets.append(
        Target(
            f"{args.questions} x N={args.n}: every attempt reached the server (requests per library)",
            " / ".join(str(server[library]["requests"]) for library in LIBRARIES),
            str(expected_requests),
            all(server[library]["requests"] == expected_requests for library in LIBRARIES),
        )
    )
    for library, figures in scale.items():
        targets += [
            Target(
                f"{args.scale_questions:,} x N={args.scale_n}, {LIBRARIES[library]}: requests in flight at "
                f"the server, `max_concurrency={args.scale_max_concurrency}`",
                str(figures["max_in_flight"]),
                f"<= {args.scale_max_concurrency}",
                figures["max_in_flight"] <= args.scale_max_concurrency,
            ),
            Target(
                f"{args.scale_questions:,} x N={args.scale_n}, {LIBRARIES[library]}: every attempt reached "
                "the server (per run, warm-up included)",
                ", ".join(str(count) for count in figures["server_requests_per_run"]),
                str(figures["expected_requests_per_run"]),
                all(
                    count == figures["expected_requests_per_run"]
                    for count in figures["server_requests_per_run"]
                ),
            ),
        ]
    summary = {
        "compare": {
            "wall_s": {library: asdict(stat) for library, stat in wall.items()},
            "cpu_s": {library: asdict(stat) for library, stat in cpu.items()},
            "server": server,
            "executor": compare["ours"].get("executor"),
            "loop_busy": loop_busy,
            "speedup": speedup,
            "speedup_of_minima": speedup_min,
            "cpu_ours_vs_dspy": cpu_ratios,
            "latency_bound_s": latency_bound,
        },
        "scale": scale,
    }
    return summary, targets


# ---------------------------------------------------------------- reporting


def _s(stat: dict[str, Any], digits: int = 3) -> str:
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f})"


def markdown(
    summary: dict[str, Any], targets: list[Target], info: dict[str, Any], args: argparse.Namespace
) -> str:
    """The results as a markdown document (tables of numbers and ratios, the targets, the machine)."""
    compare, scale = summary["compare"], summary["scale"]
    wall, cpu, server = compare["wall_s"], compare["cpu_s"], compare["server"]
    bound = compare["latency_bound_s"]
    columns = list(LIBRARIES)
    attempts = args.questions * args.n

    def row(label: str, cells: dict[str, str]) -> str:
        return f"| {label} | " + " | ".join(cells.get(lib, "n/a") for lib in columns) + " |"

    compare_lines = [
        "| Measurement | " + " | ".join(LIBRARIES[lib] for lib in columns) + " |",
        "|---|" + "---:|" * len(columns),
        row(
            f"{args.questions} questions x N={args.n}, `batch(num_threads={args.num_threads})`, s",
            {lib: _s(wall[lib]) for lib in columns},
        ),
        row("client CPU per batch (all threads), s", {lib: _s(cpu[lib]) for lib in columns}),
        row(
            "client CPU per attempt, ms",
            {lib: f"{cpu[lib]['median'] * 1000 / attempts:.2f}" for lib in columns},
        ),
        row(
            "bestofn-core's event-loop thread: CPU / wall time",
            {lib: f"{busy['median']:.0%}" for lib, busy in compare["loop_busy"].items()},
        ),
        row(
            "latency-only bound (100 ms per request, no client CPU), s",
            {
                **{lib: f"{bound['ours']:.1f}" for lib in columns if lib.startswith("ours")},
                **dict.fromkeys(PEERS, f"{bound['dspy']:.1f}"),
            },
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
    scale_columns = list(scale)

    def scale_row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(scale[lib]) for lib in scale_columns) + " |"

    scale_lines = [
        "| Measurement | " + " | ".join(LIBRARIES[lib] for lib in scale_columns) + " |",
        "|---|" + "---:|" * len(scale_columns),
        scale_row("wall time, s", lambda f: _s(f["wall_s"], 2)),
        scale_row(
            f"LM requests/s ({args.scale_questions * args.scale_n:,} requests / wall time)",
            lambda f: _s(f["requests_per_s"], 0),
        ),
        scale_row("client CPU (all threads), s", lambda f: _s(f["cpu_s"], 2)),
        scale_row("client CPU per request, ms", lambda f: _s(f["cpu_ms_per_request"], 2)),
        scale_row("event-loop thread: CPU / wall time", lambda f: f"{f['loop_busy']['median']:.0%}"),
        scale_row(
            "peak RSS of the client (`ru_maxrss`, max over runs), MiB", lambda f: f"{f['peak_rss_mib']:.0f}"
        ),
        scale_row("RSS before the batch (after the warm-up), MiB", lambda f: _s(f["rss_before_mib"], 0)),
        scale_row("RSS after the batch (results held), MiB", lambda f: _s(f["rss_after_mib"], 0)),
        scale_row(
            "RSS after releasing the results (`gc.collect()`), MiB",
            lambda f: _s(f["rss_after_release_mib"], 0),
        ),
        scale_row("LM calls in the bounded call history at the end", lambda f: f"{f['history_entries']:,}"),
        scale_row("most requests in flight at the server", lambda f: str(f["max_in_flight"])),
    ]
    checked = (TARGET_PAIR,)
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
            "DSPy / bestofn-core, batch wall time (medians; the pair the target is checked for in bold):",
            "",
            *ratio_markdown(compare["speedup"], "DSPy / bestofn-core", bold=checked),
            "",
            "The same from the fastest batch of each (minima):",
            "",
            *ratio_markdown(compare["speedup_of_minima"], "DSPy / bestofn-core (minima)", bold=checked),
            "",
            "Client CPU per batch, bestofn-core / DSPy (below 1: bestofn-core spends less):",
            "",
            *ratio_markdown(compare["cpu_ours_vs_dspy"], "bestofn-core / DSPy"),
            "",
            f"## {args.scale_questions:,} questions x N={args.scale_n}, `max_concurrency="
            f"{args.scale_max_concurrency}`, `batch(num_threads={args.scale_num_threads})` "
            "(bestofn-core only)",
            "",
            f"{args.scale_runs} run(s) per backend, each in a fresh process after a "
            f"{args.scale_warmup_questions}-question warm-up batch.",
            "",
            *scale_lines,
            "",
            "## Targets",
            "",
            *targets_markdown(targets),
            "",
            *machine_markdown(info),
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
    parser.add_argument("--num-threads", type=int, default=8, help="compare: num_threads, every library (8)")
    parser.add_argument("--scale-questions", type=int, default=1000, help="scale: examples (1000)")
    parser.add_argument("--scale-n", type=int, default=8, help="scale: BestOfN N (8)")
    parser.add_argument("--scale-max-concurrency", type=int, default=64, help="scale: max_concurrency (64)")
    parser.add_argument("--scale-num-threads", type=int, default=64, help="scale: num_threads (64)")
    parser.add_argument("--scale-runs", type=int, default=2, help="scale: fresh processes per backend (2)")
    parser.add_argument("--scale-warmup-questions", type=int, default=64, help="scale: warm-up examples (64)")
    parser.add_argument(
        "--scale-libraries", default="ours,ours-openai-http", help="scale: backends (ours,ours-openai-http)"
    )
    args = parser.parse_args(argv)
    if any(library not in ("ours", "ours-openai-http") for library in args.scale_libraries.split(",")):
        parser.error("--scale-libraries: ours and/or ours-openai-http")

    info = machine()
    try:
        raw = measure(args)
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info["load_average_after"] = load_average()
    summary, targets = summarise(raw, args)
    config = {"latency_s": LATENCY_S, "model": MODEL, **vars(args)}
    write_results("batch", info, config, summary, targets, raw)
    return finish("batch", markdown(summary, targets, info, args), targets)


if __name__ == "__main__":
    sys.exit(main())
