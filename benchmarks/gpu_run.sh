#!/usr/bin/env bash
# On the GPU machine (no network): install the carried wheels (.whl/, made here by
# `make gpu-wheels`: qfeat's own wheel and the packages that machine lacks) into
# /tmp/site and run the GPU benchmark, writing its JSON to ${OUT:-benchmarks/results}/gpu.json.
# One command, well inside 10 minutes (device `run` with carry [".whl"]):
#   bash benchmarks/gpu_run.sh            (add --dry-run to try it on a CPU)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${OUT:-$repo/benchmarks/results}" && cd "${OUT:-$repo/benchmarks/results}" && pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$repo"/.whl/*.whl
# run outside the checkout: its top-level qfeat/ folder would shadow the installed package
rm -rf /tmp/qfeat-bench && mkdir -p /tmp/qfeat-bench && cp -r "$repo/benchmarks" /tmp/qfeat-bench/
cd /tmp/qfeat-bench
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m benchmarks.gpu --out "$out/gpu.json" "$@"
