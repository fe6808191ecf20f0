"""Seconds of the stages after a search that ``--budget`` counts (the CV score, the premise check and, with labels,
the baselines) against the cost model's (``hume_jax.search.budget.closing_seconds``).

    python benchmarks/closing_cost.py [--shapes 10000x10x256,10000x200x300] [--sets data/quality/fashion_mnist.npz]

A shape is ``n x k x d``: a two-view Gaussian mixture (``scale.mixture``, each view d dimensions) whose planted
classes stand for the labeling found and the labels; a set is a quality set (``quality_data.py``: ``phi_a``,
``phi_b``, ``labels``), its human labels in both roles. Each stage is called once to compile (a run's search has
compiled the same shapes before its closing stages) and then timed: wall seconds, as ``--budget`` counts them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np
from scale import mixture

from hume_jax.evaluation import metrics as hm
from hume_jax.evaluation.baselines import run_baselines
from hume_jax.evaluation.sampling import ROWS
from hume_jax.search.budget import closing_seconds
from hume_jax.search.premise import premise_report


def warm_seconds(f) -> float:
  """Wall seconds of the second of two calls of ``f()``."""
  f()
  t = time.perf_counter()
  f()
  return time.perf_counter() - t


def stages(a: np.ndarray, b: np.ndarray, y: np.ndarray, k: int) -> dict:
  """Each closing stage's wall seconds on ``phi1 = a``, ``phi2 = b``, labeling and labels ``y``."""
  split = {"phi1": a, "phi2": b, "labels": y}
  return {
    "cv": warm_seconds(lambda: hm.cv_score(b, y, rows=ROWS, solver=None)),
    "premise": warm_seconds(lambda: premise_report(a, b, y, k)),
    "baselines": warm_seconds(lambda: run_baselines(split, split, k, same_split=True)),
  }


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--shapes", default="10000x10x256,10000x100x256,10000x200x300", help="n x k x d, comma-separated")
  p.add_argument("--sets", default="", help="quality sets (.npz), comma-separated")
  args = p.parse_args()
  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {jax.default_backend()}")
  print("\n| data | n | k | d_a + d_b | CV score s | premise s | both s | model s | baselines s | model s |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  cases = [("mixture", *map(int, s.split("x"))) for s in args.shapes.split(",") if s]
  cases += [(path, None, None, None) for path in args.sets.split(",") if path]
  for name, n, k, d in cases:
    if name == "mixture":
      a, b = mixture(n, k, d, d)
      y = np.random.default_rng(0).integers(0, k, n)  # mixture's own first draw: the planted classes
    else:
      data = np.load(name)
      a, b, y = data["phi_a"], data["phi_b"], data["labels"]
      n, k, name = len(y), int(y.max()) + 1, os.path.basename(name)
    s, dims = stages(a, b, y, k), a.shape[1] + b.shape[1]
    model = closing_seconds(n, k, jax.default_backend(), b.shape[1])
    with_baselines = closing_seconds(n, k, jax.default_backend(), b.shape[1], dims) - model
    print(
      f"| {name} | {n:,} | {k} | {dims} | {s['cv']:.1f} | {s['premise']:.1f} | {s['cv'] + s['premise']:.1f} | "
      f"{model:.1f} | {s['baselines']:.1f} | {with_baselines:.1f} |",
      flush=True,
    )


if __name__ == "__main__":
  main()
