#!/usr/bin/env bash
# Trainer throughput on one GPU: gpt2-124m, bf16, compiled, batch 16 and 32; tokens/s and MFU
# against nanoGPT's bench.py on the same card (SPEC "Benchmarks"). Self-contained: it makes its
# own token shards and needs only torch, numpy and this checkout (no network).
#
#   bench/trainer_gpu.sh                 # the benchmark; writes bench/results/trainer_gpu.json
#   bench/trainer_gpu.sh --smoke         # a few tiny steps on any machine, to check the script
#   PYTHON=/path/to/python bench/trainer_gpu.sh --steps 100
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" -m bench.trainer_gpu "$@"
