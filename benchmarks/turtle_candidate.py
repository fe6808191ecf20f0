"""TURTLE's labeling as a candidate of ``--preset auto``: which TURTLE fits the budget, and is it
still TURTLE?

    python benchmarks/turtle_candidate.py data/quality --only debian_sections,fortunes \
        --variants raw,pca128,pca256,proj128,pca128_fast [--seeds 42,0,1] [--vote] [--json out.json]

For each set built by ``benchmarks/quality_data.py`` and each TURTLE variant, TURTLE labels
all samples and each labeling is scored by the default's label-free criterion (``separability``,
mean kappa over both conditioned spaces) and, afterwards, against the labels (ACC). The variants
differ only in the spaces TURTLE reads (or, ``_fast``, its schedule); every other setting is the
authors' default (``TurtleConfig``):

* ``raw``: the two raw spaces (TURTLE mode, ``--method turtle``);
* ``pca128`` / ``pca256``: each space centred and projected on its 128 / 256 leading principal
  components, at its raw scale (a step costs about ``d / 128`` times less);
* ``proj128``: the raw rows rotated onto the 128 leading components, not centred (raw norms kept);
* ``pca128_fast``: ``pca128`` with outer lr 3e-3 and 2,000 iterations (a third of the time).

``--vote`` adds the labeling ``--preset auto`` would choose from (its runs' vote before the
refinement: ``fit_auto`` with 300 iterations fixed, so that load changes nothing) and its
refined labels, for the criterion to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from hume_jax.config import TurtleConfig
from hume_jax.evaluation.metrics import evaluate, separability_per_space
from hume_jax.search.auto import fit_auto, vote_labels
from hume_jax.search.conditioning import condition_spaces
from hume_jax.training.turtle import fit_turtle, predict_turtle

VARIANTS = ("raw", "pca128", "pca256", "proj128", "pca128_fast")


def turtle_spaces(variant: str, a: np.ndarray, b: np.ndarray, s128) -> list[np.ndarray]:
  """The two spaces TURTLE reads in ``variant``; ``s128`` is ``condition_spaces(a, b)`` (128 components)."""
  raw = {"a": a, "b": b}
  if variant == "raw":
    return [a, b]
  s = condition_spaces(a, b, max_dim=256) if variant == "pca256" else s128
  if variant == "proj128":
    return [raw[v] @ s.as_phi2[v].components.T for v in "ab"]
  return [s.cond2[v] / s.as_phi2[v].scale for v in "ab"]  # centred PCA at the raw scale


def turtle_config(variant: str, k: int, seed: int) -> TurtleConfig:
  fast = dict(outer_lr=3e-3, num_iters=2000) if variant.endswith("_fast") else {}
  return TurtleConfig(k=k, seed=seed, **fast)


def scored(labels: np.ndarray, y: np.ndarray, judged: list, seconds: float, **info) -> dict:
  per_space = separability_per_space(judged, labels)
  return {
    **info,
    "acc": 100 * evaluate(labels, y)["acc"],
    "kappa_a": per_space[0],
    "kappa_b": per_space[1],
    "criterion": float(np.mean(per_space)),
    "seconds": seconds,
  }


def measure_set(path: str, variants: list[str], seeds: list[int], vote: bool) -> list[dict]:
  with np.load(path) as f:
    a, b, y = f["phi_a"], f["phi_b"], f["labels"]
  k, name = len(np.unique(y)), os.path.basename(path)[: -len(".npz")]
  s = condition_spaces(a, b)
  judged = [s.cond2["a"], s.cond2["b"]]
  rows = []
  for variant in variants:
    phis = turtle_spaces(variant, a, b, s)
    for seed in seeds:
      t0 = time.perf_counter()
      state, _ = fit_turtle(phis, turtle_config(variant, k, seed), progress=False)
      labels = predict_turtle(state.encoder, phis)
      seconds = time.perf_counter() - t0
      rows.append(scored(labels, y, judged, seconds, set=name, labeling=f"TURTLE {variant}", seed=seed))
      print(json.dumps(rows[-1]), flush=True)
  if vote:
    for seed in seeds:
      t0 = time.perf_counter()
      res = fit_auto(a, b, k, num_iters=300, seed=seed, progress=False, say=lambda m: None)
      seconds = time.perf_counter() - t0
      voted, returned = vote_labels(res._replace(refiner=None), a, b), vote_labels(res, a, b)
      for label, labels in (("vote", voted), ("returned", returned)):
        rows.append(scored(labels, y, judged, seconds, set=name, labeling=f"HUME {label}", seed=seed))
        print(json.dumps(rows[-1]), flush=True)
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder", help="the sets built by benchmarks/quality_data.py")
  p.add_argument("--only", required=True, help="comma-separated sets, e.g. debian_sections,fortunes")
  p.add_argument("--variants", default="raw,pca128", help=f"comma-separated TURTLE variants of {', '.join(VARIANTS)}")
  p.add_argument("--seeds", default="42", help="comma-separated seeds of every labeling (default: 42)")
  p.add_argument("--vote", action="store_true", help="also the default's vote and returned labels (fit_auto)")
  p.add_argument("--json", help="write every row to this JSON file")
  args = p.parse_args()
  variants = args.variants.split(",")
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    p.error(f"--variants: expected some of {', '.join(VARIANTS)}, found {', '.join(unknown)}")
  import jax

  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}")
  seeds = [int(v) for v in args.seeds.split(",")]
  rows = []
  for name in args.only.split(","):
    rows += measure_set(os.path.join(args.folder, f"{name}.npz"), variants, seeds, args.vote)
  print("\n| set | labeling | seed | ACC | kappa a / b | criterion | seconds |\n|---|---|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['set']} | {r['labeling']} | {r['seed']} | {r['acc']:.1f} | {r['kappa_a']:.3f} / {r['kappa_b']:.3f} | "
      f"{r['criterion']:.3f} | {r['seconds']:.0f} |"
    )
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
