"""How each stage of the default search (``--preset auto``) grows with n and k.

    python benchmarks/scale.py [--n 10000,30000,100000] [--k 10,100] [--d 256] [--json FILE]
    python benchmarks/scale.py --imagenet 50000 [--iters 3]   # k = 1000, d1 = 2048, d2 = 1536

Data: a two-view Gaussian mixture (k classes, d dimensions in each view, the views' class means
drawn independently, unit noise), or ``--tile FILE.npz`` (a quality set's ``phi_a``, ``phi_b``;
rows tiled to n with small noise). Each stage is timed on its own, as ``fit_auto`` and the
command line call it: conditioning, the k-means starts, one outer iteration of the jitted step
(after its compile), one criterion, the refinement, labelling every row, the CV score and the
premise check. Printed: wall and CPU seconds and the process's peak resident memory after each
stage, then each stage's growth exponent in n (the slope of log seconds over log n between the
two largest n), then the share of a default run's time spent outside the step at each size (the
run as ``budget.plan_search`` plans it for a 600 s budget, step seconds measured). A stage's
exponent near 0 means its cost no longer grows with n (it reads ``sampling.ROWS`` rows).

With ``--imagenet N``: the ImageNet-shaped configuration (``config.IMAGENET``: k = 1000, subsets
of 20,000, T = 100) on N rows of d1 = 2048 and d2 = 1536, the step timed for ``--iters``
iterations (5 subsets per chunk, remat: the memory plan of an 80 GB GPU), and every stage around it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import resource
import time

import jax
import numpy as np

from hume_jax.config import AUTO, IMAGENET
from hume_jax.core._outer import init_state
from hume_jax.core._plan import Execution
from hume_jax.evaluation import metrics as hm
from hume_jax.search.budget import conditioning_seconds, plan_search
from hume_jax.search.conditioning import condition_spaces, kept_dims, kmeans_starts
from hume_jax.search.premise import premise_report
from hume_jax.search.refine import refine
from hume_jax.training._fit import outer_step_jit, predict


def mixture(n: int, k: int, d1: int, d2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  views = []
  for d in (d1, d2):
    means = rng.standard_normal((k, d)).astype(np.float32) * 1.5
    views.append(means[y] + rng.standard_normal((n, d), dtype=np.float32))
  return views[0], views[1]


def tiled(path: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  data = np.load(path)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(data["phi_a"]), n)
  noisy = lambda x: (x[idx] + 0.01 * x.std() * rng.standard_normal((n, x.shape[1]))).astype(np.float32)
  return noisy(data["phi_a"]), noisy(data["phi_b"])


def peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(f):
  c0, w0 = time.process_time(), time.perf_counter()
  out = f()
  jax.block_until_ready(out) if isinstance(out, jax.Array) else None
  return out, time.perf_counter() - w0, time.process_time() - c0


def stages(a: np.ndarray, b: np.ndarray, k: int, config, iters: int, execution=Execution()) -> dict:
  """Seconds (wall, CPU) and peak MiB after each stage on these two raw spaces."""
  row = {}

  def record(name, f):
    out, wall, cpu = timed(f)
    row[name] = {"wall": wall, "cpu": cpu, "peak_mib": peak_mib()}
    print(f"  {name:<12} {wall:8.2f} s wall {cpu:8.2f} s CPU  peak {row[name]['peak_mib']:8.0f} MiB", flush=True)
    return out

  config = dataclasses.replace(config, k=k)
  sp = record("condition", lambda: condition_spaces(a, b, kept_dims(k)))
  km = record("kmeans", lambda: kmeans_starts(sp, k, 0))
  x1, x2 = jax.numpy.asarray(sp.cond1["a"]), jax.numpy.asarray(sp.cond2["b"])
  state = init_state(jax.random.PRNGKey(0), config, x1.shape[1], x2.shape[1])
  step = lambda s: outer_step_jit(s, x1, x2, config=config, execution=execution)
  state = record("compile", lambda: jax.block_until_ready(step(state))[0])

  def steps():
    s = state
    for _ in range(iters):
      s, m = step(s)
    return m.loss

  record("step", steps)
  row["step"] = {key: v / iters if key != "peak_mib" else v for key, v in row["step"].items()}
  labels = km["a"][1]
  judged = [sp.cond2["a"], sp.cond2["b"]]
  record("criterion", lambda: hm.separability_per_space(judged, labels))
  record("refine", lambda: refine({"a": sp.cond2["a"], "b": sp.cond2["b"]}, labels, k)[0])
  record("predict", lambda: predict(state.encoder, sp.cond1["a"]))
  record("cv_score", lambda: hm.cv_score(sp.cond2["b"], labels, rows=10_000))
  record("premise", lambda: premise_report(a, b, labels, k))
  shapes, platform = [(x1.shape[1], x2.shape[1])] * 4, jax.default_backend()
  conditioning_s = conditioning_seconds(len(a), (a.shape[1], b.shape[1]), x1.shape[1], platform)
  plan = plan_search(
    config,
    len(a),
    shapes,
    [x1.shape[1]] * 2,
    600.0,
    refine_criteria=5,
    platform=platform,
    conditioning_s=conditioning_s,
  )
  step_total = plan["runs"] * plan["num_iters"] * row["step"]["wall"]
  judged_n = plan["runs"] + 1 if plan["runs"] > 1 else 0
  around = (
    sum(row[s]["wall"] for s in ("condition", "kmeans", "compile", "predict", "cv_score", "premise"))
    + judged_n * row["criterion"]["wall"]
    + (row["refine"]["wall"] if plan["refine_criteria"] else 0.0)
  )
  row["run"] = {"runs": plan["runs"], "iters": plan["num_iters"], "step_total": step_total, "around": around}
  print(
    f"  a default run ({plan['runs']} runs x {plan['num_iters']} iterations; refinement "
    f"{'kept' if plan['refine_criteria'] else 'cut'}): step {step_total:.0f} s, the stages around it "
    f"{around:.0f} s = {100 * around / max(around + step_total, 1e-9):.0f}% of the run",
    flush=True,
  )
  return row


def exponents(table: dict, k: int) -> dict:
  ns = sorted(n for (n, kk) in table if kk == k)
  if len(ns) < 2:
    return {}
  lo, hi = table[(ns[-2], k)], table[(ns[-1], k)]
  slope = lambda s: math.log(max(hi[s]["wall"], 1e-6) / max(lo[s]["wall"], 1e-6)) / math.log(ns[-1] / ns[-2])
  return {s: slope(s) for s in lo if s != "run"}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", default="10000,30000,100000", help="comma-separated row counts")
  p.add_argument("--k", default="10,100", help="comma-separated numbers of classes")
  p.add_argument("--d", type=int, default=256, help="dimensions of each view (mixture data)")
  p.add_argument("--tile", help="a quality set .npz (phi_a, phi_b) tiled to n rows instead of the mixture")
  p.add_argument("--iters", type=int, default=3, help="outer iterations timed per size")
  p.add_argument("--imagenet", type=int, default=0, help="rows of the ImageNet-shaped run (0: none)")
  p.add_argument("--json", help="write every figure to this file")
  args = p.parse_args()
  info = {"machine": platform.machine(), "processor": platform.processor(), "device": str(jax.devices()[0])}
  print(f"scale benchmark on {info}; jax {jax.__version__}", flush=True)
  table = {}
  if args.imagenet:
    a, b = mixture(args.imagenet, 1000, 2048, 1536)
    print(f"ImageNet-shaped: n = {args.imagenet}, k = 1000, d1 = 2048, d2 = 1536, config.IMAGENET", flush=True)
    planned = Execution(subset_chunk=5, remat=True)  # what the memory planner picks on 80 GB
    table[(args.imagenet, 1000)] = stages(a, b, 1000, IMAGENET, args.iters, planned)
  else:
    for k in map(int, args.k.split(",")):
      for n in map(int, args.n.split(",")):
        print(f"n = {n}, k = {k}, d = {max(args.d, k)}", flush=True)
        d = max(args.d, k)  # the task encoder needs k <= d1
        a, b = tiled(args.tile, n) if args.tile else mixture(n, k, d, d)
        table[(n, k)] = stages(a, b, k, AUTO, args.iters)
      for stage, e in exponents(table, k).items():
        print(f"  growth exponent in n of {stage} (k = {k}, two largest n): {e:.2f}")
  if args.json:
    rows = [{"n": n, "k": k, **v} for (n, k), v in table.items()]
    json.dump({"machine": info, "jax": jax.__version__, "rows": rows}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
  main()
