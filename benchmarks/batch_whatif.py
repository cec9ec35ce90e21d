"""What-if experiments behind the batch benchmark's findings: where bestofn-core's batch time goes.

Not part of the benchmark and no target is checked here. Each variant runs the benchmark's comparison
program (64 questions x N=4, ``batch(num_threads=8)``, 100 ms latency, bestofn-core only) in a fresh
process with one change, monkeypatched in that process only, so the cost of one piece shows up as the
difference to ``base``::

    benchmarks/.venv/bin/python benchmarks/batch_whatif.py [--variants base,no-cost,...] [--repeats 5]

Variants:

- ``base``: the program as benchmarked.
- ``no-cost``: litellm's per-response cost calculation (``Logging.response_cost_calculator``) returns
  ``None`` at once; the model has no price, and litellm searches for one on every response.
- ``async-reward``: the reward is ``async def``, so it runs on the event loop instead of hopping to a
  worker thread (``_runner.run_in_thread``).
- ``raw-http``: litellm is bypassed: ``LiteLLMBackend.acomplete`` sends the same body with one plain
  ``aiohttp`` session per event loop. What is left is bestofn-core's own work per attempt (adapter,
  Predict, BestOfN, batch engine, settings) plus a minimal HTTP client.
- ``raw-http+async-reward``: both.

It prints wall time, process CPU and event-loop thread CPU per batch (median), per variant. With
``--scale`` each variant runs the benchmark's scale measurement instead (1,000 questions x N=8,
``max_concurrency=64``, ``num_threads=64``, one batch after a 64-question warm-up): wall time,
requests/s, CPU and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from typing import Any

from _common import ROOT, child_env, test_server
from batch import LATENCY_S

VARIANTS = ("base", "no-cost", "async-reward", "raw-http", "raw-http+async-reward")


async def async_never_good_enough(inputs: dict[str, Any], prediction: Any) -> float:
    """The benchmark's reward, as a coroutine function (runs on the event loop)."""
    return 0.0


def patch_no_cost() -> None:
    """Make litellm skip its per-response cost calculation."""
    from litellm.litellm_core_utils import litellm_logging

    def no_cost(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    litellm_logging.Logging.response_cost_calculator = no_cost  # type: ignore[method-assign]


def patch_raw_http() -> None:
    """Send each request with a plain aiohttp POST instead of ``litellm.acompletion``."""
    import aiohttp

    from bestofn_core.default_plugins.litellm_backend import LiteLLMBackend
    from bestofn_core.protocols import LMRequest, LMResponse

    sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    async def acomplete(self: LiteLLMBackend, request: LMRequest) -> LMResponse:
        loop = asyncio.get_running_loop()
        session = sessions.get(loop)
        if session is None:
            session = sessions[loop] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        body = {"model": request.model.split("/", 1)[-1], "messages": request.messages, **request.params}
        url = str(request.credentials["api_base"]).rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {request.credentials.get('api_key', '')}"}
        async with session.post(url, json=body, headers=headers) as response:
            response.raise_for_status()
            data = await response.json()
        choices = data["choices"]
        return LMResponse(
            outputs=[choice["message"].get("content") or "" for choice in choices],
            usage={
                key: int(value) for key, value in (data.get("usage") or {}).items() if isinstance(value, int)
            },
            model=data.get("model"),
            finish_reasons=[choice.get("finish_reason") for choice in choices],
        )

    LiteLLMBackend.acomplete = acomplete  # type: ignore[method-assign]


def run_variant(variant: str, url: str, repeats: int, warmup: int, scale: bool) -> dict[str, Any]:
    """In this process: apply ``variant``, run the comparison batches (or the scale run), return medians."""
    import batch_worker

    n = 8 if scale else 4
    harness = batch_worker.Harness("ours", url, n, 64 if scale else None)
    if "no-cost" in variant:
        patch_no_cost()
    if "raw-http" in variant:
        patch_raw_http()
    if "async-reward" in variant:
        import bestofn_core as bon

        harness.program = bon.BestOfN(
            bon.ChainOfThought("question -> answer"), N=n, reward_fn=async_never_good_enough, threshold=1.0
        )
    if scale:
        options = argparse.Namespace(questions=1000, n=n, num_threads=64, warmup_questions=64)
        result: dict[str, Any] = batch_worker.measure_scale(harness, options)
        if result["failed_examples"]:
            raise SystemExit(f"{variant}: {result['failed_examples']} example(s) failed")
        return {"variant": variant, **result}
    walls: list[float] = []
    cpus: list[float] = []
    loops: list[float] = []
    for index in range(warmup + repeats):
        batch = harness.run(harness.examples(f"whatif-{variant}-{index}", 64), 8)
        if batch.failed:
            raise SystemExit(f"{variant}: {batch.failed} example(s) failed")
        if index >= warmup:
            walls.append(batch.wall)
            cpus.append(batch.cpu)
            loops.append(batch.loop_cpu or float("nan"))
    return {
        "variant": variant,
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "cpu_s": statistics.median(cpus),
        "loop_cpu_s": statistics.median(loops),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every variant in a fresh process against one test server and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from the list above")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--scale", action="store_true", help="1,000 questions x N=8 instead")
    parser.add_argument("--url", help=argparse.SUPPRESS)  # set in the per-variant child process
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}")

    if args.url:  # child: one variant
        (variant,) = variants
        print(json.dumps(run_variant(variant, args.url, args.repeats, args.warmup, args.scale)))
        return 0

    if args.scale:
        print("1,000 questions x N=8, max_concurrency=64, batch(num_threads=64), 100 ms latency, one run")
        print(
            f"{'variant':<24} {'wall s':>7} {'req/s':>7} {'CPU s':>7} {'loop CPU s':>11} {'peak RSS MiB':>13}"
        )
    else:
        print(
            f"64 questions x N=4, batch(num_threads=8), {LATENCY_S * 1000:.0f} ms latency, "
            f"median of {args.repeats}"
        )
        print(
            f"{'variant':<24} {'wall s':>7} {'(min)':>7} {'CPU s':>7} {'loop CPU s':>11} "
            f"{'loop ms/attempt':>16}"
        )
    with test_server(LATENCY_S) as server:
        for variant in variants:
            command = [
                sys.executable,
                __file__,
                "--variants",
                variant,
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
                "--url",
                server.url,
                *(["--scale"] if args.scale else []),
            ]
            completed = subprocess.run(command, capture_output=True, text=True, env=child_env(), cwd=ROOT)
            lines = completed.stdout.strip().splitlines()
            if completed.returncode != 0 or not lines:
                sys.stderr.write(completed.stderr[-4000:])
                return 2
            result = json.loads(lines[-1])
            if args.scale:
                print(
                    f"{variant:<24} {result['wall_s']:7.2f} {result['requests_per_s']:7.0f} "
                    f"{result['cpu_s']:7.2f} {result['loop_cpu_s']:11.2f} {result['peak_rss_mib']:13.0f}"
                )
                server.stats()
                continue
            print(
                f"{variant:<24} {result['wall_s']:7.3f} {result['wall_min_s']:7.3f} {result['cpu_s']:7.3f} "
                f"{result['loop_cpu_s']:11.3f} {result['loop_cpu_s'] * 1000 / (64 * 4):16.2f}"
            )
            server.stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
