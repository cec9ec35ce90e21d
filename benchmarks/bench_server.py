"""The benchmarks' test server: the bundled OpenAI-compatible server, recording request arrivals.

``python -m bestofn_core.testing.openai_server`` turns request recording off in process mode (nobody
could read the records there). The benchmarks want two numbers from the server side, which only the
server can see independently of the client: how many chat-completions requests arrived, and how many
were in flight at once. This script runs the same ``OpenAICompatServer`` (same handler, same answers,
same latency) in its own process with recording on, and answers on stdin::

    python benchmarks/bench_server.py --latency 0.1

prints ``http://127.0.0.1:PORT/v1`` as its first stdout line, then for each ``stats`` line read on stdin
prints one JSON line, ``{"requests": R, "choices": C, "max_in_flight": M}``, about the requests received
since the previous ``stats``, and forgets them. It stops at end of input (or SIGTERM/SIGINT).

``max_in_flight`` is the largest number of requests whose server-side windows ``[received_at,
received_at + latency]`` overlap: every request is answered ``latency`` seconds after it arrived, and a
client's request slot covers that whole window, so this never exceeds what the client had in flight.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bestofn_core.testing.openai_server import OpenAICompatServer, ReceivedRequest


def max_overlap(requests: Sequence[ReceivedRequest], latency: float) -> int:
    """Most requests whose ``[received_at, received_at + latency]`` windows overlap at one instant."""
    # a window that ends at the instant another starts does not overlap it: ends sort before starts
    events = sorted(
        [(request.received_at, 1) for request in requests]
        + [(request.received_at + latency, -1) for request in requests]
    )
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    return peak


def stats(server: OpenAICompatServer, latency: float) -> dict[str, int]:
    """Requests, choices and peak overlap since the last call; clears the server's records."""
    received = server.requests
    server.reset()  # also clears latency, so restore it
    server.latency = latency
    return {
        "requests": len(received),
        "choices": sum(request.n for request in received),
        "max_in_flight": max_overlap(received, latency),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stdin ends; answer each ``stats`` line with a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    args = parser.parse_args(argv)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # leaves the with block: the server stops

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = OpenAICompatServer("127.0.0.1", args.port, latency=args.latency)
    server.record_requests = True
    with server:
        print(server.url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(stats(server, args.latency)), flush=True)
            elif command:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
