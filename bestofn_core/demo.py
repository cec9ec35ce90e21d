"""A runnable demonstration: ``python -m bestofn_core.demo``.

With no arguments it starts the bundled OpenAI-compatible test server on 127.0.0.1 (no API key, no
network) and runs the quick-start program through litellm against it, printing the answer, the prompt
and the token usage. With ``--api-base``/``--model`` it talks to a real OpenAI-compatible endpoint
instead (the key comes from ``--api-key`` or the ``OPENAI_API_KEY`` environment variable).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the quick start once and print what happened. Returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m bestofn_core.demo", description=__doc__)
    parser.add_argument("--question", default="What is the capital of Belgium?")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    parser.add_argument(
        "--api-base", default=None, help="an OpenAI-compatible endpoint (default: local test server)"
    )
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    import bestofn_core as bon

    server = None
    api_base = args.api_base
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if api_base is None:
        from bestofn_core.testing.openai_server import OpenAICompatServer

        server = OpenAICompatServer().start()
        server.set_responder(
            lambda request, index: {
                "reasoning": "Belgium's seat of government and largest urban area is Brussels.",
                "answer": "Brussels",
            }
        )
        api_base, api_key = server.url, "demo-key"
        print(f"(no --api-base given: using the bundled test server at {api_base})\n")
    try:
        bon.configure(
            lm=bon.LM(args.model, api_base=api_base, api_key=api_key, cache=False), track_usage=True
        )
        qa = bon.ChainOfThought("question -> answer")
        prediction = qa(question=args.question)
        print(f"Question:  {args.question}")
        print(f"Reasoning: {prediction.reasoning}")
        print(f"Answer:    {prediction.answer}")
        print(f"Usage:     {prediction.get_lm_usage()}")
        print("\nThe request the model saw:")
        qa.inspect_history(n=1)
    except bon.errors.BestOfNCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
