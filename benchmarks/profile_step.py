"""Where an outer iteration's time goes: XLA's own profile of the compiled step, by kind of op.

    python benchmarks/profile_step.py --config small [--iters 5] [--threads 1]
    python benchmarks/profile_step.py --config raw       # the cpu preset on raw 1024/1280-d inputs
    python benchmarks/profile_step.py --config auto      # the default run's step (10k x (128, 128))
    python benchmarks/profile_step.py --config turtle    # TURTLE's defaults on 10k x (1024, 1280)

Runs the step under ``jax.profiler`` (a Perfetto trace), reads the time of every executed XLA
op (thunk) and sorts each into a kind from the compiled HLO: the inner products (dots, also
when XNNPACK fuses them with their neighbours), sorts (the subset draws' shuffles; sparsemax's
sort of the labels above 32 classes), other fusions (softmax, cross-entropy gradient, label
work), copies and data movement, and loop control. Prints milliseconds per iteration and shares
of the wall time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

CONFIGS = {
  "small": dict(n=5000, d1=128, d2=256, k=10, num_subsets=4, subset_size=2000, adaptation_steps=50),
  "raw": dict(n=10000, d1=1024, d2=1280, k=10, num_subsets=8, subset_size=2000, adaptation_steps=50),
  # --preset auto's step on 10k samples: both spaces conditioned to 128 dimensions
  "auto": dict(n=10000, d1=128, d2=128, k=10, num_subsets=8, subset_size=2000, adaptation_steps=50),
  "turtle": dict(n=10000, d1=1024, d2=1280, k=10),
}


def _kind(name: str, hlo: dict[str, str]) -> str:
  line = hlo.get(name, "")
  if "sort(" in line or name.startswith("sort"):
    return "sorts: subset draws" if "_shuffle" in line or "permutation_prefix" in line else "sorts: sparsemax / other"
  if " dot(" in line or "dot_general" in line or name.startswith(("dot", "ynn_fusion")):
    return "inner products (dots)"
  if any(w in name for w in ("copy", "transpose", "gather", "slice", "concatenate", "broadcast", "bitcast")):
    return "copies and data movement"
  return "other ops (softmax, gradients, labels)"


def _step(config: str):
  import jax
  import jax.numpy as jnp
  import numpy as np

  spec = dict(CONFIGS[config])
  n, d1, d2 = spec.pop("n"), spec.pop("d1"), spec.pop("d2")
  rng = np.random.default_rng(0)
  phi1 = rng.normal(size=(n, d1)).astype(np.float32)
  phi2 = rng.normal(size=(n, d2)).astype(np.float32)
  if config == "turtle":
    from hume_jax.training.turtle import TurtleConfig, _turtle_step_jit, init_turtle

    cfg = TurtleConfig(**spec)
    xs = (jnp.asarray(phi1), jnp.asarray(phi2))
    state = init_turtle(jax.random.PRNGKey(0), cfg, (d1, d2))
    return lambda st: _turtle_step_jit(st, xs, config=cfg), state, lambda: _turtle_step_jit.lower(state, xs, config=cfg)
  from hume_jax import HumeConfig, init_state
  from hume_jax.training._fit import _outer_step_jit

  cfg = HumeConfig(**spec)
  phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
  x1, x2 = jnp.asarray(phi1), jnp.asarray(phi2)
  state = init_state(jax.random.PRNGKey(0), cfg, d1, d2)
  step = lambda st: _outer_step_jit(st, x1, x2, config=cfg, mesh=None)
  return step, state, lambda: _outer_step_jit.lower(state, x1, x2, config=cfg, mesh=None)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", choices=sorted(CONFIGS), default="small")
  p.add_argument("--iters", type=int, default=5)
  p.add_argument("--threads", type=int, default=None, help="pin to the first N cores (default: all)")
  p.add_argument("--top", type=int, default=0, help="also list the N costliest ops with their HLO (default 0)")
  args = p.parse_args()
  if args.threads:
    os.sched_setaffinity(0, set(range(args.threads)))
  import jax

  step, state, lower = _step(args.config)
  hlo = {}
  for line in lower().compile().as_text().splitlines():
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
    if m:
      hlo[m.group(1)] = line
  for _ in range(2):  # compile and warm up
    state, out = step(state)
  jax.block_until_ready(out)
  folder = tempfile.mkdtemp(prefix="hume_profile_")
  jax.profiler.start_trace(folder, create_perfetto_trace=True)
  t0 = time.perf_counter()
  for _ in range(args.iters):
    state, out = step(state)
  jax.block_until_ready(out)
  wall = (time.perf_counter() - t0) / args.iters
  jax.profiler.stop_trace()
  trace = json.load(gzip.open(glob.glob(os.path.join(folder, "**", "perfetto_trace.json.gz"), recursive=True)[0]))
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  kinds, ops = collections.Counter(), collections.Counter()
  for e in events:
    name = e.get("name", "")
    if e.get("ph") == "X" and name in hlo and not name.startswith(("while", "conditional", "call")):
      kinds[_kind(name, hlo)] += e.get("dur", 0) / 1e3 / args.iters
      ops[name] += e.get("dur", 0) / 1e3 / args.iters
  busy = sum(kinds.values())
  kinds["loop control, dispatch and idle (the rest of the wall time)"] = max(wall * 1e3 - busy, 0.0)
  print(
    f"config {args.config} ({CONFIGS[args.config]}), {len(os.sched_getaffinity(0))} cores, "
    f"jax {jax.__version__}: {1e3 * wall:.1f} ms per iteration (wall, {args.iters} iterations)"
  )
  print("| kind of op | ms per iteration | share of the wall time |\n|---|---|---|")
  for kind, ms in kinds.most_common():
    print(f"| {kind} | {ms:.1f} | {100 * ms / (1e3 * wall):.0f}% |")
  for name, ms in ops.most_common(args.top):
    print(f"{ms:8.2f} ms  {_kind(name, hlo):<24} {hlo[name].strip()[:160]}")


if __name__ == "__main__":
  main()
