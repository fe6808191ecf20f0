#!/usr/bin/env bash
# The GPU benchmark in one call: hume_jax's outer iteration at the small and paper configs,
# beside the PyTorch reference on the same GPU, and the imagenet config's compiled memory.
# Not yet run on a GPU: its duration and the memory figures in benchmarks/README.md come from
# CPU timings and XLA's memory analysis of the CPU-compiled step, not from a GPU.
# Run from the repository root: bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results}
mkdir -p "$out"
python -c "import jax; assert jax.devices()[0].platform == 'gpu'" 2>/dev/null || pip install -q -e ".[cuda]"
python -c "import torch" 2>/dev/null || pip install -q torch
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python benchmarks/outer_step.py --config small --repeats 10 --json "$out/gpu_small.json"
python benchmarks/outer_step.py --config paper --repeats 5 --json "$out/gpu_paper.json"
python benchmarks/outer_step.py --config imagenet --subset-chunk 5 --remat --json "$out/gpu_imagenet.json"
