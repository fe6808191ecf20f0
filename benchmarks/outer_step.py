"""Time one HUME outer iteration: hume_jax against the PyTorch reference, same run, same threads.

    python benchmarks/outer_step.py --config small --threads 2
    python benchmarks/outer_step.py --config paper --threads 1 --repeats 3
    python benchmarks/outer_step.py --config raw --threads 2   # raw 1024/1280-d inputs, cpu preset
    python benchmarks/outer_step.py --config imagenet          # memory only (compiled, not run)

Sample output (2-core x86_64 CPU, jax 0.10.2, torch 2.13.0; see benchmarks/README.md):

    config small: n 5000, d1 128, d2 256, k 10, S 4, subset 2000, T 50, threads 2
    hume_jax  compile 2.9 s   median 0.215 s/it
    torch     median 0.410 s/it   ratio torch/hume_jax 1.9x
    ...

Times alternate hume_jax and reference iterations after a warm-up and report medians;
compile time is reported apart. Two bounds of the kernel as written follow, and which one
binds: the memory-traffic bound (bytes the kernel reads per outer iteration over this
machine's streaming read bandwidth: 4 passes over each inner block per step with
whole-matrix products, 2 with row blocks, which read each block once forward and once
backward while it sits in cache) and the compute bound (8 rows d2 k FLOPs per inner step and
subset over this machine's measured rate for the same product shapes). This is a timing
script for the PyTorch reference of the tests (``torch_reference.py``); speed claims against
a faster, lean reference are made by ``reference_speed.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

CONFIGS = {
  "small": dict(n=5000, d1=128, d2=256, k=10, num_subsets=4, subset_size=2000, adaptation_steps=50),
  "paper": dict(n=10000, d1=512, d2=768, k=10, num_subsets=20, subset_size=10000, adaptation_steps=300),
  # Raw features as extract_torch gives them (Open-NSFW 1024-d, EfficientNet-Lite0 1280-d) at the cpu preset.
  "raw": dict(n=10000, d1=1024, d2=1280, k=10, num_subsets=8, subset_size=2000, adaptation_steps=50),
  "imagenet": dict(
    n=1281167,
    d1=2048,
    d2=1536,
    k=1000,
    num_subsets=20,
    subset_size=20000,
    adaptation_steps=100,
    train_fraction=0.7,
    rand_init=False,
    anneal=False,
  ),
}


def parse() -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", choices=sorted(CONFIGS), default="small")
  p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU cores for both (default: all)")
  p.add_argument("--repeats", type=int, default=5, help="timed iterations of each (default 5)")
  p.add_argument("--no-torch", action="store_true", help="time hume_jax only")
  p.add_argument("--subset-chunk", type=int, default=None, help="hume_jax: subsets per gradient chunk")
  p.add_argument("--remat", action="store_true", help="hume_jax: rematerialise the inner steps")
  p.add_argument("--row-block", type=int, default=None, help="hume_jax: rows per inner block (-1 auto, 0 whole)")
  p.add_argument(
    "--shared-rows",
    type=int,
    default=None,
    choices=(-1, 0, 1),
    help="hume_jax: subsets as row masks over all rows (-1 auto, 0 off, 1 on)",
  )
  p.add_argument("--adaptation-steps", type=int, default=None, help="override T (e.g. to show compile time vs T)")
  p.add_argument("--compile-only", action="store_true", help="report compile time and memory, run nothing")
  p.add_argument("--json", help="also write the results to this file")
  return p.parse_args()


def stream_bandwidth(mbytes: int = 512) -> float:
  """Read bandwidth in bytes/s: median of summing a float32 array larger than the caches."""
  import numpy as np

  a = np.ones(mbytes * 2**20 // 4, np.float32)
  times = []
  for _ in range(5):
    t = time.perf_counter()
    a.sum()
    times.append(time.perf_counter() - t)
  return a.nbytes / float(np.median(times))


def main() -> None:
  args = parse()
  # Both libraries size their thread pools from the CPUs this process may use.
  os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.threads]))
  import jax
  import jax.numpy as jnp
  import numpy as np

  from hume_jax import Execution, HumeConfig, init_state, outer_step
  from hume_jax.core._plan import execution_plan

  spec = dict(CONFIGS[args.config])
  n, d1, d2 = spec.pop("n"), spec.pop("d1"), spec.pop("d2")
  cfg = HumeConfig(**spec)
  given = {f: getattr(args, f) for f in ("subset_chunk", "row_block", "shared_rows") if getattr(args, f) is not None}
  execution = Execution(**given, remat=bool(args.remat))
  if args.adaptation_steps:
    cfg = dataclasses.replace(cfg, adaptation_steps=args.adaptation_steps)
  m, n_tr = cfg.subset_sizes(n)
  chunk, row_block, shared = execution_plan(cfg, n, d2, execution=execution)
  device = jax.devices()[0]
  print(
    f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} used; jax {jax.__version__} "
    f"on {device.platform} ({device.device_kind})"
  )
  print(
    f"config {args.config}: n {n}, d1 {d1}, d2 {d2}, k {cfg.k}, S {cfg.num_subsets}, subset {m} "
    f"(train {n_tr}), T {cfg.adaptation_steps}, subsets per chunk {chunk}, rows per block {row_block}, "
    f"shared rows {shared}, remat {execution.remat}"
  )
  result: dict = {
    "config": args.config,
    "threads": args.threads,
    "device": device.device_kind,
    "spec": CONFIGS[args.config],
    "subset_chunk": chunk,
    "row_block": row_block,
    "shared_rows": shared,
    "remat": execution.remat,
  }

  step = jax.jit(lambda s, p1, p2: outer_step(s, p1, p2, config=cfg, execution=execution))
  state = init_state(jax.random.PRNGKey(0), cfg, d1, d2)
  if args.config == "imagenet":
    shapes = (
      jax.eval_shape(lambda: state),
      jax.ShapeDtypeStruct((n, d1), jnp.float32),
      jax.ShapeDtypeStruct((n, d2), jnp.float32),
    )
  else:
    rng = np.random.default_rng(0)
    phi1 = rng.normal(size=(n, d1)).astype(np.float32)
    phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
    phi2 = rng.normal(size=(n, d2)).astype(np.float32)
    shapes = (state, phi1, phi2)
  t = time.perf_counter()
  compiled = step.lower(*shapes).compile()
  result["compile_s"] = time.perf_counter() - t
  mem = compiled.memory_analysis()
  peak = None
  if mem is not None:
    peak = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes
    result.update(temp_bytes=mem.temp_size_in_bytes, argument_bytes=mem.argument_size_in_bytes, peak_bytes=peak)
    print(
      f"XLA memory analysis: arguments {mem.argument_size_in_bytes / 2**30:.2f} GiB, temporaries "
      f"{mem.temp_size_in_bytes / 2**30:.2f} GiB, peak {peak / 2**30:.2f} GiB"
    )
  print(f"hume_jax  compile {result['compile_s']:.1f} s")
  if args.config == "imagenet" or args.compile_only:
    _finish(args, result)
    return

  phi1_d, phi2_d = jnp.asarray(phi1), jnp.asarray(phi2)
  jax.block_until_ready(compiled(state, phi1_d, phi2_d))  # warm-up
  ref_step = None
  if not args.no_torch:
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as tr

    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result["torch_device"] = str(dev)
    enc = tr.make_task_encoder(d1, cfg.k).to(dev)
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.outer_lr)
    p1, p2 = torch.from_numpy(phi1).to(dev), torch.from_numpy(phi2).to(dev)
    nrng = np.random.default_rng(0)

    def ref_step():
      subsets, inits = tr.random_batch(n, d2, cfg.k, cfg.num_subsets, cfg.subset_size, nrng)
      subsets = [s.to(dev) for s in subsets]
      inits = [(w.to(dev), b.to(dev)) for w, b in inits]
      tr.outer_iteration(
        enc,
        opt,
        p1,
        p2,
        subsets,
        n_tr,
        inits,
        tau=cfg.tau,
        inner_lr=cfg.inner_lr,
        steps=cfg.adaptation_steps,
        H_reg=cfg.H_reg,
      )
      if dev.type == "cuda":
        torch.cuda.synchronize()

    ref_step()  # warm-up

  times_j, times_t = [], []
  for _ in range(args.repeats):
    t = time.perf_counter()
    state, metrics = compiled(state, phi1_d, phi2_d)
    jax.block_until_ready(metrics)
    times_j.append(time.perf_counter() - t)
    if ref_step is not None:
      t = time.perf_counter()
      ref_step()
      times_t.append(time.perf_counter() - t)
  result["hume_jax_s"] = float(np.median(times_j))
  print(f"hume_jax  median {result['hume_jax_s']:.3f} s/it  (runs: {', '.join(f'{x:.3f}' for x in times_j)})")
  if times_t:
    result["torch_s"] = float(np.median(times_t))
    result["ratio"] = result["torch_s"] / result["hume_jax_s"]
    print(
      f"torch     median {result['torch_s']:.3f} s/it  (runs: {', '.join(f'{x:.3f}' for x in times_t)})"
      f"   ratio torch/hume_jax {result['ratio']:.2f}x"
    )
  # Two bounds of the kernel as written. Memory traffic: passes over each inner block [rows, d2]
  # per step (4 for whole-matrix products: 2 forward, 2 backward; 2 for row blocks, each read
  # once forward and once backward while in cache). Compute: 8 rows d2 k FLOPs per step and
  # subset (4 products) at this machine's rate for the same product shapes.
  rows = n if shared else n_tr
  passes = 2 if row_block else 4
  bytes_moved = passes * cfg.adaptation_steps * cfg.num_subsets * rows * d2 * 4
  flops = 8 * cfg.adaptation_steps * cfg.num_subsets * rows * d2 * cfg.k
  bw = stream_bandwidth()
  rate = product_rate(chunk * cfg.k if shared else cfg.k, min(rows, row_block) if row_block else rows, d2)
  memory_floor, compute_floor = bytes_moved / bw, flops / rate
  result.update(
    bytes_per_iter=bytes_moved,
    bandwidth_Bps=bw,
    memory_floor_s=memory_floor,
    flops_per_iter=flops,
    product_flops_per_s=rate,
    compute_floor_s=compute_floor,
  )
  print(
    f"memory-traffic bound: {passes} passes, {bytes_moved / 1e9:.1f} GB per iteration / {bw / 1e9:.1f} GB/s "
    f"= {memory_floor:.3f} s"
  )
  print(
    f"compute bound: {flops / 1e9:.1f} GFLOP per iteration / {rate / 1e9:.1f} GFLOP/s (this machine, these "
    f"product shapes) = {compute_floor:.3f} s"
  )
  binding = "compute" if compute_floor >= memory_floor else "memory traffic"
  print(f"the {binding} bound binds; hume_jax at {result['hume_jax_s'] / max(memory_floor, compute_floor):.2f}x it")
  _finish(args, result)


def product_rate(k: int, rows: int, d2: int) -> float:
  """FLOP/s of the inner step's two product shapes, ``[k, d2] x [d2, rows]`` and ``[k, rows] x
  [rows, d2]``, on this machine (XLA, the threads this process may use), median of 5."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  rng = np.random.default_rng(0)
  reps = max(1, int(2e9 // (2 * k * rows * d2)))
  total = []
  for a_shape, b_shape in (((k, d2), (d2, rows)), ((k, rows), (rows, d2))):
    a = jnp.asarray(rng.normal(size=a_shape), jnp.float32)
    b = jnp.asarray(rng.normal(size=b_shape), jnp.float32)
    f = jax.jit(
      lambda a, b: jax.lax.fori_loop(
        0, reps, lambda i, acc: acc + (a + acc[0, 0] * 0) @ b, jnp.zeros((a_shape[0], b_shape[1]), jnp.float32)
      )
    )
    f(a, b).block_until_ready()
    times = []
    for _ in range(5):
      t = time.perf_counter()
      f(a, b).block_until_ready()
      times.append(time.perf_counter() - t)
    total.append(float(np.median(times)))
  return 2 * (2 * k * rows * d2 * reps) / sum(total)


def _finish(args, result):
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
