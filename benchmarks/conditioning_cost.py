"""Seconds of the conditioning of both spaces (``hume_jax.search.conditioning.condition_spaces``: centring, PCA,
one projection) against the cost model's (``hume_jax.search.budget.conditioning_seconds``); up to 10,000 rows, where
the PCA is the SVD of the centred rows, also the covariance's eigenvectors (the route past 10,000 rows).

    python benchmarks/conditioning_cost.py [--shapes 2000x1024x1280,10000x1024x1280,100000x512x384] [--kept 128]

Gaussian rows with a decaying spectrum; a shape is ``n x d_a x d_b``. Wall and CPU seconds (user + system), median
of 3; the covariance columns time both spaces' ``np.linalg.eigh`` of the float64 covariance (only up to 10,000
rows), and "max angle" is the largest angle between its top ``kept`` directions and the SVD's (degrees; 0 = the same
subspace).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

from hume_jax.search.budget import conditioning_seconds
from hume_jax.search.conditioning import condition_spaces


def timed(f, repeats: int = 3) -> tuple[float, float, object]:
  """Median wall and CPU seconds of ``f()`` over ``repeats`` calls, and its last result."""
  walls, cpus = [], []
  for _ in range(repeats):
    w, c = time.perf_counter(), time.process_time()
    out = f()
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
  return sorted(walls)[repeats // 2], sorted(cpus)[repeats // 2], out


def covariance_directions(x: np.ndarray, kept: int) -> np.ndarray:
  z = np.asarray(x, np.float64)
  z = z - z.mean(0)
  return np.linalg.eigh(z.T @ z / len(z))[1][:, ::-1].T[:kept]


def max_angle(u: np.ndarray, v: np.ndarray) -> float:
  """Largest principal angle (degrees) between the row spaces of ``u`` and ``v`` (orthonormal rows)."""
  cosines = np.linalg.svd(u @ v.T, compute_uv=False)
  return float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--shapes", default="2000x1024x1280,10000x1024x1280,10000x256x256,100000x512x384,300000x256x256")
  p.add_argument("--kept", type=int, default=128)
  args = p.parse_args()
  backend = jax.default_backend()
  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {backend}; kept {args.kept}\n")
  print("| n x d_a x d_b | wall s | CPU s | model s | covariance wall s | covariance CPU s | max angle |")
  print("|---|---|---|---|---|---|---|")
  rng = np.random.default_rng(0)
  for shape in args.shapes.split(","):
    n, da, db = (int(v) for v in shape.split("x"))
    a, b = (
      (rng.standard_normal((n, d), dtype=np.float32) * np.geomspace(3, 0.1, d, dtype=np.float32)) for d in (da, db)
    )
    wall, cpu, spaces = timed(lambda: condition_spaces(a, b, args.kept))
    model = conditioning_seconds(n, (da, db), args.kept, backend)
    cov = "- | - | -"
    if n <= 10_000:
      c_wall, c_cpu, ref = timed(lambda: [covariance_directions(x, args.kept) for x in (a, b)], repeats=1)
      angle = max(max_angle(spaces.as_phi2[s].components, r) for s, r in zip("ab", ref))
      cov = f"{c_wall:.2f} | {c_cpu:.2f} | {angle:.1e}"
    print(f"| {n:,} x {da} x {db} | {wall:.2f} | {cpu:.2f} | {model:.2f} | {cov} |", flush=True)


if __name__ == "__main__":
  main()
