"""CPU cost of one outer iteration's subset draws against n, and of the whole iteration (``--preset auto``'s
config, k = 10, two 256-d views): ``jax.random.permutation(key, n)[:m]``
(the draw up to 65,535 rows, bit for bit) and ``hume_jax.core._objective.draw_subsets`` (past that,
``hume_jax.core._shuffle.distinct_draws``: rows drawn with replacement, repeats skipped).

    python benchmarks/subset_draw.py [--sizes 10000,100000,300000,1000000] [--subsets 8] [--rows 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import jax
import numpy as np

from hume_jax.config import AUTO
from hume_jax.core._objective import draw_subsets
from hume_jax.core._outer import init_state, outer_step


def cpu_ms(f, repeats: int = 5) -> float:
  """Median CPU milliseconds (user + system) of ``f(key)`` over ``repeats`` keys, after a compile."""
  f(jax.random.PRNGKey(0)).block_until_ready()
  times = []
  for i in range(repeats):
    t = time.process_time()
    f(jax.random.PRNGKey(i + 1)).block_until_ready()
    times.append(time.process_time() - t)
  return 1000 * sorted(times)[len(times) // 2]


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", default="10000,100000,300000,1000000")
  p.add_argument("--subsets", type=int, default=8)
  p.add_argument("--rows", type=int, default=2000)
  args = p.parse_args()
  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}")
  print(f"S = {args.subsets} subsets of m = {args.rows} rows; CPU ms per draw, median of 5\n")
  print("| n | jax.random.permutation prefix | draw_subsets | outer iteration |\n|---|---|---|---|")
  config = dataclasses.replace(AUTO, k=10, num_subsets=args.subsets, subset_size=args.rows)
  for n in (int(x) for x in args.sizes.split(",")):
    split = lambda k: jax.random.split(k, args.subsets)
    old = jax.jit(lambda k, n=n: jax.vmap(lambda kk: jax.random.permutation(kk, n)[: args.rows])(split(k)))
    new = jax.jit(lambda k, n=n: draw_subsets(k, n, args.subsets, args.rows))
    rng = np.random.default_rng(0)
    phi1 = rng.normal(size=(n, 256)).astype(np.float32)
    phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
    phi2 = rng.normal(size=(n, 256)).astype(np.float32)
    phi1, phi2 = jax.device_put(phi1), jax.device_put(phi2)  # on the device once, as in training
    step = jax.jit(lambda s, a, b: outer_step(s, a, b, config=config)[0])
    state = init_state(jax.random.PRNGKey(0), config, 256, 256)
    iteration = lambda k: step(state._replace(key=k), phi1, phi2).encoder.raw
    print(f"| {n:,} | {cpu_ms(old):.1f} | {cpu_ms(new):.1f} | {cpu_ms(iteration):.1f} |", flush=True)


if __name__ == "__main__":
  main()
