"""What every benchmark shares: result types, the test server process, workers, the machine, reports.

The drivers (``best_of_n.py``, ``sweep.py``, ``batch.py``, ``soak.py``) and the profiling scripts import
the driver half; the workers (``*_worker.py``, run in fresh processes) import the worker half
(``load_library``, the reward, memory and thread-CPU readings). Only the standard library is imported at
module level, so importing this costs a worker nothing before it imports the library it measures.
Scripts under ``benchmarks/`` import it as ``_common`` (their own directory is first on ``sys.path``).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER = HERE / "bench_server.py"
#: where the drivers write ``<name>.json`` and ``<name>.md``; ``BENCH_RESULTS_DIR`` moves it (smoke runs)
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
#: where the plots the docs show are written (into ``RESULTS`` instead when ``BENCH_RESULTS_DIR`` is set)
ASSETS = RESULTS if os.environ.get("BENCH_RESULTS_DIR") else ROOT / "docs" / "assets" / "benchmarks"

MODEL = "openai/bench-model"
API_KEY = "bench-dummy-key"
#: what serves ``openai/`` model strings once plugins/bestofn-openai-http is installed (the default then)
OPENAI_HTTP_BACKEND = "openai_http:openai"
#: the built-in litellm backend, chosen explicitly with ``LM(..., backend=...)``
LITELLM_BACKEND = "litellm:litellm"

#: every library id a worker knows -> its column title
LIBRARIES = {
    "ours": "bestofn-core (litellm backend)",
    "ours-openai-http": "bestofn-core (openai_http backend, the default)",
    "dspy": "DSPy 3.4.1 (default engine)",
    "dspy-litellm": 'DSPy 3.4.1 (engine="litellm")',
}
#: short names, for ratio headers
SHORT = {
    "ours": "ours (litellm)",
    "ours-openai-http": "ours (openai_http)",
    "dspy": "DSPy (default)",
    "dspy-litellm": "DSPy (litellm)",
}
#: packages whose versions every result records
PACKAGES = (
    "bestofn-core",
    "bestofn-openai-http",
    "bestofn-llamacpp",
    "llama_cpp_python",
    "dspy",
    "litellm",
    "openai",
    "httpx",
    "httpcore",
    "aiohttp",
    "orjson",
    "matplotlib",
)


# ---------------------------------------------------------------- results


@dataclass
class Stat:
    """Median and minimum of a list of samples, in the unit the samples are in."""

    median: float
    min: float
    samples: list[float]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        """Summarise ``samples`` (at least one)."""
        return cls(statistics.median(samples), min(samples), list(samples))


@dataclass
class Target:
    """One requirement of an issue and whether this run met it."""

    name: str
    value: str
    target: str
    met: bool


class MeasurementError(RuntimeError):
    """A measurement could not be taken (a worker crashed, timed out, or an example failed)."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank: a value that was measured)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


# ---------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    """Every child's environment: litellm reads its bundled cost map (no network), no PYTHONPATH."""
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


class Server:
    """The running ``bench_server.py`` process: its URL and its request statistics."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stats(self) -> dict[str, int]:
        """Requests, choices and peak in-flight requests since the previous call."""
        stdin: IO[str] | None = self.process.stdin
        stdout: IO[str] | None = self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write("stats\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise MeasurementError("the test server exited")
        answer: dict[str, int] = json.loads(line)
        return answer


@contextmanager
def test_server(latency: float) -> Iterator[Server]:
    """Run ``bench_server.py`` as a separate process (its CPU is not the client's); yield it."""
    command = [sys.executable, str(SERVER), "--latency", str(latency)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=ROOT
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise MeasurementError(f"the test server did not start (first line: {url!r})")
        yield Server(process, url)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: the server stops
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(
    worker: Path,
    library: str,
    measurement: str,
    *options: str,
    timeout: float = 300,
    allow_failed_examples: bool = False,
) -> dict[str, Any]:
    """Run ``worker LIBRARY MEASUREMENT OPTIONS...`` in a fresh process and return its JSON result.

    The result is the worker's last stdout line. Raises ``MeasurementError`` when the worker fails,
    prints nothing, runs past ``timeout`` seconds, or reports failed examples (``failed_examples``;
    with ``allow_failed_examples`` the caller checks them instead).
    """
    command = [sys.executable, str(worker), library, measurement, *options]
    print(f"  {LIBRARIES.get(library, library):<35} {measurement:<9}", end="", flush=True)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        print(" timed out")
        raise MeasurementError(f"{library} {measurement} ran past {timeout:.0f} s") from exc
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        print(" failed")
        sys.stderr.write(completed.stderr[-4000:])
        raise MeasurementError(f"{library} {measurement} failed with exit status {completed.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result.get("failed_examples") and not allow_failed_examples:
        print(" failed")
        sys.stderr.write(completed.stderr[-4000:])
        raise MeasurementError(f"{library} {measurement}: {result['failed_examples']} example(s) failed")
    return result


# ---------------------------------------------------------------- machine


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Where the numbers were taken: date, CPUs, CPU model, memory, Python, versions, load average."""
    cpu_model = platform.processor() or "unknown"
    memory_gib: float | None = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average": load_average(),
        "nproc": available,
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# ---------------------------------------------------------------- reports


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def machine_markdown(info: dict[str, Any]) -> list[str]:
    """The machine, versions and load average as markdown lines."""
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items() if version)
    after = info.get("load_average_after")
    load = f"Load average (1, 5, 15 min) before the run: {_load(info['load_average'])}"
    if after:
        load += f"; after: {_load(after)}"
    return [
        f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}, {info['platform']}. {load} (other work on the machine shows here).",
        f"Packages: {versions}.",
    ]


def targets_markdown(targets: Sequence[Target]) -> list[str]:
    """The targets as a markdown table."""
    lines = ["| Target | This run | Required | Met |", "|---|---:|---:|---|"]
    lines += [f"| {t.name} | {t.value} | {t.target} | {'yes' if t.met else '**NO**'} |" for t in targets]
    return lines


def write_results(
    name: str, info: dict[str, Any], config: dict[str, Any], summary: Any, targets: Sequence[Target], raw: Any
) -> None:
    """Write ``RESULTS/<name>.json`` (everything) next to the ``.md`` the caller wrote or will write."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "config": config,
        "summary": summary,
        "targets": [asdict(target) for target in targets],
        "raw": raw,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")


def finish(name: str, report: str, targets: Sequence[Target]) -> int:
    """Write ``RESULTS/<name>.md``, print the report and the targets' verdict; the exit status (0 or 1)."""
    (RESULTS / f"{name}.md").write_text(report)
    print()
    print(report)
    print(f"wrote {_shown(RESULTS / name)}.json and {name}.md")
    missed = [target.name for target in targets if not target.met]
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def two_plots() -> tuple[Any, Any]:
    """A figure with two plots side by side (12 x 5 inches), drawn off screen (matplotlib's Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(12, 5), dpi=100)


def save_figure(figure: Any, path: Path, footer: str) -> None:
    """Write ``figure`` to the PNG ``path`` with ``footer`` (the machine, the versions) in small print."""
    import matplotlib.pyplot as plt

    figure.text(0.01, 0.01, footer, fontsize=7, color="dimgrey")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    # no software/date metadata in the file, so an unchanged plot gives an unchanged PNG
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


# ---------------------------------------------------------------- worker side


def never_good_enough(inputs: dict[str, Any], prediction: Any) -> float:
    """The reward: always 0.0, so the threshold of 1.0 is never reached and every attempt runs."""
    return 0.0


def load_library(library: str, url: str, *, cache: bool = False, **settings: Any) -> Any:
    """Import ``library``'s package, point its LM at ``url`` and configure it; return the package.

    ``ours`` and ``ours-openai-http`` return ``bestofn_core``: ``ours`` with
    ``LM(..., backend="litellm:litellm")``, ``ours-openai-http`` with a plain ``LM("openai/...")``, which
    the installed bestofn-openai-http plugin serves (checked: a missing plugin is an error, not a silent
    fallback to litellm). ``dspy`` and ``dspy-litellm`` return ``dspy`` (the latter with
    ``LM(..., engine="litellm")``). Model ``openai/bench-model``, a dummy API key, temperature 1.0.
    ``cache=False`` turns every response cache off; ``cache=True`` keeps the memory cache at its default
    bound and turns the disk cache off. ``settings`` go to ``configure``.
    """
    if library.startswith("ours"):
        import bestofn_core as package
        from bestofn_core.plugins import get_registry

        backend = {"backend": LITELLM_BACKEND} if library == "ours" else {}
        served_by = get_registry().lm_backend_for(MODEL, **backend).qualified_name
        expected = LITELLM_BACKEND if library == "ours" else OPENAI_HTTP_BACKEND
        if served_by != expected:
            raise RuntimeError(
                f"{library}: {MODEL} is served by {served_by}, not {expected}: is the plugin installed?"
            )
    elif library.startswith("dspy"):
        import dspy as package

        backend = {"engine": "litellm"} if library == "dspy-litellm" else {}
    else:
        raise ValueError(f"unknown library {library!r}")
    package.configure_cache(enable_disk_cache=False, enable_memory_cache=cache)
    lm = package.LM(MODEL, api_base=url, api_key=API_KEY, temperature=1.0, cache=cache, **backend)
    package.configure(lm=lm, **settings)
    return package


def rss_mib() -> float:
    """The process's resident set size now (``VmRSS``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def thread_cpu_seconds(name: str) -> float | None:
    """CPU seconds (user + system) the thread called ``name`` has used so far; ``None`` if there is none."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            try:
                stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            except OSError:
                return None
            fields = stat.rpartition(")")[2].split()  # fields from the 3rd on: the name may hold spaces
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def history_entries() -> int | None:
    """Entries in bestofn-core's process-wide LM call history (``None`` when it is not importable)."""
    try:
        from bestofn_core.lm.history import GLOBAL_HISTORY
    except ImportError:
        return None
    return len(GLOBAL_HISTORY)


# ---------------------------------------------------------------- ratios

#: bestofn-core's library ids, and the DSPy ones they are compared with
OURS = ("ours", "ours-openai-http")
PEERS = ("dspy", "dspy-litellm")
#: the like-for-like pairs: the lean HTTP clients, and litellm on both sides
LIKE_FOR_LIKE = (("ours-openai-http", "dspy"), ("ours", "dspy-litellm"))
#: every (ours, peer) pair, the like-for-like ones first
PAIRS = (*LIKE_FOR_LIKE, ("ours", "dspy"), ("ours-openai-http", "dspy-litellm"))


def speedups(seconds: dict[str, float]) -> dict[str, dict[str, float]]:
    """``peer time / ours time`` for every (ours, peer) pair present: above 1, bestofn-core is faster."""
    return {
        ours: {peer: seconds[peer] / seconds[ours] for peer in PEERS if peer in seconds}
        for ours in OURS
        if ours in seconds
    }


def ratio_markdown(
    ratios: dict[str, dict[str, float]], what: str, bold: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """A table of ``ratios[ours][peer]``: one row per bestofn-core backend, one column per DSPy engine.

    ``what`` names the ratio in the corner cell; pairs in ``bold`` are printed in bold (the checked ones).
    """
    peers = [peer for peer in PEERS if any(peer in row for row in ratios.values())]
    lines = [
        f"| {what} | " + " | ".join(f"vs {LIBRARIES[peer]}" for peer in peers) + " |",
        "|---|" + "---:|" * len(peers),
    ]
    for ours, row in ratios.items():
        cells = []
        for peer in peers:
            if peer not in row:
                cells.append("n/a")
                continue
            text = f"{row[peer]:.2f}x"
            cells.append(f"**{text}**" if (ours, peer) in bold else text)
        lines.append(f"| {LIBRARIES[ours]} | " + " | ".join(cells) + " |")
    return lines


def sampler_params(text: str | None) -> dict[str, float]:
    """``"min_p=0.0,top_k=40"`` -> ``{"min_p": 0.0, "top_k": 40}``: sampling params over a backend's
    defaults, as the ``--sampler`` options of the embedded model's benchmarks take them."""
    params: dict[str, float] = {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        params[name.strip()] = int(value) if name.strip() == "top_k" else float(value)
    return params
