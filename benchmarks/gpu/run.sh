#!/usr/bin/env bash
# One command on any lent GPU (<= 8 minutes in all): the paper U-Net's training throughput and
# MFU per precision, peak memory, DDPM-avg / DDIM-avg latency, the authors' recipe beside ours
# (benchmarks/gpu/bench_gpu.py, writes benchmarks/results/gpu_<device>.md), then the full-mode
# smoke at the paper's sizes (benchmarks/gpu/full_mode_smoke.py).
#   bash benchmarks/gpu/run.sh            # extra arguments go to bench_gpu.py, e.g. --no-compile
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
start=$(date +%s)
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this benchmark needs a GPU (try --device cpu --smoke on bench_gpu.py)')"
# Budgets: 330 s for the benchmark (compilation is the slow part), 150 s for the smoke.
timeout 330 "$PY" benchmarks/gpu/bench_gpu.py --device cuda "$@" ||
  echo "benchmark stopped (time budget or error); the rows measured so far are in benchmarks/results/gpu_*.md"
echo "benchmark finished after $(( $(date +%s) - start )) s"
timeout 150 "$PY" benchmarks/gpu/full_mode_smoke.py --device cuda
echo "run.sh finished in $(( $(date +%s) - start )) s"
