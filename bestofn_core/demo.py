"""A runnable demonstration: ``python -m bestofn_core.demo``.

With no arguments it starts the bundled OpenAI-compatible test server on 127.0.0.1 (no API key, no
network) and runs the quick-start program through litellm against it: a ChainOfThought sampled by
BestOfN with a one-word reward, printing every candidate, the winner, the token usage and the prompt.
With ``--api-base``/``--model`` it talks to a real OpenAI-compatible endpoint instead (the key comes
from ``--api-key`` or the ``OPENAI_API_KEY`` environment variable).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    """Run the quick start once and print what happened. Returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m bestofn_core.demo", description=__doc__)
    parser.add_argument("--question", default="What is the capital of Belgium?")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    parser.add_argument(
        "--api-base", default=None, help="an OpenAI-compatible endpoint (default: local test server)"
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument("-n", type=int, default=4, help="attempts (BestOfN's N)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    import bestofn_core as bon

    server = None
    api_base = args.api_base
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if api_base is None:
        from bestofn_core.testing.openai_server import OpenAICompatServer

        server = OpenAICompatServer().start()
        replies = [
            "The capital of Belgium is Brussels.",
            "Brussels, of course",
            "Brussels",
            "It is Brussels.",
        ]
        server.set_responder(
            lambda request, index: {
                "reasoning": "Belgium's seat of government is Brussels.",
                "answer": replies[(len(server.requests) - 1 + index) % len(replies)],
            }
        )
        api_base, api_key = server.url, "demo-key"
        print(f"(no --api-base given: using the bundled test server at {api_base})\n")
    try:
        lm = bon.LM(args.model, api_base=api_base, api_key=api_key, cache=False)
        bon.configure(lm=lm, track_usage=True)
        qa = bon.ChainOfThought("question -> answer")

        def one_word(inputs: dict[str, Any], pred: bon.Prediction) -> float:
            return 1.0 if len(str(pred.answer).split()) == 1 else 0.0

        best = bon.BestOfN(qa, N=args.n, reward_fn=one_word, threshold=1.0, concurrency=1)
        prediction = best(question=args.question)
        print(f"Question: {args.question}\n")
        print(f"{'rollout':>7}  {'reward':>6}  answer")
        for candidate in prediction.candidates:
            answer = candidate.prediction.answer if candidate.prediction is not None else candidate.error
            mark = "  <- winner" if candidate is prediction.winner else ""
            print(f"{candidate.rollout_id:>7}  {candidate.reward!s:>6}  {answer}{mark}")
        print(f"\nAnswer: {prediction.answer}")
        print(f"Usage:  {prediction.get_lm_usage()}")
        print("\nThe last request the model saw:")
        lm.inspect_history(n=1)
    except bon.errors.BestOfNCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
