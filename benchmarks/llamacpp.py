"""The embedded model: BestOfN wall time against N with the batched llama.cpp engine, with a plot.

Run it with ``bash benchmarks/run_llamacpp.sh`` (which prepares ``benchmarks/.venv`` with this checkout's
bestofn-llamacpp and the model, and calls this script with that environment's Python). Every side runs
in a fresh process of its own (``llamacpp_worker.py``, which describes the program, the model, the
prompt and the sampler settings); nothing else is shared but the machine:

- ``ours-llamacpp``: this checkout's backend, BestOfN at each N of ``--ns``, per-rollout and batched,
  with the prompt cache emptied before the call (``cold``: one prompt evaluation per call) and kept
  from it (``warm``: the same call again, its prompt found in the cache);
- ``high-level``: the same samples through llama-cpp-python's ``Llama`` one after another, as most
  wrappers draw them (cold: ``reset()`` first; warm: ``Llama`` reuses the prompt it evaluated last;
  fresh: ``reset()`` before every sample, so each evaluates the whole prompt, as the release did);
- ``release``: the backend of the current release (the plugin package of commit ``--release-commit``,
  extracted with ``git archive``), at N = 1 and 8 only (it evaluates the prompt for every choice).

Then a batch of 16 questions x N=4 (``program.batch``), ours against the release, the prompt cache
emptied before each batch. The issue's three targets are printed as ratios with PASS/FAIL: N=8 at most
2.5 times N=1 (cold, per-rollout); N=8 at least 2 times faster than the high-level baseline (cold,
per-rollout; and, a fourth line, against the baseline that evaluates the prompt for every sample); the
batch at least 3 times faster than the release.

``--adapter preferred`` (the default) runs the program with the adapter the backend prefers
(CompactAdapter: what ``bestofn run`` and ``configure(lm=...)`` use for this model); ``--adapter json``
with ``JSONAdapter``, whose output schema becomes a grammar on both sides. ``--name`` names the results.

It writes ``benchmarks/results/<name>.{json,md}`` and the plot
``docs/assets/benchmarks/<name>_wall_time_vs_n.png`` (name: ``llamacpp`` unless ``--name`` says
otherwise). Exit status 0 when every target was met, 1 when one was missed (the results are written
either way), 2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _common import (
    ASSETS,
    HERE,
    ROOT,
    MeasurementError,
    Stat,
    Target,
    finish,
    load_average,
    machine,
    machine_markdown,
    run_worker,
    sampler_params,
    save_figure,
    targets_markdown,
    two_plots,
    write_results,
)

WORKER = HERE / "llamacpp_worker.py"
#: the current release's backend: main when the batched engine was written
RELEASE_COMMIT = "403fb054d494ab65a0d89bc1a5851791b1b169d6"
PACKAGE = "plugins/bestofn-llamacpp/bestofn_llamacpp"
RELEASE_NS = "1,8"
#: --adapter -> how the report names it
ADAPTERS = {
    "preferred": "the backend's preferred adapter (`CompactAdapter`, a plain-text prompt, no grammar)",
    "json": "`JSONAdapter` (the output schema becomes a grammar)",
}

#: (side, sampling) -> column title and plot style
SERIES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("ours-llamacpp", "per_rollout"): ("ours, per-rollout", {"color": "tab:blue", "marker": "o"}),
    ("ours-llamacpp", "batched"): (
        'ours, sampling="batched"',
        {"color": "tab:blue", "marker": "o", "linestyle": ":", "markerfacecolor": "none"},
    ),
    ("high-level", "one_after_another"): (
        "llama-cpp-python Llama, one after another",
        {"color": "tab:red", "marker": "^"},
    ),
    ("high-level", "one_after_another_fresh"): (
        "llama-cpp-python Llama, one after another, prompt evaluated for every sample",
        {"color": "tab:red", "marker": "v", "linestyle": "--", "markerfacecolor": "none"},
    ),
    ("release", "per_rollout"): ("release, per-rollout", {"color": "tab:grey", "marker": "s"}),
    ("release", "batched"): (
        'release, sampling="batched"',
        {"color": "tab:grey", "marker": "s", "linestyle": ":", "markerfacecolor": "none"},
    ),
}


def extract_release(commit: str, into: Path) -> Path:
    """Extract the release's plugin package (``bestofn_llamacpp``) into ``into``; return ``into``."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, PACKAGE], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise MeasurementError(f"git archive {commit} {PACKAGE} failed: {exc}") from exc
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            member.name = member.name[len("plugins/bestofn-llamacpp/") :]
        tar.extractall(into, filter="data")
    return into


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every worker; the raw results per (side, measurement)."""
    raw: dict[str, Any] = {}
    program = ["--adapter", args.adapter, *(["--sampler", args.sampler] if args.sampler else [])]
    rounds = ["--repeats", str(args.repeats), "--warmup", str(args.warmup), *program]
    batch = ["--repeats", str(args.batch_repeats), "--warmup", "0", *program]
    with tempfile.TemporaryDirectory(prefix="bench-llamacpp-") as scratch:
        release = str(extract_release(args.release_commit, Path(scratch) / "release"))
        prompt_file = Path(scratch) / "prompt.json"
        print(f"llamacpp: BestOfN N in {args.ns}; a batch of 16 x N=4; release {args.release_commit[:10]}")
        steps: list[tuple[str, str, list[str], float]] = [
            ("ours-llamacpp", "prompt", program, 300),
            ("ours-llamacpp", "sweep", ["--ns", args.ns, *rounds], 3600),
            ("ours-llamacpp", "steps", ["--prompt-file", str(prompt_file), *rounds], 600),
            ("high-level", "sweep", ["--ns", args.ns, "--prompt-file", str(prompt_file), *rounds], 3600),
            ("release", "sweep", ["--ns", RELEASE_NS, "--release-dir", release, *rounds], 3600),
            ("ours-llamacpp", "batch", batch, 3600),
            ("release", "batch", [*batch, "--release-dir", release], 3600),
        ]
        for side, measurement, options, timeout in steps:
            result = run_worker(WORKER, side, measurement, *options, timeout=timeout)
            if measurement == "prompt":
                prompt = {"messages": result["messages"], "response_format": result["response_format"]}
                prompt_file.write_text(json.dumps(prompt))
            raw[f"{side}/{measurement}"] = result
            print(" done")
    return raw


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], list[Target]]:
    """Medians per (side, mode, sampling, N), tokens per second, batch times and the three targets."""
    sweep: dict[str, Any] = {}
    for side in ("ours-llamacpp", "high-level", "release"):
        result = raw[f"{side}/sweep"]
        for key, samples in result["seconds"].items():
            tokens = result["completion_tokens"][key]
            rates = [count / seconds for count, seconds in zip(tokens, samples, strict=True)]
            sweep[f"{side}/{key}"] = {
                "wall_s": asdict(Stat.of(samples)),
                "cpu_s": asdict(Stat.of(result["cpu_seconds"][key])),
                "completion_tokens": statistics.median(tokens),
                "tokens_per_s": statistics.median(rates),
            }
    batch = {side: asdict(Stat.of(raw[f"{side}/batch"]["seconds"])) for side in ("ours-llamacpp", "release")}

    def wall(key: str) -> float:
        value: float = sweep[key]["wall_s"]["median"]
        return value

    n1, n8 = wall("ours-llamacpp/cold/per_rollout/1"), wall("ours-llamacpp/cold/per_rollout/8")
    high_level = wall("high-level/cold/one_after_another/8")
    high_level_fresh = wall("high-level/cold/one_after_another_fresh/8")
    release_batch, ours_batch = batch["release"]["median"], batch["ours-llamacpp"]["median"]
    targets = [
        Target("N=8 / N=1, ours (cold prompt, per-rollout)", f"{n8 / n1:.2f}x", "<= 2.5x", n8 / n1 <= 2.5),
        Target(
            "high-level one after another / ours, N=8 (cold prompt, per-rollout)",
            f"{high_level / n8:.2f}x",
            ">= 2x",
            high_level / n8 >= 2,
        ),
        Target(
            "high-level, prompt evaluated for every sample / ours, N=8 (cold prompt, per-rollout)",
            f"{high_level_fresh / n8:.2f}x",
            ">= 2x",
            high_level_fresh / n8 >= 2,
        ),
        Target(
            "release / ours, batch of 16 questions x N=4",
            f"{release_batch / ours_batch:.2f}x",
            ">= 3x",
            release_batch / ours_batch >= 3,
        ),
    ]
    failed = raw["ours-llamacpp/batch"]["failed_examples"] + raw["release/batch"]["failed_examples"]
    targets.append(Target("every batch example answered", str(failed) + " failed", "0 failed", failed == 0))
    ns = [int(value) for value in args.ns.split(",")]
    steps = {
        int(count): statistics.median(values)
        for count, values in raw["ours-llamacpp/steps"]["milliseconds"].items()
    }
    return {"ns": ns, "sweep": sweep, "batch_wall_s": batch, "step_ms": steps}, targets


# ---------------------------------------------------------------- reporting


def _cell(sweep: dict[str, Any], key: str) -> str:
    entry = sweep.get(key)
    if entry is None:
        return ""
    return (
        f"{entry['wall_s']['median']:.2f} s, CPU {entry['cpu_s']['median']:.2f} s, "
        f"{entry['tokens_per_s']:.0f} tok/s"
    )


def _sampler(override: str | None) -> str:
    """The sampler settings every side used, as the report names them."""
    from bestofn_llamacpp import SAMPLING_DEFAULTS

    settings = {**SAMPLING_DEFAULTS, **sampler_params(override)}
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def markdown(
    summary: dict[str, Any], targets: list[Target], info: dict[str, Any], args: argparse.Namespace
) -> str:
    """The results as a markdown document."""
    ns, sweep, batch = summary["ns"], summary["sweep"], summary["batch_wall_s"]
    lines: list[str] = []
    for mode, title in (
        ("cold", "Cold prompt (evaluated once per call)"),
        ("warm", "Warm prompt (kept in the cache)"),
    ):
        series = [
            (side, sampling)
            for side, sampling in SERIES
            if any(f"{side}/{mode}/{sampling}/{n}" in sweep for n in ns)
        ]
        lines += [
            f"### {title}",
            "",
            "| N | " + " | ".join(SERIES[entry][0] for entry in series) + " |",
            "|---:|" + "---:|" * len(series),
        ]
        for n in ns:
            cells = [_cell(sweep, f"{side}/{mode}/{sampling}/{n}") for side, sampling in series]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    release_batch, ours_batch = batch["release"], batch["ours-llamacpp"]
    steps = summary["step_ms"]
    most = max(steps)
    lines += [
        "### One decode step against the sequences in it",
        "",
        "| sequences | " + " | ".join(str(count) for count in steps) + " |",
        "|---|" + "---:|" * len(steps),
        "| ms per step (median) | " + " | ".join(f"{value:.1f}" for value in steps.values()) + " |",
        "",
        f"{most} steps of one sequence take {most * steps[1] / steps[most]:.2f} times one step of {most}: "
        "the most that decoding sequences together can save over drawing the same tokens one sequence at a "
        "time, on this machine, with the backend's threads.",
        "",
    ]
    return "\n".join(
        [
            "# The embedded model: BestOfN against N, batched llama.cpp engine",
            "",
            f"Measured {info['date']} with `bash benchmarks/run_llamacpp.sh`.",
            'SmolLM2-135M-Instruct (Q4_1) in process, `BestOfN(Predict("question -> answer"), N)` with '
            f"{ADAPTERS[args.adapter]} and a reward that never reaches the "
            f'threshold, so all N attempts run; question "What is the capital of Belgium?"; '
            f"sampler {_sampler(args.sampler)}{' (--sampler ' + args.sampler + ')' if args.sampler else ''}, "
            "`max_tokens=48`, the backend's default threads; "
            f"response cache off; warm model. Wall time and CPU time (every thread of the process) of one "
            f"call, median of {args.repeats} rounds after {args.warmup} warm-up round(s), with completion "
            "tokens per second of wall time; on a busy machine CPU time is the steadier figure. The "
            "high-level baseline "
            "draws the same samples (same messages, grammar if any, sampler and seeds) with "
            "`Llama.create_chat_completion`, one after another, keeping the prompt between samples, or "
            "(prompt evaluated for every sample) `reset()` before each. The release is the backend at commit "
            f"`{args.release_commit[:10]}`, which evaluates the prompt for every choice.",
            "",
            *lines,
            f"Batch of 16 questions x N=4 (`program.batch(num_threads=16)`, the prompt cache emptied first), "
            f"median (min) of {args.batch_repeats}: ours {ours_batch['median']:.1f} s "
            f"({ours_batch['min']:.1f}), release {release_batch['median']:.1f} s "
            f"({release_batch['min']:.1f}).",
            "",
            f"Plot: `{args.plot.name}`.",
            "",
            *targets_markdown(targets),
            "",
            *machine_markdown(info),
            "",
        ]
    )


def plot(summary: dict[str, Any], info: dict[str, Any], path: Path) -> None:
    """Wall time against N: cold prompt on the left, warm on the right."""
    ns, sweep = summary["ns"], summary["sweep"]
    figure, axes_pair = two_plots()
    for axes, mode, title in zip(
        axes_pair,
        ("cold", "warm"),
        ("prompt evaluated once per call", "prompt kept in the cache"),
        strict=True,
    ):
        for (side, sampling), (label, style) in SERIES.items():
            points = [
                (n, sweep[key]["wall_s"]["median"])
                for n in ns
                if (key := f"{side}/{mode}/{sampling}/{n}") in sweep
            ]
            if points:
                axes.plot(*zip(*points, strict=True), label=label, linewidth=1.8, markersize=6, **style)
        axes.set_xscale("log", base=2)
        axes.set_xticks(ns, [str(n) for n in ns])
        axes.set_ylim(bottom=0)
        axes.set_xlabel("N (attempts per BestOfN call)")
        axes.set_title(f"SmolLM2-135M, {title}", fontsize=11)
        axes.grid(True, which="major", alpha=0.3)
        axes.legend(fontsize=8, loc="upper left")
    axes_pair[0].set_ylabel("wall time of one BestOfN call, s (median)")
    versions = info["versions"]
    footer = (
        f"{info['date'][:10]}; {info['nproc']} CPUs ({info['cpu_model']}), Python {info['python']}; "
        f"bestofn-core {versions.get('bestofn-core')}, llama-cpp-python {versions.get('llama_cpp_python')}; "
        f"load average before the run {info['load_average'][0]:.2f}"
    )
    save_figure(figure, path, footer)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the tables, write the results and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ns", default="1,2,4,8,16", help="comma-separated N values (1,2,4,8,16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed sweep rounds per side (3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed sweep rounds first (1)")
    parser.add_argument("--batch-repeats", type=int, default=2, help="timed batches per side (2)")
    parser.add_argument("--release-commit", default=RELEASE_COMMIT, help="the release to compare with")
    parser.add_argument(
        "--plot", type=Path, help="the PNG to write (docs/assets/benchmarks/<name>_wall_time_vs_n.png)"
    )
    parser.add_argument("--adapter", choices=tuple(ADAPTERS), default="preferred", help="the adapter")
    parser.add_argument("--name", default="llamacpp", help="results file name (llamacpp)")
    parser.add_argument("--sampler", help="sampling params over the backend's defaults, e.g. min_p=0.0")
    args = parser.parse_args(argv)
    if args.plot is None:
        args.plot = ASSETS / f"{args.name}_wall_time_vs_n.png"
    if not {1, 8} <= {int(value) for value in args.ns.split(",")}:
        parser.error("--ns must include 1 and 8 (the targets compare them)")

    info = machine()
    try:
        raw = measure(args)
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info["load_average_after"] = load_average()
    summary, targets = summarise(raw, args)
    config = {key: str(value) for key, value in vars(args).items()}
    write_results(args.name, info, config, summary, targets, raw)
    plot(summary, info, args.plot)
    print(f"wrote {args.plot}")
    report = markdown(summary, targets, info, args)
    for target in targets:
        print(f"{'PASS' if target.met else 'FAIL'}: {target.name}: {target.value} (required {target.target})")
    return finish(args.name, report, targets)


if __name__ == "__main__":
    sys.exit(main())
