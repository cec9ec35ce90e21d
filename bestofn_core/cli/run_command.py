"""``bestofn run``: best-of-N sampling of one signature from the command line, for one question or a file.

One question: ``bestofn run "question -> answer" question="..." -n 5 --reward text:one_word``, printing the
winning answer and a table of every candidate (``--json`` for the whole result). A file:
``--input questions.jsonl --output results.jsonl``, one result line per example, resumable (see
:mod:`bestofn_core.cli.run_file`). This module parses and checks the command line, builds the program
and the LM, and turns errors and signals into exit statuses; ``run_one`` and ``run_file`` do the rest.
Exit status: 0 when everything was answered, 1 when an example (or every attempt of the question)
failed, 2 for bad input (one line naming the problem and the fix; no traceback unless ``--debug``),
130/143 when interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from bestofn_core.cli.plugins_command import plugin_load_errors
from bestofn_core.cli.run_config import (
    DEFAULT_LM,
    LMChoice,
    UsageError,
    parse_assignments,
    parse_input_values,
    read_input_file,
    resolve_lm,
)
from bestofn_core.cli.run_file import run_file
from bestofn_core.cli.run_one import run_one
from bestofn_core.cli.run_report import EXIT_FAILED, EXIT_SIGNAL_BASE, EXIT_USAGE, one_line, say

__all__ = ["SELF_CONSISTENCY", "add_run_command"]

#: The policy of ``bestofn run`` without ``--reward``: the most frequent answer wins.
SELF_CONSISTENCY = "voting:majority"

EXAMPLES = """\
examples:
  bestofn run "question -> answer" question="What is the capital of Belgium?" -n 16
  bestofn run "question -> answer" question="What is the capital of Belgium?" -n 5 \\
      --reward text:one_word --threshold 1.0
  bestofn run "question -> answer" question="..." --lm openai/gpt-4o-mini --chain-of-thought --json
  bestofn run "question -> answer" --input questions.jsonl --output results.jsonl --reward text:one_word

The LM is --lm, else $BESTOFN_LM, else [lm] model in $BESTOFN_CONFIG (default
~/.config/bestofn/config.toml), else the embedded local/smollm2 (needs the bestofn-llamacpp plugin).
Rewards, policies and LM backends come from plugins: `bestofn plugins --all` lists them.
"""


def add_run_command(commands: Any) -> None:
    """Declare ``bestofn run`` on the ``commands`` subparsers."""
    parser = commands.add_parser(
        "run",
        help="sample a signature N times, keep the best answer (by reward, or the most frequent), print it",
        description=(
            'Run a signature (e.g. "question -> answer") N times with different rollout ids at temperature '
            "1.0, score every answer with a reward (without --reward: the most frequent answer wins), and "
            "print the winner and every candidate."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("signature", help='the program\'s signature, e.g. "question -> answer"')
    parser.add_argument(
        "inputs", nargs="*", metavar="FIELD=VALUE", help="the input fields (not with --input)"
    )
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("-n", "--n", type=int, default=5, help="attempts per question (default 5)")
    sampling.add_argument(
        "--reward",
        help="the reward, 'plugin:name' (e.g. text:one_word); without it, self-consistency: the most "
        "frequent answer wins (a majority vote, from the bestofn-voting plugin)",
    )
    sampling.add_argument(
        "--reward-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of a reward factory (VALUE read as JSON, else as text); repeatable",
    )
    sampling.add_argument(
        "--threshold", type=float, help="stop at the first answer whose reward reaches this"
    )
    sampling.add_argument("--fail-count", type=int, help="failed attempts tolerated (default N)")
    sampling.add_argument(
        "--reward-timeout", type=float, metavar="SECONDS", help="fail an attempt whose reward takes longer"
    )
    sampling.add_argument(
        "--policy",
        help=f"selection policy (default: threshold with --reward, {SELF_CONSISTENCY} without)",
    )
    sampling.add_argument("--concurrency", type=int, help="attempts running at once (default N)")
    sampling.add_argument(
        "--sampling",
        choices=("per_rollout", "batched"),
        default="per_rollout",
        help="one request per attempt, or one request for all N (default per_rollout)",
    )
    sampling.add_argument("--seed", type=int, default=0, help="the first rollout id (default 0)")
    sampling.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    program = parser.add_argument_group("program and model")
    program.add_argument("--chain-of-thought", action="store_true", help="reason step by step first")
    program.add_argument(
        "--adapter",
        default="auto",
        help="prompt format: chat, json, compact or a plugin's 'plugin:name' (default auto: the one the "
        "model's backend suits, compact for the embedded model, else chat)",
    )
    program.add_argument("--lm", help=f"model string (default: $BESTOFN_LM, the config file, {DEFAULT_LM})")
    program.add_argument("--api-base", help="the LM server's base URL (OpenAI-compatible servers)")
    program.add_argument(
        "--backend", metavar="PLUGIN:NAME", help="the LM backend to use, when several claim the model"
    )
    program.add_argument("--max-tokens", type=int, help="most tokens per answer")
    program.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    files = parser.add_argument_group("files")
    files.add_argument(
        "--input", type=Path, help="a JSONL file of examples, one object of input fields a line"
    )
    files.add_argument("--output", type=Path, help="the JSONL results file (appended to, resumable)")
    files.add_argument("--num-threads", type=int, help="examples running at once with --input (default 8)")
    files.add_argument(
        "--retry-failed", action="store_true", help="run the failed examples of --output again"
    )
    files.add_argument(
        "--straggler-timeout",
        type=float,
        metavar="SECONDS",
        help="with --input: once few examples remain, give one still running after SECONDS a second try "
        "(the first to finish is kept; default 120, 0 never)",
    )
    shown = parser.add_argument_group("output")
    shown.add_argument("--json", action="store_true", help="print a JSON document with every candidate")
    shown.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    shown.add_argument("--debug", action="store_true", help="log details, and show tracebacks")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``bestofn run``; return the exit status."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch litellm's cost map
    from bestofn_core.errors import (
        ConfigurationError,
        PluginError,
        SerializationError,
        SignatureError,
    )

    try:
        with _logging(args.debug), _signals_interrupt() as received:
            try:
                return _execute(args)
            except KeyboardInterrupt:
                name = signal.Signals(received[-1]).name if received else "SIGINT"
                say(
                    f"interrupted by {name}; finished results are kept"
                    + (" (rerun to resume)" if args.input else "")
                )
                return EXIT_SIGNAL_BASE + (received[-1] if received else signal.SIGINT)
    except (UsageError, ConfigurationError, SignatureError, PluginError, SerializationError) as exc:
        return _fail(exc, args.debug, EXIT_USAGE, "error")
    except Exception as exc:  # an LM or program failure outside any attempt: say it, keep it short
        return _fail(exc, args.debug, EXIT_FAILED, "failed")


def _execute(args: argparse.Namespace) -> int:
    import bestofn_core as bon
    from bestofn_core.signatures.signature import ensure_signature

    _check_combination(args)
    signature = ensure_signature(args.signature)
    single_inputs = (
        None if args.input else parse_input_values(signature, parse_assignments(args.inputs, "input"))
    )
    examples = read_input_file(args.input, signature) if args.input else None
    for problem in plugin_load_errors():  # the reward, policy or backend asked for may be among them
        say(f"warning: {problem}")
    choice = resolve_lm(args.lm)
    lm = _build_lm(choice, args)
    adapter = _adapter(args.adapter, lm)
    predictor = bon.ChainOfThought(signature) if args.chain_of_thought else bon.Predict(signature)
    policy_ref = args.policy or ("threshold" if args.reward else SELF_CONSISTENCY)
    vote_field = next(iter(signature.output_fields))
    best = bon.BestOfN(
        predictor,
        N=args.n,
        reward_fn=_reward(args.reward, args.reward_param),
        threshold=args.threshold,
        fail_count=args.fail_count,
        policy=_policy(policy_ref, vote_field, self_consistency=args.reward is None),
        concurrency=args.concurrency,
        sampling=args.sampling,
        temperature=args.temperature,
        reward_timeout=args.reward_timeout,
    )
    about = {
        "signature": args.signature,
        "lm": {"model": choice.model, "source": choice.source},
        "n": args.n,
        "reward": args.reward,
        "threshold": args.threshold,
        "policy": policy_ref,
        "adapter": adapter,
        "sampling": args.sampling,
        "seed": args.seed,
    }
    if args.reward is None and not args.json and not args.input:
        say(
            f"no --reward: self-consistency, the most frequent `{vote_field}` of the {args.n} samples wins "
            f"({policy_ref})"
        )
    with bon.context(lm=lm, adapter=adapter):
        if examples is not None:
            return run_file(best, examples, args, about)
        assert single_inputs is not None
        return run_one(best, signature, single_inputs, args, about)


def _check_combination(args: argparse.Namespace) -> None:
    if args.input and args.inputs:
        raise UsageError("give the inputs either as FIELD=VALUE arguments or with --input FILE, not both.")
    if args.input and not args.output:
        raise UsageError("--input needs --output FILE, where the results go (rerunning resumes from it).")
    if args.output and not args.input:
        raise UsageError("--output needs --input FILE; for one question, print the result (--json).")
    if args.retry_failed and not args.input:
        raise UsageError("--retry-failed reruns the failed examples of --input/--output; give both.")
    if args.input and args.output and args.input.resolve() == args.output.resolve():
        raise UsageError("--output must be another file than --input.")
    if args.num_threads is not None and args.num_threads < 1:
        raise UsageError(f"--num-threads must be at least 1, not {args.num_threads}.")
    if args.straggler_timeout is not None:
        if not args.input:
            raise UsageError("--straggler-timeout applies to a file of examples; give --input and --output.")
        if not 0 <= args.straggler_timeout < math.inf:
            raise UsageError(
                f"--straggler-timeout must be a number of seconds, 0 or more (0: never), not "
                f"{args.straggler_timeout}."
            )


def _build_lm(choice: LMChoice, args: argparse.Namespace) -> Any:
    import bestofn_core as bon
    from bestofn_core.errors import AmbiguousNameError, NoBackendError

    kwargs: dict[str, Any] = dict(choice.kwargs)
    if args.api_base:
        kwargs["api_base"] = args.api_base
    if args.backend:
        kwargs["backend"] = args.backend
    if args.max_tokens is not None:
        kwargs["max_tokens"] = args.max_tokens
    if args.no_cache:
        kwargs["cache"] = False
    if args.seed:
        kwargs["rollout_id"] = args.seed  # BestOfN numbers its rollouts from the LM's rollout_id
    try:
        return bon.LM(choice.model, **kwargs)
    except AmbiguousNameError as exc:
        if not exc.choices:
            raise
        raise UsageError(
            f"several LM backends claim the model {choice.model!r}: {', '.join(exc.choices)}. Choose one "
            f"with --backend (e.g. --backend {exc.choices[0]}), or keep the others out with "
            "BESTOFN_BLOCK_PLUGINS (`bestofn plugins` shows which distribution installed each)."
        ) from exc
    except NoBackendError as exc:
        if exc.distribution is None:
            raise
        # say where the model came from: the default needs the plugin the README's first command installs
        how = "the default model" if choice.source == "default" else f"the model {choice.model!r}"
        raise UsageError(
            f"{how} runs on the {exc.distribution} plugin, which is not installed: {exc.install} (see the "
            "README), or choose another model with --lm or $BESTOFN_LM."
        ) from exc


def _adapter(name: str, lm: Any) -> str:
    """The qualified name of the adapter ``--adapter`` names (``auto``: the one ``Predict`` would pick)."""
    from bestofn_core.adapters.choice import adapter_reference
    from bestofn_core.plugins import get_registry

    reference = adapter_reference(lm) if name == "auto" else name
    assert reference is not None  # no adapter object is configured here
    return get_registry().resolve("adapter", reference).qualified_name


def _policy(reference: str, field: str, *, self_consistency: bool) -> Any:
    """The selection policy ``reference`` names, voting on ``field`` when it is a vote over a field."""
    import dataclasses

    from bestofn_core.best_of_n.best_of_n import needs_rewards
    from bestofn_core.errors import UnknownNameError
    from bestofn_core.plugins import get_registry

    try:
        policy = get_registry().get("selection_policy", reference)
    except UnknownNameError as exc:
        if not self_consistency or reference != SELF_CONSISTENCY:
            raise
        raise UsageError(
            "without --reward, bestofn run does self-consistency (a majority vote), which needs the "
            "bestofn-voting plugin: pip install bestofn-voting. Or score the answers with --reward "
            "plugin:name (bestofn plugins --all lists the rewards)."
        ) from exc
    if self_consistency and needs_rewards(policy):
        raise UsageError(
            f"--policy {reference} chooses by reward: give --reward plugin:name too, or leave --policy "
            f"out for self-consistency ({SELF_CONSISTENCY}, the most frequent answer wins)."
        )
    # a vote counts the values of one output field ("answer" by default): make it the signature's
    voted = getattr(policy, "field", None)
    if isinstance(voted, str) and voted != field and dataclasses.is_dataclass(policy):
        policy = dataclasses.replace(policy, field=field)  # type: ignore[type-var]
    return policy


def _reward(reference: str | None, params: list[str]) -> Any:
    import orjson

    import bestofn_core as bon

    if reference is None:
        if params:
            raise UsageError("--reward-param sets a parameter of --reward; give --reward plugin:name too.")
        return None
    if not params:
        return reference
    values: dict[str, Any] = {}
    for name, text in parse_assignments(params, "--reward-param").items():
        try:
            values[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            values[name] = text  # not JSON: the text itself (write "3" as '"3"' to pass the text 3)
    return bon.reward(reference, **values)


# ------------------------------------------------------------------------------------------------ plumbing


@contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """Turn SIGTERM into ``KeyboardInterrupt`` like SIGINT, so both stop the run the same clean way."""
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """Quiet library logs for the run (``--debug``: bestofn-core's on stderr); put the levels back after."""
    # failures are in the table or the results file; without --debug the log would only repeat them
    names = ("bestofn_core", "LiteLLM", "litellm")
    previous = {name: logging.getLogger(name).level for name in names}
    handler: logging.Handler | None = None
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    for name in names:
        # --debug shows bestofn-core's own log only: litellm's debug output goes to stdout and would
        # break --json (set LITELLM_LOG=DEBUG for that)
        if name == "bestofn_core":
            level: int | None = logging.DEBUG if debug else logging.CRITICAL
        else:
            level = None if debug else logging.CRITICAL
        if level is not None:
            logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)
        if handler is not None:
            logging.getLogger().removeHandler(handler)


def _fail(exc: BaseException, debug: bool, status: int, word: str) -> int:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    hint = "" if debug else " (--debug shows the traceback)" if status == EXIT_FAILED else ""
    say(f"{word}: {one_line(str(exc))}{hint}")
    return status
