"""Which truncation keeps the embedded model coherent at temperature 1.0? The sweep that chose the default.

BestOfN samples at temperature 1.0; from the whole distribution a 135M model mostly produces noise, so the
llama.cpp backend truncates it by default (``SAMPLING_DEFAULTS``). This sweep measured the choices on the
embedded model, SmolLM2-135M-Instruct (``local/smollm2``, Q4_1), through bestofn-core exactly as the
quality benchmark drives it: ``Predict("question -> answer")`` with the backend's preferred adapter
(CompactAdapter), ``BestOfN(N=8)`` with rollout ids 0..7, at most 48 tokens per answer.

Questions: held out from the quality benchmark's (``--skip`` items of each family's fixed shuffle are
skipped: the benchmark uses the first 50), ``--per-family`` of each (default 40: 80 in all).

For every sampler setting (``SETTINGS``, each over the backend's defaults; temperature stays 1.0): one
sample (the first), majority of 8 (the quality benchmark's per-family vote; and, to show what the
final-number vote on arithmetic is worth, every family voting on the normalised text), any of 8, plus greedy
(temperature 0) as the bar a vote must clear.

    bash benchmarks/run_quality.sh --help    # once: prepares benchmarks/.venv with the model
    benchmarks/.venv/bin/python benchmarks/quality_sampler.py [--per-family 40] [--settings a,b] [--resume]

About 4 minutes per setting on 2 CPUs.

Writes ``results/quality_sampler.{json,md}`` (raw samples in ``results/quality_sampler.partial.jsonl``,
one line per question and setting, so a stopped run resumes with ``--resume``). Nothing is a target:
the table is what the default was chosen by.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from _common import RESULTS, finish, machine, machine_markdown, write_results
from quality import FAMILIES, MODEL, majority, right
from quality_data import Item, arithmetic, capitals, quiz_dir

#: name -> sampling params over the backend's defaults (temperature 1.0 throughout)
SETTINGS: dict[str, dict[str, float]] = {
    "min_p=0.1": {"min_p": 0.1},
    "min_p=0.2": {"min_p": 0.2},
    "min_p=0.3": {"min_p": 0.3},
    "min_p=0.5": {"min_p": 0.5},
    "top_k=10": {"min_p": 0.0, "top_k": 10},
    "top_p=0.8": {"min_p": 0.0, "top_p": 0.8},
    "plain": {"min_p": 0.0},
}
GREEDY = "greedy"
N = 8


def held_out(per_family: int, skip: int, seed: int = 12) -> list[Item]:
    """``per_family`` items of each family after the first ``skip`` of its fixed shuffle, interleaved."""
    directory = quiz_dir()
    chosen = []
    for family in (capitals(directory), arithmetic(directory)):
        shuffled = list(family)
        random.Random(seed).shuffle(shuffled)
        chosen.append(shuffled[skip : skip + per_family])
    return [item for pair in zip(*chosen, strict=False) for item in pair]


def samples_of(name: str, item: Item, program: Any, max_tokens: int) -> list[str | None]:
    """The answers of one setting to one question: 8 samples, or greedy's one (``None``: failed)."""
    import bestofn_core as bon

    if name == GREEDY:
        lm = bon.LM(MODEL, cache=False, max_tokens=max_tokens, temperature=0.0)
        with bon.context(lm=lm):
            return [str(program(question=item.question).answer)]
    lm = bon.LM(MODEL, cache=False, max_tokens=max_tokens, **SETTINGS[name])
    best = bon.BestOfN(program, N=N, policy="voting:majority")
    with bon.context(lm=lm):
        try:
            candidates = best(question=item.question).candidates
        except bon.errors.BestOfNError as exc:  # every attempt failed
            candidates = exc.attempts
    return [str(c.prediction.answer) if c.ok and c.prediction is not None else None for c in candidates]


def summarise(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Accuracy (%) per setting: one sample, majority of 8, any of 8 (greedy: its one answer)."""
    result: dict[str, dict[str, float]] = {}
    for name in names:
        mine = [row for row in rows if row["setting"] == name]
        if not mine:
            continue
        items = [Item(row["family"], row["question"], tuple(row["answers"])) for row in mine]

        def share(hits: list[bool], count: int = len(mine)) -> float:
            return 100.0 * sum(hits) / count

        pairs = list(zip(mine, items, strict=True))
        entry = {
            "questions": float(len(mine)),
            "one": share([right(row["samples"][0], item) for row, item in pairs]),
            "failed": share([s is None for row, _ in pairs for s in row["samples"]], N * len(mine)),
        }
        if name != GREEDY:
            entry["majority"] = share([right(majority(row["samples"], item), item) for row, item in pairs])
            entry["majority_text"] = share(
                [right(majority(row["samples"], item, "voting:majority"), item) for row, item in pairs]
            )
            entry["any"] = share([any(right(s, item) for s in row["samples"]) for row, item in pairs])
            for family in FAMILIES:
                picked = [(row, item) for row, item in pairs if item.family == family]
                entry[f"majority_{family}"] = share(
                    [right(majority(row["samples"], item), item) for row, item in picked], len(picked) or 1
                )
        result[name] = entry
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Sample every setting (or resume), then write and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-family", type=int, default=40, help="questions per family (40)")
    parser.add_argument("--skip", type=int, default=50, help="items of each family held back (50)")
    parser.add_argument("--max-tokens", type=int, default=48, help="most tokens per answer (48)")
    parser.add_argument("--settings", help=f"comma-separated subset of {', '.join(SETTINGS)}")
    parser.add_argument("--resume", action="store_true", help="keep what the partial file already holds")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the partial file")
    args = parser.parse_args(argv)
    names = [*(args.settings.split(",") if args.settings else SETTINGS), GREEDY]
    unknown = [name for name in names if name not in SETTINGS and name != GREEDY]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")

    import bestofn_core as bon

    items = held_out(args.per_family, args.skip)
    partial = RESULTS / "quality_sampler.partial.jsonl"
    rows = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    if not (args.resume or args.report_only):
        rows = []
        RESULTS.mkdir(parents=True, exist_ok=True)
        partial.write_text("")
    done = {(row["setting"], row["question"]) for row in rows}
    info = machine()
    program = bon.Predict("question -> answer")
    for name in [] if args.report_only else names:
        started = time.perf_counter()
        for item in items:
            if (name, item.question) in done:
                continue
            row = {
                "setting": name,
                "family": item.family,
                "question": item.question,
                "answers": list(item.answers),
                "samples": samples_of(name, item, program, args.max_tokens),
            }
            rows.append(row)
            with partial.open("a") as file:
                file.write(json.dumps(row) + "\n")
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    table = summarise(rows, [*SETTINGS, GREEDY])
    lines = [
        "# The sampler for the embedded model: accuracy at temperature 1.0 by truncation",
        "",
        f'Model: {MODEL} (SmolLM2-135M-Instruct, Q4_1). `Predict("question -> answer")` with the backend\'s '
        f"preferred adapter, `BestOfN(N={N})`, rollout ids 0..{N - 1}, at most {args.max_tokens} tokens; "
        "temperature 1.0 with each setting over the backend's other defaults (no penalty), greedy at "
        f"temperature 0. {args.per_family} held-out questions per family (after the {args.skip} the quality "
        "benchmark uses), the quality benchmark's grader and per-family vote.",
        "",
        *machine_markdown(info),
        "",
        "| setting | questions | one sample | majority of 8 | majority: capitals / arithmetic "
        "| majority of 8, voting on the text | any of 8 | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in table.items():
        if name == GREEDY:
            cells = [f"{entry['one']:.1f} (greedy)", "", "", "", ""]
        else:
            split = f"{entry['majority_capitals']:.1f} / {entry['majority_arithmetic']:.1f}"
            cells = [
                f"{entry['one']:.1f}",
                f"{entry['majority']:.1f}",
                split,
                f"{entry['majority_text']:.1f}",
                f"{entry['any']:.1f}",
            ]
        failed = f"{entry['failed']:.1f} %" if name != GREEDY else ""
        lines.append(f"| {name} | {entry['questions']:.0f} | " + " | ".join(cells) + f" | {failed} |")
    config = {"per_family": args.per_family, "skip": args.skip, "max_tokens": args.max_tokens, "n": N}
    write_results("quality_sampler", info, config, table, [], rows)
    return finish("quality_sampler", "\n".join(lines) + "\n", [])


if __name__ == "__main__":
    sys.exit(main())
