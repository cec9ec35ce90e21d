"""Wall time of one BestOfN call against N, bestofn-core against DSPy 3.4.1, with a plot.

Run it with ``bash benchmarks/run_sweep.sh`` (which prepares ``benchmarks/.venv`` and calls this script
with that environment's Python). The program, server and latency are those of ``best_of_n.py``:
``BestOfN(ChainOfThought("question -> answer"), N, reward_fn=<always 0.0>, threshold=1.0)``, so every
attempt runs, against the bundled test server (``bench_server.py``, a separate process) answering every
request after 100 ms, caches off. For each library in a fresh process (``best_of_n_worker.py LIBRARY
sweep``), each N of ``--ns`` is timed ``--repeats`` times after ``--warmup`` untimed rounds, the N values
interleaved within a round; one plain ChainOfThought call (one request) is timed alongside as the
reference. bestofn-core also runs ``sampling="batched"`` (one request with ``n=N``).

It prints the tables, writes ``benchmarks/results/sweep.json`` and ``benchmarks/results/sweep.md``, and
draws ``docs/assets/benchmarks/wall_time_vs_n.png`` (matplotlib, Agg backend). The exit status is 0 when
every attempt reached the server, 1 when not (the results are written either way) and 2 when a
measurement could not be taken.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _common import (
    ASSETS,
    HERE,
    LIBRARIES,
    LIKE_FOR_LIKE,
    MODEL,
    PAIRS,
    SHORT,
    MeasurementError,
    Stat,
    Target,
    finish,
    load_average,
    machine,
    machine_markdown,
    run_worker,
    save_figure,
    speedups,
    targets_markdown,
    test_server,
    two_plots,
    write_results,
)

WORKER = HERE / "best_of_n_worker.py"
LATENCY_S = 0.1
PLOT = "wall_time_vs_n.png"

#: line styles of the plot, per series
STYLES: dict[str, dict[str, Any]] = {
    "ours": {"color": "tab:blue", "marker": "o"},
    "ours-openai-http": {"color": "tab:green", "marker": "s"},
    "ours/batched": {"color": "tab:blue", "marker": "o", "linestyle": ":", "markerfacecolor": "none"},
    "ours-openai-http/batched": {
        "color": "tab:green",
        "marker": "s",
        "linestyle": ":",
        "markerfacecolor": "none",
    },
    "dspy": {"color": "tab:red", "marker": "^"},
    "dspy-litellm": {"color": "tab:orange", "marker": "v"},
}


def measure(args: argparse.Namespace, libraries: Sequence[str]) -> dict[str, Any]:
    """Run the sweep worker of every library against one server; the raw results with the server's counts."""
    raw: dict[str, Any] = {}
    print(
        f"sweep: BestOfN N in {args.ns}, server latency {LATENCY_S * 1000:.0f} ms "
        f"({args.warmup} warm-up + {args.repeats} timed rounds per library):"
    )
    with test_server(LATENCY_S) as server:
        server.stats()
        for library in libraries:
            result = run_worker(
                WORKER,
                library,
                "sweep",
                "--url",
                server.url,
                "--ns",
                args.ns,
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
                timeout=900,
            )
            result["server"] = server.stats()
            raw[library] = result
            print(" done")
    return raw


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[Target]]:
    """Medians and minima per (library, N), ratios against DSPy per N, and the request-count checks."""
    ns = [int(value) for value in args.ns.split(",")]
    wall: dict[str, dict[str, Any]] = {}
    for library, result in raw.items():
        stats = {name: Stat.of(samples) for name, samples in result["seconds"].items()}
        wall[library] = {
            "single": asdict(stats["single"]),
            "best_of_n": {str(n): asdict(stats[f"best_of_n/{n}"]) for n in ns},
        }
        if f"batched/{ns[0]}" in stats:
            wall[library]["batched"] = {str(n): asdict(stats[f"batched/{n}"]) for n in ns}
    ratios = {
        str(n): speedups({library: stats["best_of_n"][str(n)]["median"] for library, stats in wall.items()})
        for n in ns
    }
    rounds = args.warmup + args.repeats
    targets = []
    for library, result in raw.items():
        # per round: the single request, N requests per BestOfN, one request per batched BestOfN
        per_round = 1 + sum(ns) + (len(ns) if "batched" in wall[library] else 0)
        received = result["server"]["requests"]
        targets.append(
            Target(
                f"every request reached the server: {LIBRARIES[library]}",
                str(received),
                str(rounds * per_round),
                received == rounds * per_round,
            )
        )
    return {"ns": ns, "wall_s": wall, "speedup_best_of_n": ratios}, targets


# ---------------------------------------------------------------- reporting


def _ms(stat: dict[str, float]) -> str:
    return f"{stat['median'] * 1000:.0f} ({stat['min'] * 1000:.0f})"


def markdown(
    summary: dict[str, Any], targets: list[Target], info: dict[str, Any], args: argparse.Namespace
) -> str:
    """The results as a markdown document: wall times per N, ratios per N, the checks, the machine."""
    ns, wall, ratios = summary["ns"], summary["wall_s"], summary["speedup_best_of_n"]
    libraries = list(wall)
    batched = [library for library in libraries if "batched" in wall[library]]
    columns = [LIBRARIES[library] for library in libraries]
    columns += [f'{LIBRARIES[library]}, sampling="batched"' for library in batched]
    wall_lines = [
        "| N | " + " | ".join(columns) + " |",
        "|---:|" + "---:|" * len(columns),
        "| single request | "
        + " | ".join([_ms(wall[library]["single"]) for library in libraries] + ["" for _ in batched])
        + " |",
    ]
    for n in ns:
        cells = [_ms(wall[library]["best_of_n"][str(n)]) for library in libraries]
        cells += [_ms(wall[library]["batched"][str(n)]) for library in batched]
        wall_lines.append(f"| {n} | " + " | ".join(cells) + " |")
    pairs = [(ours, peer) for ours, peer in PAIRS if ours in wall and peer in wall]
    ratio_lines = [
        "| N | "
        + " | ".join(
            f"{SHORT[peer]} / {SHORT[ours]}" + (" (like for like)" if (ours, peer) in LIKE_FOR_LIKE else "")
            for ours, peer in pairs
        )
        + " |",
        "|---:|" + "---:|" * len(pairs),
    ]
    for n in ns:
        ratio_lines.append(
            f"| {n} | " + " | ".join(f"{ratios[str(n)][ours][peer]:.2f}x" for ours, peer in pairs) + " |"
        )
    return "\n".join(
        [
            "# Wall time against N: BestOfN, bestofn-core against DSPy 3.4.1",
            "",
            f"Measured {info['date']} with `bash benchmarks/run_sweep.sh`.",
            f"One BestOfN call (ChainOfThought inside, a reward that never reaches the threshold, so all N "
            f"attempts run), server latency {LATENCY_S * 1000:.0f} ms, caches off; each library in its own "
            f"fresh process against the same test server (a separate process). Times in ms, median (min) "
            f"of {args.repeats} rounds after {args.warmup} warm-up round(s).",
            "",
            *wall_lines,
            "",
            "DSPy / bestofn-core, wall time of one BestOfN call (above 1: bestofn-core is faster):",
            "",
            *ratio_lines,
            "",
            f"Plot: `{PLOT}`.",
            "",
            *targets_markdown(targets),
            "",
            *machine_markdown(info),
            "",
        ]
    )


def plot(summary: dict[str, Any], info: dict[str, Any], path: Path) -> None:
    """Draw wall time against N to ``path``: every library on the left, bestofn-core alone on the right."""
    ns, wall = summary["ns"], summary["wall_s"]
    latency_ms = LATENCY_S * 1000
    figure, (left, right) = two_plots()
    for axes in (left, right):
        ours_only = axes is right
        for library, stats in wall.items():
            if ours_only and not library.startswith("ours"):
                continue
            series = [(library, LIBRARIES[library], stats["best_of_n"])]
            if "batched" in stats:
                series.append(
                    (f"{library}/batched", f'{LIBRARIES[library]}, sampling="batched"', stats["batched"])
                )
            for key, label, values in series:
                medians = [values[str(n)]["median"] * 1000 for n in ns]
                axes.plot(ns, medians, label=label, linewidth=1.8, markersize=6, **STYLES.get(key, {}))
        if not ours_only:
            axes.plot(
                ns,
                [n * latency_ms for n in ns],
                color="grey",
                linestyle="--",
                linewidth=1,
                label=f"N x {latency_ms:.0f} ms (attempts one after another)",
            )
        axes.axhline(
            latency_ms, color="grey", linestyle="-.", linewidth=1, label=f"{latency_ms:.0f} ms (one request)"
        )
        axes.set_xscale("log", base=2)
        axes.set_xticks(ns, [str(n) for n in ns])
        axes.set_ylim(bottom=0)
        axes.set_xlabel("N (attempts per BestOfN call)")
        axes.grid(True, which="major", alpha=0.3)
    left.set_ylabel("wall time of one BestOfN call, ms (median)")
    left.set_title(f"All libraries, server latency {latency_ms:.0f} ms", fontsize=11)
    right.set_title("bestofn-core only (zoomed)", fontsize=11)
    left.legend(fontsize=8, loc="upper left")
    versions = info["versions"]
    footer = (
        f"{info['date'][:10]}; {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}; "
        f"bestofn-core {versions.get('bestofn-core')}, dspy {versions.get('dspy')}, "
        f"litellm {versions.get('litellm')}; load average before the run {info['load_average'][0]:.2f}"
    )
    save_figure(figure, path, footer)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables, write the results and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ns", default="1,2,4,8,16", help="comma-separated N values (1,2,4,8,16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per library (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument(
        "--libraries", default=",".join(LIBRARIES), help=f"comma-separated, of {', '.join(LIBRARIES)}"
    )
    parser.add_argument(
        "--plot", type=Path, default=ASSETS / PLOT, help=f"the PNG to write ({ASSETS / PLOT})"
    )
    args = parser.parse_args(argv)
    libraries = args.libraries.split(",")
    unknown = [library for library in libraries if library not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries: {', '.join(unknown)}")

    info = machine()
    try:
        raw = measure(args, libraries)
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info["load_average_after"] = load_average()
    summary, targets = summarise(raw, args)
    config = {"latency_s": LATENCY_S, "model": MODEL, **{k: str(v) for k, v in vars(args).items()}}
    write_results("sweep", info, config, summary, targets, raw)
    plot(summary, info, args.plot)
    print(f"wrote {args.plot}")
    return finish("sweep", markdown(summary, targets, info, args), targets)


if __name__ == "__main__":
    sys.exit(main())
