"""CPU seconds per HUME outer iteration: hume_jax's CLI against two PyTorch references.

    python benchmarks/reference_speed.py --fast-ref PATH/torch_hume_ref.py --config small --threads 1 2
    python benchmarks/reference_speed.py --fast-ref PATH/torch_hume_ref.py --config paper --threads 1 \
        --rounds 1 --no-slow-ref

The three programs, each in its own process pinned to the first ``--threads`` cores, in
alternation (round 1: fast, slow, hume_jax; round 2: the same ...), on the same ``.npy`` inputs:

- **fast reference**: a lean, independent PyTorch HUME step (``torch_hume_ref.py``, passed by
  path; its ``--phi1/--phi2`` read the same files): ``create_graph=True`` per inner step,
  orthogonal parametrisation, Adam, clipping.
- **slow reference**: ``benchmarks/torch_reference.py``, the tests' parity oracle.
- **hume_jax**: ``python -m hume_jax.train`` as a user runs it (progress bar, checkpoints,
  final evaluation), with the config's hyperparameters as flags.

Per-iteration cost is what each program reports for its own iterations after the first
(``--warmup``), so that start-up, compilation and the final evaluation stay out: the fast
reference its per-iteration lines (``iter i (timed) ... cpu=...``), the slow reference the
same from a small driver, ``hume_jax`` the ``seconds`` and ``cpu_seconds`` of its
``log.jsonl`` (logged every 5 iterations; per iteration: the difference of consecutive
records / 5). CPU seconds (user + system of the process, robust to other load on a shared
machine) and wall seconds; medians over all measured iterations of all rounds.

It also reports the achieved GFLOP/s of the inner products (``8 n_tr d2 k`` FLOPs per inner
step and subset: two products forward, two in the reverse pass) and this machine's rate for
the same product shapes measured with XLA and with torch on the same cores, so the remaining
headroom is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIGS = {
  "small": dict(n=5000, d1=128, d2=256, k=10, num_subsets=4, subset_size=2000, adaptation_steps=50, warmup=5, iters=30),
  "paper": dict(
    n=10000, d1=512, d2=768, k=10, num_subsets=20, subset_size=10000, adaptation_steps=300, warmup=1, iters=1
  ),
  # Raw extract_torch features (Open-NSFW 1024-d, EfficientNet-Lite0 1280-d) at the cpu preset's cost.
  "raw": dict(n=10000, d1=1024, d2=1280, k=10, num_subsets=8, subset_size=2000, adaptation_steps=50, warmup=2, iters=5),
}
# The official hyperparameters that set the cost (the rest: official defaults in every program).
TAU, INNER_LR, OUTER_LR, H_REG, TRAIN_FRACTION = 0.1, 1e-3, 1e-3, 10.0, 0.9


def parse() -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--fast-ref", required=True, metavar="PATH", help="the fast reference script (torch_hume_ref.py)")
  p.add_argument("--config", choices=sorted(CONFIGS), default="small")
  p.add_argument("--threads", type=int, nargs="+", default=[1], help="core counts to measure (default: 1)")
  p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported (default 3)")
  p.add_argument("--warmup", type=int, default=None, help="iterations left out of each run (default: config's)")
  p.add_argument(
    "--iters",
    type=int,
    default=None,
    help="measured iterations per run and round (default: config's; hume_jax: a multiple of 5)",
  )
  p.add_argument("--no-slow-ref", action="store_true", help="skip benchmarks/torch_reference.py")
  p.add_argument("--json", help="also write the results to this file")
  return p.parse_args()


def synthetic_inputs(folder: str, c: dict) -> tuple[str, str]:
  """K-cluster embeddings like the fast reference's own (phi1 unit rows, phi2 raw), saved as .npy."""
  import numpy as np

  rng = np.random.default_rng(0)
  y = rng.integers(0, c["k"], c["n"])
  phi1 = (rng.normal(size=(c["k"], c["d1"]))[y] + 2.0 * rng.normal(size=(c["n"], c["d1"]))).astype(np.float32)
  phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
  phi2 = (rng.normal(size=(c["k"], c["d2"]))[y] + 2.0 * rng.normal(size=(c["n"], c["d2"]))).astype(np.float32)
  paths = os.path.join(folder, "phi1.npy"), os.path.join(folder, "phi2.npy")
  np.save(paths[0], phi1)
  np.save(paths[1], phi2)
  return paths


SLOW_REF_DRIVER = """
import sys, time, numpy as np, torch
sys.path.insert(0, {here!r})
import torch_reference as tr
torch.set_num_threads({threads}); torch.manual_seed(0)
phi1, phi2 = torch.from_numpy(np.load({p1!r})), torch.from_numpy(np.load({p2!r}))
n, d1 = phi1.shape; d2 = phi2.shape[1]
enc = tr.make_task_encoder(d1, {k}); opt = torch.optim.Adam(enc.parameters(), lr={outer_lr})
rng = np.random.default_rng(0); m = min(n, {subset_size}); n_tr = int(m * {train_fraction})
for i in range({total}):
  t, c = time.perf_counter(), time.process_time()
  subsets, inits = tr.random_batch(n, d2, {k}, {num_subsets}, {subset_size}, rng)
  tr.outer_iteration(enc, opt, phi1, phi2, subsets, n_tr, inits, tau={tau}, inner_lr={inner_lr},
                     steps={adaptation_steps}, H_reg={h_reg})
  print(f"iter {{i}} {{time.perf_counter() - t:.6f}} cpu={{time.process_time() - c:.6f}}", flush=True)
"""


def commands(program: str, c: dict, threads: int, warmup: int, iters: int, p1: str, p2: str, out: str, fast_ref: str):
  if program == "fast reference":
    return [
      sys.executable,
      fast_ref,
      "--phi1",
      p1,
      "--phi2",
      p2,
      "--k",
      str(c["k"]),
      "--subsets",
      str(c["num_subsets"]),
      "--subset-size",
      str(c["subset_size"]),
      "--inner-steps",
      str(c["adaptation_steps"]),
      "--iters",
      str(iters),
      "--warmup",
      str(warmup),
      "--threads",
      str(threads),
      "--tau",
      str(TAU),
      "--inner-lr",
      str(INNER_LR),
      "--outer-lr",
      str(OUTER_LR),
      "--h-reg",
      str(H_REG),
      "--train-fraction",
      str(TRAIN_FRACTION),
      "--json",
    ]
  if program == "slow reference":
    code = SLOW_REF_DRIVER.format(
      here=HERE,
      threads=threads,
      p1=p1,
      p2=p2,
      total=warmup + iters,
      tau=TAU,
      inner_lr=INNER_LR,
      outer_lr=OUTER_LR,
      h_reg=H_REG,
      train_fraction=TRAIN_FRACTION,
      **c,
    )
    return [sys.executable, "-c", code]
  log_every = 5 if iters % 5 == 0 and warmup % 5 == 0 else 1
  return [
    sys.executable,
    "-m",
    "hume_jax.train",
    "--phi1",
    p1,
    "--phi2",
    p2,
    "--preset",
    "official",
    "--k",
    str(c["k"]),
    "--num-subsets",
    str(c["num_subsets"]),
    "--subset-size",
    str(c["subset_size"]),
    "--adaptation-steps",
    str(c["adaptation_steps"]),
    "--num-iters",
    str(warmup + iters),
    "--log-every",
    str(log_every),
    "--out",
    out,
    "--overwrite",
    "--no-plots",
  ]


def run_pinned(cmd: list[str], threads: int) -> str:
  """Runs ``cmd`` on the first ``threads`` cores; returns its output (stdout and stderr)."""
  cores = set(sorted(os.sched_getaffinity(0))[:threads])
  env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
  proc = subprocess.run(
    cmd,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    preexec_fn=lambda: os.sched_setaffinity(0, cores),
    cwd=os.path.dirname(HERE),
  )
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stdout[-3000:]}")
  return proc.stdout


def per_iteration(program: str, output: str, out: str, warmup: int) -> list[tuple[float, float]]:
  """``[(CPU s, wall s)]`` of each measured iteration of one run."""
  if program != "hume_jax CLI":
    found = [(float(c), float(w)) for w, c in re.findall(r"iter \d+ (?:\(timed\) )?([\d.]+)s? cpu=([\d.]+)", output)]
    return found[warmup:] if program == "slow reference" else found
  records = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
  records = [r for r in records if r["iteration"] >= warmup]
  times = []
  for a, b in zip(records, records[1:]):
    span = b["iteration"] - a["iteration"]
    times += [((b["cpu_seconds"] - a["cpu_seconds"]) / span, (b["seconds"] - a["seconds"]) / span)] * span
  return times


PRODUCT_RATE = """
import json, time, sys
shapes = {shapes!r}
reps = 200
out = {{}}
import numpy as np
rng = np.random.default_rng(0)
if sys.argv[1] == "xla":
  import jax, jax.numpy as jnp
  for name, (a, b) in shapes.items():
    x, y = jnp.asarray(rng.normal(size=a), jnp.float32), jnp.asarray(rng.normal(size=b), jnp.float32)
    f = jax.jit(lambda x, y: jax.lax.fori_loop(0, reps, lambda i, acc: acc + (x + acc[0, 0] * 0) @ y,
                                               jnp.zeros((a[0], b[1]), jnp.float32)))
    f(x, y).block_until_ready()
    ts = []
    for _ in range(5):
      t = time.process_time(); f(x, y).block_until_ready(); ts.append(time.process_time() - t)
    out[name] = 2 * a[0] * a[1] * b[1] * reps / sorted(ts)[2] / 1e9
else:
  import torch
  torch.set_num_threads(int(sys.argv[2]))
  for name, (a, b) in shapes.items():
    x = torch.from_numpy(rng.normal(size=a).astype(np.float32))
    y = torch.from_numpy(rng.normal(size=b).astype(np.float32))
    ts = []
    for _ in range(5):
      t = time.process_time()
      for _ in range(reps):
        x @ y
      ts.append(time.process_time() - t)
    out[name] = 2 * a[0] * a[1] * b[1] * reps / sorted(ts)[2] / 1e9
print(json.dumps(out))
"""


def product_rates(c: dict, threads: int) -> dict:
  """GFLOP/s per CPU second of the inner step's four product shapes (k-by-n_tr-by-d2), XLA and torch."""
  n_tr = int(min(c["n"], c["subset_size"]) * TRAIN_FRACTION)
  k, d2 = c["k"], c["d2"]
  shapes = {
    "[k,d2]x[d2,n] (logits)": ((k, d2), (d2, n_tr)),
    "[k,n]x[n,d2] (gradient)": ((k, n_tr), (n_tr, d2)),
    "[n,d2]x[d2,k] (logits, row layout)": ((n_tr, d2), (d2, k)),
  }
  rates = {}
  cores = set(sorted(os.sched_getaffinity(0))[:threads])
  for lib in ("xla", "torch"):
    out = subprocess.run(
      [sys.executable, "-c", PRODUCT_RATE.format(shapes=shapes), lib, str(threads)],
      capture_output=True,
      text=True,
      check=True,
      preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    rates[lib] = json.loads(out.stdout.strip().splitlines()[-1])
  return rates


def main() -> None:
  args = parse()
  c = dict(CONFIGS[args.config])
  warmup, iters = args.warmup if args.warmup is not None else c.pop("warmup"), args.iters or c.pop("iters")
  c.pop("warmup", None), c.pop("iters", None)
  n_tr = int(min(c["n"], c["subset_size"]) * TRAIN_FRACTION)
  flops = c["num_subsets"] * c["adaptation_steps"] * 8 * n_tr * c["d2"] * c["k"]
  programs = ["fast reference"] + ([] if args.no_slow_ref else ["slow reference"]) + ["hume_jax CLI"]
  import jax
  import torch

  print(
    f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores; "
    f"jax {jax.__version__}, torch {torch.__version__}"
  )
  print(f"config {args.config}: {c}; per run {warmup} iterations left out, then {iters} measured")
  print(f"inner-product FLOPs per outer iteration: {flops / 1e9:.2f} GFLOP")
  result = {
    "config": args.config,
    "shape": c,
    "warmup": warmup,
    "iters": iters,
    "machine": platform.machine(),
    "cores": os.cpu_count(),
    "jax": jax.__version__,
    "torch": torch.__version__,
    "threads": {},
  }
  with tempfile.TemporaryDirectory() as tmp:
    p1, p2 = synthetic_inputs(tmp, c)
    out = os.path.join(tmp, "run")
    for threads in args.threads:
      times = {p: [] for p in programs}
      for r in range(args.rounds):
        for prog in programs:
          output = run_pinned(commands(prog, c, threads, warmup, iters, p1, p2, out, args.fast_ref), threads)
          found = per_iteration(prog, output, out, warmup)
          if not found:
            raise RuntimeError(f"{prog}: no per-iteration times in its output:\n{output[-2000:]}")
          times[prog] += found
          print(
            f"  threads {threads} round {r + 1}: {prog:15s} {statistics.median(t[0] for t in found):.4f} CPU s/it  "
            f"{statistics.median(t[1] for t in found):.4f} wall s/it",
            flush=True,
          )
      rates = product_rates(c, threads)
      med = {
        p: (statistics.median(t[0] for t in times[p]), statistics.median(t[1] for t in times[p])) for p in programs
      }
      fast = med["fast reference"]
      print(f"\nthreads {threads}, medians over {args.rounds} rounds:")
      print("| program | CPU s/it | wall s/it | fast ref / this (CPU) | fast ref / this (wall) | GFLOP/s per CPU s |")
      print("|---|---|---|---|---|---|")
      for p in programs:
        print(
          f"| {p} | {med[p][0]:.4f} | {med[p][1]:.4f} | {fast[0] / med[p][0]:.2f}x | {fast[1] / med[p][1]:.2f}x "
          f"| {flops / med[p][0] / 1e9:.1f} |"
        )
      print(
        "machine's rate for the same products (GFLOP/s per CPU s): "
        + "; ".join(f"{lib}: " + ", ".join(f"{s} {v:.1f}" for s, v in r.items()) for lib, r in rates.items())
      )
      result["threads"][threads] = {"times": times, "median": med, "product_gflops": rates, "flops_per_iter": flops}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
