"""One side of the llama.cpp benchmark, run in a fresh process.

``benchmarks/llamacpp.py`` starts this script once per (side, measurement), so that each side loads the
model into a process of its own::

    python benchmarks/llamacpp_worker.py SIDE MEASUREMENT [options]

SIDE is ``ours-llamacpp`` (this checkout's bestofn-llamacpp: the batched engine), ``release`` (the
backend of the current release: the plugin package extracted from ``--release-dir`` goes first on
``sys.path``, so the ``bestofn`` entry point loads it) or ``high-level`` (llama-cpp-python's ``Llama``
alone, no bestofn-core).
The model is the embedded SmolLM2-135M-Instruct (Q4_1), ``max_tokens=48``, the backend's default threads,
the backend's sampler (``SAMPLING_DEFAULTS``: temperature 1.0, min-p 0.1, no penalty; ``--sampler``
overrides it, e.g. ``min_p=0.0``, on every side), response cache
off. The program is ``BestOfN(Predict("question -> answer"), N, reward_fn=<always 0.0>, threshold=1.0)``
with ``--adapter``: ``preferred`` (the default: the adapter the backend prefers, CompactAdapter, which
``bestofn run`` and ``configure(lm=...)`` pick for this model) or ``json`` (``JSONAdapter``, whose JSON
schema becomes a grammar).
MEASUREMENT is

- ``sweep``: wall time, CPU time (every thread) and completion tokens of one BestOfN call per N of
  ``--ns``, per-rollout and batched (``sampling="batched"``), one question; ``cold`` calls start with
  an empty prompt cache (``clear_prompt_cache()``, the prompt is evaluated once per call), ``warm``
  calls repeat the cold call at once and find its prompt kept (ours only: the release resets the model
  before every choice).
  ``high-level`` draws the same samples (the messages and grammar, if any, ``ours-llamacpp`` sent, seeds
  ``sampling_seed(i)``) with N ``Llama.create_chat_completion`` calls one after another; a cold call
  ``reset()``s the model first, a warm one follows it (``Llama`` reuses the prompt it evaluated last), and
  a ``fresh`` one ``reset()``s before every sample, so that each evaluates the whole prompt (as the
  release did, and as a wrapper does that starts every seed from a clean model).
- ``batch``: wall time of ``program.batch(16 questions, num_threads=16)`` with N=4, the prompt cache
  emptied before each batch.
- ``steps`` (ours): what one ``llama_decode`` step costs against the number of sequences in it, on the
  engine's own context (the sweep's prompt evaluated once and copied to every slot, then ``--repeats``
  x 16 steps of one token per sequence for 1, 2, 4 and 8 sequences): the most that decoding sequences
  together can save on this machine.
- ``prompt`` (ours): the messages and ``response_format`` (``null`` when the adapter asks for none) of
  the sweep's question, for ``high-level``.

The last stdout line is a JSON object with the samples; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import sampler_params

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SIDES = ("ours-llamacpp", "release", "high-level")
MEASUREMENTS = ("sweep", "batch", "prompt", "steps")
#: the steps measurement: sequences per step, and steps timed per round
STEP_SEQUENCES = (1, 2, 4, 8)
STEPS_PER_ROUND = 16
MODEL = "local/smollm2"
MAX_TOKENS = 48
QUESTION = "What is the capital of Belgium?"
#: the batch measurement's questions
CAPITALS = (
    "France", "Germany", "Italy", "Spain", "Portugal", "Austria", "Poland", "Greece",
    "Norway", "Sweden", "Finland", "Ireland", "Hungary", "Egypt", "Japan", "Canada",
)  # fmt: skip


def never_good_enough(inputs: dict[str, Any], prediction: Any) -> float:
    """The reward: always 0.0, so the threshold of 1.0 is never reached and every attempt runs."""
    return 0.0


class Program:
    """bestofn-core with the llama.cpp backend (ours or the release's): BestOfN over Predict."""

    def __init__(self, side: str, release_dir: str | None, adapter: str, sampler: dict[str, float]) -> None:
        if side == "release":
            if not release_dir:
                raise SystemExit("release needs --release-dir")
            sys.path.insert(0, release_dir)
        import bestofn_llamacpp

        import bestofn_core as bon

        located = Path(bestofn_llamacpp.__file__).resolve()
        if (side == "release") != (
            release_dir is not None and Path(release_dir).resolve() in located.parents
        ):
            raise SystemExit(f"{side}: bestofn_llamacpp was imported from {located}")
        self.bon = bon
        self.plugin = bestofn_llamacpp
        bon.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        self.lm = bon.LM(MODEL, cache=False, max_tokens=MAX_TOKENS, **sampler)
        # None: the backend's preferred adapter; the release's backend prefers none, so it gets ours by name
        chosen = (
            bon.JSONAdapter() if adapter == "json" else bon.CompactAdapter() if side == "release" else None
        )
        bon.configure(lm=self.lm, adapter=chosen, track_usage=True, disable_progress_bar=True)
        self.lm("Hi", rollout_id=0)  # a warm model: loaded before anything is timed

    def best_of_n(self, n: int, sampling: str) -> Any:
        """The benchmark's BestOfN with ``n`` attempts."""
        bon = self.bon
        return bon.BestOfN(
            bon.Predict("question -> answer"),
            N=n,
            reward_fn=never_good_enough,
            threshold=1.0,
            sampling=sampling,
        )

    def forget_prompts(self) -> None:
        """Empty the prompt cache (the release has none: it evaluates every choice's prompt anyway)."""
        clear = getattr(self.plugin, "clear_prompt_cache", None)
        if clear is not None:
            clear()

    def call(self, program: Any, **inputs: Any) -> tuple[float, float, int]:
        """Wall seconds, CPU seconds (every thread) and completion tokens of one call of ``program``.

        A call whose every attempt failed to parse (``BestOfNError``: JSONAdapter's template copies) still
        generated its N samples, so it is timed like any other; its tokens come from the LM's history.
        """
        seen = len(self.lm.history)
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(self.bon.errors.BestOfNError):
            program(**inputs)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        entries = self.lm.history[seen:]
        return wall, cpu, sum(int(entry["usage"].get("completion_tokens", 0)) for entry in entries)


def measure_sweep(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Per round, for each N and sampling: a cold call, then (ours) a warm one."""
    ns = [int(value) for value in args.ns.split(",")]
    if side == "high-level":
        return sweep_high_level(ns, args)
    program = Program(side, args.release_dir, args.adapter, sampler_params(args.sampler))
    modes = ["cold"] if side == "release" else ["cold", "warm"]
    samplings = ["per_rollout", "batched"]
    programs = {(n, sampling): program.best_of_n(n, sampling) for n in ns for sampling in samplings}
    seconds: dict[str, list[float]] = {}
    cpu_seconds: dict[str, list[float]] = {}
    tokens: dict[str, list[int]] = {}
    for round_index in range(args.warmup + args.repeats):
        for n in ns:
            for sampling in samplings:
                program.forget_prompts()
                for mode in modes:  # cold, then warm: the same call again, its prompt kept by the first
                    wall, cpu, completion = program.call(programs[n, sampling], question=QUESTION)
                    key = f"{mode}/{sampling}/{n}"
                    print(
                        f"{side} round {round_index} {key}: {wall:.3f} s, {completion} tokens",
                        file=sys.stderr,
                    )
                    if round_index >= args.warmup:
                        seconds.setdefault(key, []).append(wall)
                        cpu_seconds.setdefault(key, []).append(cpu)
                        tokens.setdefault(key, []).append(completion)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "completion_tokens": tokens}


def sweep_high_level(ns: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """The same samples through ``Llama.create_chat_completion``, one after another."""
    import llama_cpp
    from bestofn_llamacpp import SAMPLING_DEFAULTS, default_threads, model_path, sampling_seed

    prompt = json.loads(Path(args.prompt_file).read_text())
    llama = llama_cpp.Llama(
        model_path=str(model_path(MODEL)),
        n_ctx=2048,
        n_threads=default_threads(),
        n_threads_batch=default_threads(),
        verbose=False,
    )
    llama.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=4)  # warm

    def samples(n: int, fresh: bool) -> tuple[float, float, int]:
        started, cpu = time.perf_counter(), time.process_time()
        completion = 0
        for index in range(n):
            if fresh:
                llama.reset()
            result: Any = llama.create_chat_completion(
                messages=prompt["messages"],
                response_format=prompt["response_format"],
                seed=sampling_seed(index),
                max_tokens=MAX_TOKENS,
                **{**SAMPLING_DEFAULTS, **sampler_params(args.sampler)},
            )
            completion += int(result["usage"]["completion_tokens"])
        return time.perf_counter() - started, time.process_time() - cpu, completion

    seconds: dict[str, list[float]] = {}
    cpu_seconds: dict[str, list[float]] = {}
    tokens: dict[str, list[int]] = {}
    for round_index in range(args.warmup + args.repeats):
        for n in ns:
            llama.reset()  # cold: the first sample evaluates the whole prompt again
            for mode in ("cold", "warm", "fresh"):
                wall, cpu, completion = samples(n, fresh=mode == "fresh")
                # fresh: a cold call too (the prompt is not kept), evaluated for every sample
                key = f"cold/one_after_another_fresh/{n}" if mode == "fresh" else ""
                key = key or f"{mode}/one_after_another/{n}"
                print(f"high-level round {round_index} {key}: {wall:.3f} s", file=sys.stderr)
                if round_index >= args.warmup:
                    seconds.setdefault(key, []).append(wall)
                    cpu_seconds.setdefault(key, []).append(cpu)
                    tokens.setdefault(key, []).append(completion)
    llama.close()
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "completion_tokens": tokens}


def measure_batch(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Whole batches of 16 questions x N=4, the prompt cache emptied before each."""
    program = Program(side, args.release_dir, args.adapter, sampler_params(args.sampler))
    best = program.best_of_n(args.n, "per_rollout")
    examples = [
        program.bon.Example(question=f"What is the capital of {country}?").with_inputs("question")
        for country in CAPITALS[: args.questions]
    ]
    seconds: list[float] = []
    failed = 0
    for index in range(args.warmup + args.repeats):
        program.forget_prompts()
        started = time.perf_counter()
        results = best.batch(examples, num_threads=len(examples), disable_progress_bar=True)
        wall = time.perf_counter() - started
        failed += sum(result is None for result in results)
        print(f"{side} batch {index}: {wall:.3f} s", file=sys.stderr)
        if index >= args.warmup:
            seconds.append(wall)
    return {"seconds": seconds, "failed_examples": failed}


def measure_prompt(args: argparse.Namespace) -> dict[str, Any]:
    """The messages and ``response_format`` one attempt of the sweep's program sends."""
    program = Program("ours-llamacpp", None, args.adapter, sampler_params(args.sampler))
    sent: list[Any] = []
    backend = program.lm.backend
    original = backend.acomplete

    async def recording(request: Any) -> Any:
        sent.append(request)
        return await original(request)

    backend.acomplete = recording  # type: ignore[method-assign]
    program.call(program.best_of_n(1, "per_rollout"), question=QUESTION)
    request = sent[0]
    response_format = request.params.get("response_format")
    # llama-cpp-python takes a JSON schema as a json_object with a schema
    if response_format is not None and response_format.get("type") == "json_schema":
        response_format = {"type": "json_object", "schema": response_format["json_schema"]["schema"]}
    return {"messages": request.messages, "response_format": response_format}


def measure_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Milliseconds per decode step with 1, 2, 4 and 8 sequences, each one token further on."""
    import numpy as np
    from bestofn_llamacpp import default_threads, model_path
    from bestofn_llamacpp._models import LoadOptions
    from bestofn_llamacpp._native import BatchItem, NativeModel

    prompt = json.loads(Path(args.prompt_file).read_text())
    slots = max(STEP_SEQUENCES)
    options = LoadOptions(n_ctx=2048, n_threads=default_threads(), n_gpu_layers=0, n_seq_max=slots)
    native = NativeModel(MODEL, model_path(MODEL), options)
    try:
        tokens = native.prompt(MODEL, prompt["messages"]).tokens
        native.decode([BatchItem(t, i, 0, logits=i == len(tokens) - 1) for i, t in enumerate(tokens)])
        for slot in range(1, slots):
            native.copy_slot(0, slot)
        token = int(np.argmax(np.ctypeslib.as_array(native.logits(len(tokens) - 1), shape=(native.n_vocab,))))
        milliseconds: dict[str, list[float]] = {}
        position = len(tokens)
        for round_index in range(args.warmup + args.repeats):
            for count in STEP_SEQUENCES:
                started = time.perf_counter()
                for step in range(STEPS_PER_ROUND):
                    native.decode(
                        [BatchItem(token, position + step, slot, logits=True) for slot in range(count)]
                    )
                each = (time.perf_counter() - started) * 1000 / STEPS_PER_ROUND
                for slot in range(slots):  # back to the prompt for the next measurement
                    native.truncate_slot(slot, position)
                print(f"steps round {round_index}, {count} sequences: {each:.1f} ms", file=sys.stderr)
                if round_index >= args.warmup:
                    milliseconds.setdefault(str(count), []).append(each)
    finally:
        native.close()
    return {"milliseconds": milliseconds, "n_threads": options.n_threads, "prompt_tokens": len(tokens)}


def main(argv: list[str] | None = None) -> int:
    """Run one measurement and print its JSON result as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("measurement", choices=MEASUREMENTS)
    parser.add_argument("--ns", default="1,2,4,8,16", help="sweep: comma-separated N values")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (sweep) or batches (batch)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds or batches first")
    parser.add_argument("--questions", type=int, default=len(CAPITALS), help="batch: examples per batch")
    parser.add_argument("--n", type=int, default=4, help="batch: BestOfN attempts per example")
    parser.add_argument(
        "--adapter", choices=("preferred", "json"), default="preferred", help="the program's adapter"
    )
    parser.add_argument("--sampler", help="sampling params over the backend's defaults, e.g. min_p=0.0")
    parser.add_argument("--release-dir", help="release: the directory holding the release's package")
    parser.add_argument(
        "--prompt-file", help="high-level and steps: the JSON written by the prompt measurement"
    )
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"side": args.side, "measurement": args.measurement}
    if args.measurement == "sweep":
        result.update(measure_sweep(args.side, args))
    elif args.measurement == "batch":
        result.update(measure_batch(args.side, args))
    elif args.measurement == "steps":
        result.update(measure_steps(args))
    else:
        result.update(measure_prompt(args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
