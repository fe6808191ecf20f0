"""TURTLE mode per iteration: hume_jax against the PyTorch TURTLE reference, same run, same cores.

    python benchmarks/turtle_speed.py --threads 2                 # 10k x (1024, 1280), TURTLE's defaults
    python benchmarks/turtle_speed.py --threads 2 --full          # and the whole 6000-iteration run, timed

At TURTLE's defaults (batch 10000, 10 inner Adam steps, cold start, gamma 10) on two spaces
shaped like ``python -m extract_torch``'s Open-NSFW (1024-d) and EfficientNet-Lite0 (1280-d)
features of 10,000 images. The reference is ``benchmarks/torch_reference.turtle_train``, written
like the official ``run_turtle.py``. Iterations alternate after a warm-up of each; medians of
CPU seconds (user + system of this process) and wall seconds are reported, with compile time
apart. ``--full`` then times ``python -m hume_jax.train --method turtle`` end to end on the same
inputs (6000 iterations, as a user runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse() -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=10000)
  p.add_argument("--dims", type=int, nargs="+", default=[1024, 1280], help="dimension of each space")
  p.add_argument("--k", type=int, default=10)
  p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU cores for both (default: all)")
  p.add_argument("--repeats", type=int, default=15, help="timed iterations of each (default 15)")
  p.add_argument("--full", action="store_true", help="also time the whole CLI run (6000 iterations)")
  p.add_argument("--json", help="also write the results to this file")
  return p.parse_args()


def inputs(n, dims, k):
  """Non-negative, clustered features like CNN pools (ReLU), float32."""
  import numpy as np

  rng = np.random.default_rng(0)
  y = rng.integers(0, k, n)
  return [np.maximum(rng.normal(size=(k, d))[y] + 1.5 * rng.normal(size=(n, d)), 0).astype(np.float32) for d in dims]


def main() -> None:
  args = parse()
  cores = set(sorted(os.sched_getaffinity(0))[: args.threads])
  os.sched_setaffinity(0, cores)
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch

  from hume_jax.training.turtle import TurtleConfig, init_turtle, turtle_step

  torch.set_num_threads(args.threads)
  sys.path.insert(0, HERE)
  import torch_reference as tr

  cfg = TurtleConfig(k=args.k)
  phis = inputs(args.n, args.dims, args.k)
  print(
    f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} used; jax {jax.__version__}, "
    f"torch {torch.__version__}"
  )
  print(
    f"TURTLE: n {args.n}, dims {args.dims}, k {args.k}, batch {cfg.batch_size}, inner steps {cfg.inner_steps}, "
    f"{cfg.num_iters} iterations"
  )

  xs = tuple(jnp.asarray(x) for x in phis)
  state = init_turtle(jax.random.PRNGKey(0), cfg, tuple(args.dims))
  t = time.perf_counter()
  step = jax.jit(lambda s, x: turtle_step(s, x, config=cfg)).lower(state, xs).compile()
  compile_s = time.perf_counter() - t
  jax.block_until_ready(step(state, xs))

  torch.manual_seed(0)
  heads = [tr.make_turtle_head(d, args.k) for d in args.dims]
  tphis = [torch.from_numpy(x) for x in phis]
  rng = np.random.default_rng(0)

  def torch_iteration():
    idx = torch.from_numpy(rng.permutation(args.n)[: cfg.batch_size])
    inits = []
    for d in args.dims:
      lin = torch.nn.Linear(d, args.k)
      inits.append((lin.weight.detach(), lin.bias.detach()))
    tr.turtle_train(
      heads,
      tphis,
      [(idx, inits)],
      inner_lr=cfg.inner_lr,
      outer_lr=cfg.outer_lr,
      inner_steps=cfg.inner_steps,
      gamma=cfg.gamma,
      warm_start=False,
    )

  torch_iteration()
  times = {"hume_jax": ([], []), "torch": ([], [])}
  for _ in range(args.repeats):
    c, w = time.process_time(), time.perf_counter()
    state, out = step(state, xs)
    jax.block_until_ready(out)
    times["hume_jax"][0].append(time.process_time() - c)
    times["hume_jax"][1].append(time.perf_counter() - w)
    c, w = time.process_time(), time.perf_counter()
    torch_iteration()
    times["torch"][0].append(time.process_time() - c)
    times["torch"][1].append(time.perf_counter() - w)
  med = {name: (statistics.median(v[0]), statistics.median(v[1])) for name, v in times.items()}
  print(f"hume_jax compile {compile_s:.1f} s")
  print("| program | CPU s/it | wall s/it | torch / this (CPU) | 6000 iterations (wall) |")
  print("|---|---|---|---|---|")
  for name, (cpu, wall) in med.items():
    print(f"| {name} | {cpu:.4f} | {wall:.4f} | {med['torch'][0] / cpu:.2f}x | {cfg.num_iters * wall / 60:.1f} min |")
  result = {
    "n": args.n,
    "dims": args.dims,
    "k": args.k,
    "threads": args.threads,
    "compile_s": compile_s,
    "cpu_s": {k: v[0] for k, v in times.items()},
    "wall_s": {k: v[1] for k, v in times.items()},
    "median": med,
  }

  if args.full:
    with tempfile.TemporaryDirectory() as tmp:
      paths = []
      for i, x in enumerate(phis):
        paths.append(os.path.join(tmp, f"phi{i + 1}.npy"))
        np.save(paths[-1], x)
      cmd = [
        sys.executable,
        "-m",
        "hume_jax.train",
        "--method",
        "turtle",
        "--phi1",
        paths[0],
        "--phi2",
        paths[1],
        "--k",
        str(args.k),
        "--out",
        os.path.join(tmp, "run"),
        "--no-plots",
        "--quiet",
      ]
      t = time.perf_counter()
      proc = subprocess.Popen(cmd, cwd=os.path.dirname(HERE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
      out = proc.stdout.read()
      _, status, usage = os.wait4(proc.pid, 0)
      wall = time.perf_counter() - t
      if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(out.decode()[-3000:])
      cpu = usage.ru_utime + usage.ru_stime
      print(
        f"whole CLI run ({cfg.num_iters} iterations, start-up and evaluation included): "
        f"{wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU"
      )
      result["full_run"] = {"wall_s": wall, "cpu_s": cpu}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
