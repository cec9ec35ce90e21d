"""Soak benchmark: 10,000 BestOfN(N=4) calls through ``abatch`` with ``max_concurrency=128``, memory watched.

Run it with ``bash benchmarks/run_soak.sh`` (which prepares ``benchmarks/.venv`` and calls this script
with that environment's Python). It starts the bundled test server (``bench_server.py``, a separate
process) answering every request after 20 ms, then for each bestofn-core backend (litellm, chosen with
``backend="litellm:litellm"``, and the lean first-party ``openai_http`` one, which serves ``openai/`` once
installed) runs ``soak_worker.py`` in a fresh process: a warm-up,
then ``--rounds`` rounds of ``--calls`` BestOfN calls, each round one ``await program.abatch(...)``, with
the in-memory response cache and the call history on (their default bounds). It reports per round:
requests/s, calls/s, client CPU per request, p50/p90/p99/max wall time per call, RSS after the round
(results released, ``gc.collect()``), peak RSS, and how full the bounded stores are; the server counts
the requests it received and the most it had in flight.

DSPy has no ``abatch``, so there is no DSPy peer here; the comparison point is the other backend, measured
in the same run: openai_http / litellm requests/s and litellm / openai_http latency.

Targets: every call succeeded and every request reached the server; never more than ``max_concurrency``
requests in flight; every history, the memory cache and the trace at or below its bound after every
round; and no growth after the first round: the RSS after the last round no more than
``--max-rss-growth`` (default 5%) above the RSS after the first, and the objects the garbage collector
tracks grown by fewer than one per 10 calls of a round (a leak keeps one or more per call). The first
round already fills every bound (10,000 calls, 40,000 LM calls, against bounds of 10,000 entries), so
what still grows after it is kept per call without a bound. ``--trace-off`` runs with
``configure(trace=None)``, to tell a growth of ``settings.trace`` (one entry per call) from others. The
exit status is 0 when every target is met, 1 when one is missed (the results are written either way) and
2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from _common import (
    HERE,
    LIBRARIES,
    MODEL,
    MeasurementError,
    Target,
    finish,
    load_average,
    machine,
    machine_markdown,
    run_worker,
    targets_markdown,
    test_server,
    write_results,
)

WORKER = HERE / "soak_worker.py"
LATENCY_S = 0.02
BACKENDS = ("ours", "ours-openai-http")
#: the stores whose size is bounded, and the bound (from the worker's ``bounds``) each is checked against
STORES = {
    "history_process": ("process-wide call history (`bon.inspect_history`)", "max_history_size"),
    "history_lm": ("the LM's history (`lm.history`)", "max_history_size"),
    "history_program": ("the outer module's history (`module.history`)", "max_history_size"),
    "history_best_of_n": ("the BestOfN module's history", "max_history_size"),
    "memory_cache": ("in-memory response cache entries", "memory_cache_entries"),
    "trace": ("`settings.trace` entries", "max_trace_size"),
}
#: a leak keeps at least one object per call; a few hundred objects of transient state (timers, pooled
#: connections, a library's own bounded caches) are not one: the check allows fewer than 1 per 10 calls
MAX_NEW_OBJECTS_PER_CALL = 0.1


def measure(args: argparse.Namespace, libraries: Sequence[str]) -> dict[str, Any]:
    """Run the soak worker of every backend against one server; the raw results with the server's counts."""
    raw: dict[str, Any] = {}
    print(
        f"soak: {args.rounds} round(s) x {args.calls:,} BestOfN(N={args.n}) calls through abatch("
        f"num_threads={args.num_threads}), max_concurrency={args.max_concurrency}, server latency "
        f"{LATENCY_S * 1000:.0f} ms, after {args.warmup_calls} warm-up calls:"
    )
    with test_server(LATENCY_S) as server:
        server.stats()
        for library in libraries:
            result = run_worker(
                WORKER,
                library,
                "soak",
                "--url",
                server.url,
                "--calls",
                str(args.calls),
                "--rounds",
                str(args.rounds),
                "--n",
                str(args.n),
                "--max-concurrency",
                str(args.max_concurrency),
                "--num-threads",
                str(args.num_threads),
                "--warmup-calls",
                str(args.warmup_calls),
                *(["--trace-off"] if args.trace_off else []),
                timeout=args.timeout,
                allow_failed_examples=True,
            )
            result["server"] = server.stats()
            raw[library] = result
            walls = ", ".join(f"{run['wall_s']:.1f} s" for run in result["rounds"])
            print(f" {walls}")
    return raw


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[Target]]:
    """Per-backend figures, the comparison between the backends, and the target checks."""
    summary: dict[str, Any] = {"backends": {}}
    targets: list[Target] = []
    expected_requests = (args.warmup_calls + args.rounds * args.calls) * args.n
    for library, result in raw.items():
        rounds = result["rounds"]
        first, last = rounds[0], rounds[-1]
        growth = last["rss_after_mib"] / first["rss_after_mib"] - 1
        name = LIBRARIES[library]
        summary["backends"][library] = {
            "rss_growth_first_to_last_round": growth,
            "peak_rss_mib": max(run["peak_rss_mib"] for run in rounds),
            "requests_per_s_last_round": last["requests_per_s"],
            "latency_ms_last_round": last["latency_ms"],
        }
        targets += [
            Target(
                f"{name}: calls that failed",
                str(result["failed_examples"]),
                "0",
                result["failed_examples"] == 0,
            ),
            Target(
                f"{name}: requests received by the server (warm-up included)",
                f"{result['server']['requests']:,}",
                f"{expected_requests:,}",
                result["server"]["requests"] == expected_requests,
            ),
            Target(
                f"{name}: most requests in flight at the server, `max_concurrency={args.max_concurrency}`",
                str(result["server"]["max_in_flight"]),
                f"<= {args.max_concurrency}",
                result["server"]["max_in_flight"] <= args.max_concurrency,
            ),
        ]
        for store, (label, bound_name) in STORES.items():
            bound = result["bounds"].get(bound_name)
            sizes = [run["bounded_state"][store] for run in rounds]
            if bound is None or None in sizes:
                continue  # a store this kernel does not bound, or one turned off (trace=None)
            targets.append(
                Target(
                    f"{name}: {label} after each round",
                    ", ".join(f"{size:,}" for size in sizes),
                    f"<= {bound:,}",
                    all(size is not None and size <= bound for size in sizes),
                )
            )
        # growth after the first round means a leak only once that round has filled every bound
        filled = all(
            first["bounded_state"][store] == result["bounds"].get(bound_name)
            for store, (_, bound_name) in STORES.items()
            if result["bounds"].get(bound_name) is not None and first["bounded_state"][store] is not None
        )
        summary["backends"][library]["rss_growth_checked"] = len(rounds) > 1 and filled
        if len(rounds) > 1 and filled:
            objects = last["gc_objects"] - first["gc_objects"]
            calls = (len(rounds) - 1) * args.calls
            summary["backends"][library]["gc_objects_growth_first_to_last_round"] = objects
            targets += [
                Target(
                    f"{name}: RSS after the last round / after the first (results released)",
                    f"{last['rss_after_mib']:.0f} / {first['rss_after_mib']:.0f} MiB ({growth:+.1%})",
                    f"<= {args.max_rss_growth:+.0%}",
                    growth <= args.max_rss_growth,
                ),
                Target(
                    f"{name}: objects tracked by the garbage collector, last round - first round",
                    f"{objects:+,} ({objects / calls:+.3f} per call)",
                    f"< {MAX_NEW_OBJECTS_PER_CALL * calls:,.0f} ({MAX_NEW_OBJECTS_PER_CALL:g} per call)",
                    objects < MAX_NEW_OBJECTS_PER_CALL * calls,
                ),
            ]
    if all(library in raw for library in BACKENDS):
        lean, default = raw["ours-openai-http"]["rounds"][-1], raw["ours"]["rounds"][-1]
        summary["openai_http_vs_litellm"] = {
            "requests_per_s": lean["requests_per_s"] / default["requests_per_s"],
            "p50_latency_litellm_over_openai_http": default["latency_ms"]["p50"] / lean["latency_ms"]["p50"],
            "p99_latency_litellm_over_openai_http": default["latency_ms"]["p99"] / lean["latency_ms"]["p99"],
            "cpu_per_request_litellm_over_openai_http": default["cpu_ms_per_request"]
            / lean["cpu_ms_per_request"],
            "peak_rss_litellm_over_openai_http": summary["backends"]["ours"]["peak_rss_mib"]
            / summary["backends"]["ours-openai-http"]["peak_rss_mib"],
        }
    return summary, targets


# ---------------------------------------------------------------- reporting


def markdown(
    raw: dict[str, Any],
    summary: dict[str, Any],
    targets: list[Target],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    """The results as a markdown document: one column per (backend, round), the comparison, the targets."""
    columns = [
        (library, index, run) for library, result in raw.items() for index, run in enumerate(result["rounds"])
    ]

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(raw[lib], run) for lib, _, run in columns) + " |"

    def first(text: Any) -> Any:
        """Only in each backend's first column (figures of the whole process, not of one round)."""
        return lambda result, run: text(result, run) if run is result["rounds"][0] else ""

    lines = [
        "| Measurement | "
        + " | ".join(f"{LIBRARIES[lib]}, round {index + 1}" for lib, index, _ in columns)
        + " |",
        "|---|" + "---:|" * len(columns),
        row("wall time of the round, s", lambda result, run: f"{run['wall_s']:.1f}"),
        row("BestOfN calls/s", lambda result, run: f"{run['calls_per_s']:.0f}"),
        row("LM requests/s", lambda result, run: f"{run['requests_per_s']:.0f}"),
        row(
            "client CPU per request (all threads), ms", lambda result, run: f"{run['cpu_ms_per_request']:.2f}"
        ),
        row("wall time per call p50, ms", lambda result, run: f"{run['latency_ms']['p50']:.0f}"),
        row("wall time per call p90, ms", lambda result, run: f"{run['latency_ms']['p90']:.0f}"),
        row("wall time per call p99, ms", lambda result, run: f"{run['latency_ms']['p99']:.0f}"),
        row("wall time per call max, ms", lambda result, run: f"{run['latency_ms']['max']:.0f}"),
        row(
            "RSS after importing and configuring, MiB",
            first(lambda result, run: f"{result['rss_imported_mib']:.0f}"),
        ),
        row(
            f"RSS after the {args.warmup_calls}-call warm-up, MiB",
            first(lambda result, run: f"{result['rss_before_mib']:.0f}"),
        ),
        row(
            "RSS after the round (results released, `gc.collect()`), MiB",
            lambda r, run: f"{run['rss_after_mib']:.0f}",
        ),
        row("peak RSS so far (`ru_maxrss`), MiB", lambda result, run: f"{run['peak_rss_mib']:.0f}"),
        row(
            "entries: process history / LM history / outer module's history / BestOfN's history / "
            "memory cache",
            lambda result, run: " / ".join(
                f"{run['bounded_state'][store]:,}" for store in STORES if store != "trace"
            ),
        ),
        row(
            "`settings.trace` entries",
            lambda result, run: (
                "off" if run["bounded_state"]["trace"] is None else f"{run['bounded_state']['trace']:,}"
            ),
        ),
        row(
            "objects tracked by the garbage collector after the round",
            lambda r, run: f"{run['gc_objects']:,}",
        ),
        row(
            "server: requests received (whole run) / most in flight",
            first(
                lambda result, run: f"{result['server']['requests']:,} / {result['server']['max_in_flight']}"
            ),
        ),
    ]
    comparison: list[str] = []
    ratios = summary.get("openai_http_vs_litellm")
    if ratios:
        comparison = [
            "openai_http backend against the litellm backend (last rounds):",
            "",
            "| Ratio | Value |",
            "|---|---:|",
            f"| LM requests/s, openai_http / litellm | {ratios['requests_per_s']:.2f}x |",
            f"| p50 wall time per call, litellm / openai_http | "
            f"{ratios['p50_latency_litellm_over_openai_http']:.2f}x |",
            f"| p99 wall time per call, litellm / openai_http | "
            f"{ratios['p99_latency_litellm_over_openai_http']:.2f}x |",
            f"| client CPU per request, litellm / openai_http | "
            f"{ratios['cpu_per_request_litellm_over_openai_http']:.2f}x |",
            f"| peak RSS, litellm / openai_http | {ratios['peak_rss_litellm_over_openai_http']:.2f}x |",
            "",
        ]
    return "\n".join(
        [
            "# Soak benchmark results",
            "",
            f"Measured {info['date']} with `bash benchmarks/run_soak.sh`.",
            f"{args.rounds} round(s) of {args.calls:,} `BestOfN(ChainOfThought, N={args.n})` calls, "
            f"each round one `await program.abatch(examples, num_threads={args.num_threads})` with "
            f"`configure(max_concurrency={args.max_concurrency})`, after {args.warmup_calls} warm-up calls, "
            f"in one event loop of one fresh process per backend; server latency {LATENCY_S * 1000:.0f} ms "
            "(a separate process). In-memory response cache on (disk cache off), call history on, both at "
            "their default bounds; every question distinct, so no call is answered from the cache. "
            + (
                "`configure(trace=None)`: no trace recorded." if args.trace_off else "Trace on (the default)."
            ),
            "",
            *lines,
            "",
            *comparison,
            *[
                f"Types whose count grew most from the first round to the last, {LIBRARIES[library]}: "
                + (
                    ", ".join(f"`{name}` {count:+,}" for name, count in result["gc_growth_by_type"].items())
                    or "none"
                )
                + "."
                for library, result in raw.items()
                if len(result["rounds"]) > 1
            ],
            "",
            *targets_markdown(targets),
            *[
                f"\nGrowth not checked for {LIBRARIES[library]}: it needs two rounds or more, the first "
                "filling every bound (10,000 calls with the default bounds)."
                for library, figures in summary["backends"].items()
                if not figures["rss_growth_checked"]
            ],
            "",
            *machine_markdown(info),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables, write the results; the exit status says whether targets were met."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000, help="BestOfN calls per round (10000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per backend, one process (2)")
    parser.add_argument("--n", type=int, default=4, help="BestOfN N (4)")
    parser.add_argument("--max-concurrency", type=int, default=128, help="configure(max_concurrency=) (128)")
    parser.add_argument("--num-threads", type=int, default=128, help="abatch(num_threads=) (128)")
    parser.add_argument("--warmup-calls", type=int, default=256, help="untimed calls first (256)")
    parser.add_argument(
        "--libraries", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}"
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.05,
        help="largest allowed RSS growth from the first round to the last, as a fraction (0.05)",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one backend may take (1800)")
    parser.add_argument("--trace-off", action="store_true", help="configure(trace=None) in the workers")
    args = parser.parse_args(argv)
    libraries = args.libraries.split(",")
    if any(library not in BACKENDS for library in libraries):
        parser.error(f"--libraries: of {', '.join(BACKENDS)}")

    info = machine()
    try:
        raw = measure(args, libraries)
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info["load_average_after"] = load_average()
    summary, targets = summarise(raw, args)
    config = {"latency_s": LATENCY_S, "model": MODEL, **vars(args)}
    write_results("soak", info, config, summary, targets, raw)
    return finish("soak", markdown(raw, summary, targets, info, args), targets)


if __name__ == "__main__":
    sys.exit(main())
