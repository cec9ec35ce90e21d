"""Does the batched llama.cpp engine sample what the release's backend sampled? One command::

    benchmarks/.venv/bin/python benchmarks/llamacpp_samples.py [--questions 20] [--samples 8]

Runs the same requests through this checkout's bestofn-llamacpp and through the release's (the plugin
package of ``--release-commit``, extracted with ``git archive`` and put first on ``sys.path``), each in
a fresh process, on the embedded SmolLM2-135M-Instruct (Q4_1), and compares:

- ``greedy``: temperature 0, 20 capital-city questions, free text and with the JSON grammar that
  ``JSONAdapter`` sends for ``question -> answer``: the texts must be identical (greedy decoding with a
  grammar picks the most likely allowed token in both engines);
- ``sampled``: temperature 1.0, no truncation, rollouts 0..7 as one ``n=8`` request, free text: the
  texts must be identical too (same sampler chain, same seeds, bit-identical logits);
- ``accuracy``: ``Predict("question -> answer")`` with ``JSONAdapter`` (the grammar) at temperature 1.0,
  8 rollouts per question: how many answers name the capital. The engines draw grammar-constrained
  tokens differently (the batched one checks the drawn token first), so texts differ, but the accuracy
  must agree within noise;
- ``grammar paths`` (this checkout only): 480 JSON answers to "What is the capital of France?" drawn the
  batched engine's way (the grammar checks the drawn token) and 480 drawn mask-first (``top_k`` set to
  the vocabulary size: no truncation, but the grammar then masks before drawing), against a second 480
  of the first way as the noise level: the distributions of the answers' first word must be as close
  as two draws of one method are.

Prompt: "What is the capital of <country>? Answer with the city name only." for the free-text checks;
the adapter's prompt for the accuracy. ``max_tokens=24`` (48 for the adapter's answers; an answer cut
off inside its JSON counts as wrong), one thread, response cache off. Prints a table and exits 1 when
texts that must match differ.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HERE = Path(__file__).resolve().parent
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Ireland": "Dublin", "Hungary": "Budapest", "Egypt": "Cairo", "Japan": "Tokyo",
    "Canada": "Ottawa", "Russia": "Moscow", "China": "Beijing", "Kenya": "Nairobi", "Peru": "Lima",
}  # fmt: skip
MAX_TOKENS = 24
#: the adapter's answers are a JSON object: room for it to close
ADAPTER_MAX_TOKENS = 48
#: JSON answers drawn per grammar path
PATH_SAMPLES = 480


def sample(side: str, release_dir: str | None, questions: int, samples: int) -> dict[str, Any]:
    """Every text one side produces (run in a fresh process per side)."""
    if side == "release":
        assert release_dir is not None
        sys.path.insert(0, release_dir)
    import bestofn_core as bon
    from bestofn_core.errors import AdapterParseError

    countries = list(CAPITALS)[:questions]
    lm = bon.LM("local/smollm2", cache=False, max_tokens=MAX_TOKENS, n_threads=1)
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "Answer",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
            },
        },
    }
    result: dict[str, Any] = {"greedy": [], "greedy_json": [], "sampled": [], "answers": []}
    if side == "ours":
        result["paths"] = grammar_paths(lm, schema)
    for country in countries:
        prompt = f"What is the capital of {country}? Answer with the city name only."
        result["greedy"] += lm(prompt, rollout_id=0, temperature=0.0)
        result["greedy_json"] += lm(prompt, rollout_id=0, temperature=0.0, response_format=schema)
        result["sampled"].append(lm(prompt, rollout_id=0, n=samples))
    predict = bon.Predict("question -> answer")
    for country in countries:
        answers = []
        for rollout in range(samples):  # as BestOfN samples: one LM copy per rollout, temperature 1.0
            attempt = lm.copy(rollout_id=rollout, temperature=1.0, max_tokens=ADAPTER_MAX_TOKENS)
            with bon.context(lm=attempt, adapter=bon.JSONAdapter()):
                try:
                    answers.append(predict(question=f"What is the capital of {country}?").answer)
                except AdapterParseError:  # cut off by max_tokens inside the JSON: a wrong answer
                    answers.append("")
        result["answers"].append(answers)
    return result


def grammar_paths(lm: Any, schema: dict[str, Any]) -> dict[str, list[str]]:
    """First words of JSON answers drawn checking the drawn token, mask-first, and checking again."""
    prompt = "What is the capital of France? Reply in JSON."
    vocabulary = 49152  # SmolLM2's: top_k this large truncates nothing but makes the grammar mask first

    def first_words(top_k: int, start: int) -> list[str]:
        words = []
        for rollout in range(start, start + PATH_SAMPLES, 8):
            for text in lm(
                prompt, rollout_id=rollout, n=8, response_format=schema, top_k=top_k, max_tokens=10
            ):
                found = re.search(r'"answer"\s*:\s*"([^"\s]*)', text)
                words.append(found.group(1)[:12] if found else "<none>")
        return words

    return {
        "checked": first_words(0, 0),
        "masked": first_words(vocabulary, 10_000),
        "again": first_words(0, 20_000),
    }


def distance(left: list[str], right: list[str]) -> float:
    """Total variation distance between the empirical distributions of two samples."""
    counts_left, counts_right = Counter(left), Counter(right)
    keys = set(counts_left) | set(counts_right)
    return 0.5 * sum(abs(counts_left[k] / len(left) - counts_right[k] / len(right)) for k in keys)


def accuracy(answers: list[list[str]], countries: list[str]) -> tuple[int, int, int]:
    """(right answers, questions with at least one right answer, answers) over every question."""
    right = sum(
        CAPITALS[c].lower() in a.lower() for c, row in zip(countries, answers, strict=True) for a in row
    )
    any_right = sum(
        any(CAPITALS[c].lower() in a.lower() for a in row) for c, row in zip(countries, answers, strict=True)
    )
    return right, any_right, sum(len(row) for row in answers)


def main(argv: list[str] | None = None) -> int:
    """Sample both sides, compare, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--questions", type=int, default=len(CAPITALS))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--release-commit", default=None, help="default: the one benchmarks/llamacpp.py uses")
    parser.add_argument("--side", choices=("ours", "release"), help=argparse.SUPPRESS)
    parser.add_argument("--release-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        result = sample(args.side, args.release_dir, args.questions, args.samples)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    sys.path.insert(0, str(HERE))
    from llamacpp import RELEASE_COMMIT, extract_release

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-llamacpp-samples-") as scratch:
        release = extract_release(args.release_commit or RELEASE_COMMIT, Path(scratch))
        for side in ("ours", "release"):
            command = [sys.executable, __file__, "--side", side, "--release-dir", str(release)]
            command += ["--questions", str(args.questions), "--samples", str(args.samples)]
            print(f"sampling: {side} ...", flush=True)
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-4000:])
                return 2
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    ours, release_result = results["ours"], results["release"]
    countries = list(CAPITALS)[: args.questions]
    same = {
        key: sum(a == b for a, b in zip(ours[key], release_result[key], strict=True))
        for key in release_result
    }
    print(f"\n{args.questions} questions, {args.samples} samples each, SmolLM2-135M-Instruct Q4_1\n")
    print("| check | identical texts |")
    print("|---|---:|")
    print(f"| greedy, free text | {same['greedy']} / {args.questions} |")
    print(f"| greedy, JSON grammar | {same['greedy_json']} / {args.questions} |")
    print(
        f"| temperature 1.0, n={args.samples}, free text | {same['sampled']} / {args.questions} questions |"
    )
    print(f"| temperature 1.0, JSONAdapter (grammar) | {same['answers']} / {args.questions} questions |")
    print("\n| JSONAdapter, temperature 1.0 | right answers | questions with a right answer |")
    print("|---|---:|---:|")
    for side, result in (("release", release_result), ("ours", ours)):
        right, any_right, total = accuracy(result["answers"], countries)
        spread = math.sqrt(right * (total - right) / total)  # binomial standard deviation of the count
        print(f"| {side} | {right} / {total} (+- {spread:.1f}) | {any_right} / {args.questions} |")
    paths = ours["paths"]
    print(f"\nGrammar paths, {PATH_SAMPLES} JSON answers each; the most frequent first words:")
    for name in ("checked", "masked", "again"):
        print(f"  {name}: {Counter(paths[name]).most_common(5)}")
    print(
        f"total variation distance: checked vs masked {distance(paths['checked'], paths['masked']):.3f}; "
        f"checked vs checked again (the noise) {distance(paths['checked'], paths['again']):.3f}; "
        f"masked vs checked again {distance(paths['masked'], paths['again']):.3f}"
    )
    must_match = ("greedy", "greedy_json", "sampled")
    return 0 if all(same[key] == args.questions for key in must_match) else 1


if __name__ == "__main__":
    sys.exit(main())
