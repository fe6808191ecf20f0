#!/usr/bin/env bash
# The GPU benchmark in one call, on a bare offline machine where JAX with CUDA and torch are
# already installed: nothing is installed or fetched (the project is put on PYTHONPATH).
#
#   bash benchmarks/gpu.sh [RESULTS_DIR]     # about 20 minutes; each step has a time limit
#
# Writes every figure to RESULTS_DIR (default benchmarks/results/gpu-<date>): the GPU and versions,
# hume_jax's outer iteration at the small and paper configs beside the PyTorch reference on the
# same GPU (benchmarks/torch_reference.py, the official-style PyTorch step, on CUDA), and the
# compiled memory of the ImageNet config (XLA's analysis of the GPU-compiled step), and the scale
# benchmark (every stage of the default search at 10k-100k rows and 10-1000 classes, and the
# ImageNet-shaped search), and the ImageNet-shaped command line at full n (benchmarks/imagenet_cli.py).
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repo/benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # the two frameworks share the GPU one after the other
log="$out/gpu.log"
step() {  # step SECONDS NAME COMMAND...: runs one measurement with a limit, keeps going on failure
  local limit=$1 name=$2
  shift 2
  echo "== $name" | tee -a "$log"
  if timeout "$limit" "$@" >>"$log" 2>&1; then echo "   ok" | tee -a "$log"; else echo "   failed or over ${limit} s (see $log)" | tee -a "$log"; fi
}

python - <<'EOF' >"$out/versions.json" 2>>"$log" || { echo "JAX with a GPU backend is needed (pip install 'jax[cuda12]')"; exit 1; }
import json, platform, jax
devices = jax.devices()
assert devices[0].platform == "gpu", f"JAX sees no GPU: {devices}"
info = {"python": platform.python_version(), "jax": jax.__version__, "devices": [d.device_kind for d in devices]}
try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.cuda.is_available())
except ImportError:
    info["torch"] = None
print(json.dumps(info, indent=1))
EOF
cat "$out/versions.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia-smi.csv" 2>>"$log" || true

step 150 "small config: hume_jax and torch_reference.py on the GPU" \
  python "$repo/benchmarks/outer_step.py" --config small --repeats 20 --json "$out/small.json"
step 200 "paper config: hume_jax and torch_reference.py on the GPU" \
  python "$repo/benchmarks/outer_step.py" --config paper --repeats 3 --json "$out/paper.json"
step 120 "imagenet config: compiled memory of the GPU plan (remat, 5 subsets per chunk)" \
  python "$repo/benchmarks/outer_step.py" --config imagenet --subset-chunk 5 --remat --compile-only \
  --json "$out/imagenet_memory.json"
step 200 "scale: every stage of the default search at n = 10k and 100k, k = 10, 100 and 1000 (benchmarks/scale.py)" \
  python "$repo/benchmarks/scale.py" --n 10000,100000 --k 10,100,1000 --d 256 --json "$out/scale.json"
step 150 "ImageNet-shaped: k = 1000, d1 = 2048, d2 = 1536, config.IMAGENET, n = 50,000 (benchmarks/scale.py)" \
  python "$repo/benchmarks/scale.py" --imagenet 50000 --iters 2 --json "$out/scale_imagenet.json"
step 600 "ImageNet-shaped command line at full n: --preset auto and --preset imagenet on memory-mapped .npy files (benchmarks/imagenet_cli.py; 18 GB of data in /tmp)" \
  python "$repo/benchmarks/imagenet_cli.py" --out /tmp/hume_imagenet_cli --budget 240 --limit 280
cp /tmp/hume_imagenet_cli/imagenet_cli.json "$out/" 2>/dev/null
echo "results in $out"
