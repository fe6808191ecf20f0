"""Labeling quality on real data sets the methods were not tuned on, from raw features.

    python benchmarks/quality_data.py data/quality          # builds the sets (about 15 minutes)
    python benchmarks/quality.py data/quality [--only fashion_mnist,digits] [--budget 600]

For each set (``benchmarks/quality_data.py``: two raw representations ``phi_a``, ``phi_b`` of
the same samples and their human labels), every method labels all samples without labels
(transductive) and is scored against the labels afterwards: ACC (Hungarian), NMI, ARI,
empty classes and wall time. Baselines run at their authors' defaults:

* k-means (scikit-learn, ``n_init=10``) on each raw space, and on each space conditioned as
  is common (centred, PCA-50 whitened) and as ``--preset auto`` does (centred, PCA-128, unit rows);
* spectral clustering (scikit-learn, ``affinity="nearest_neighbors"``, 10 neighbours) on each
  space conditioned (centred, PCA-128, unit rows);
* TURTLE mode at TURTLE's defaults (6000 iterations, batch 10000, 10 inner Adam steps, gamma
  10) on the two raw spaces;
* HUME with the ``cpu`` preset on the raw spaces (``a`` as phi1, L2-normalised): what a
  user got before ``--preset auto``;
* the default, ``python -m hume_jax.train``'s ``--preset auto`` (``hume_jax.auto.fit_auto``,
  ``--budget`` seconds);
* a supervised linear probe (5-fold, labels used: the ceiling of a linear labeling).

Rows marked "(a)" / "(b)" are per space; for each baseline family the table also gives the
better space *chosen with the labels*, an upper bound no label-free user could pick.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
import warnings

import numpy as np

from hume_jax import CPU, fit, predict
from hume_jax.auto import apply_conditioning, fit_auto, fit_conditioning, vote_labels
from hume_jax.data import l2_normalize
from hume_jax.metrics import evaluate
from hume_jax.turtle import TurtleConfig, fit_turtle, predict_turtle


def kmeans(x, k, seed=0):
  from sklearn.cluster import KMeans

  return KMeans(k, n_init=10, random_state=seed).fit_predict(x)


def pca_whiten(x, dim=50):
  from sklearn.decomposition import PCA

  return PCA(min(dim, *x.shape), whiten=True, random_state=0).fit_transform(x)


def spherical(x):
  return apply_conditioning(fit_conditioning(x, unit_rows=True), x)


def spectral(x, k, seed=0):
  from sklearn.cluster import SpectralClustering

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10, random_state=seed).fit_predict(x)


def probe(a, b, y):
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import cross_val_predict
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return cross_val_predict(
      make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), np.hstack([a, b]), y, cv=5
    )


def run_set(
  path: str, budget: float, seed: int = 42, on_row=lambda rows: None, turtle: bool = True, auto_only: bool = False
) -> list[dict]:
  with np.load(path) as f:
    a, b, y = f["phi_a"].astype(np.float32), f["phi_b"].astype(np.float32), f["labels"]
  k = len(np.unique(y))
  rows = []

  def record(method, space, fn):
    t0 = time.perf_counter()
    pred = np.asarray(fn())
    sec = time.perf_counter() - t0
    sizes = np.bincount(pred, minlength=k)
    row = {
      "method": method,
      "space": space,
      **evaluate(pred, y),
      "empty": int((sizes[:k] == 0).sum()),
      "seconds": round(sec, 1),
    }
    rows.append(row)
    on_row(rows)
    print(
      f"  {method:<34}{space:>6}{100 * row['acc']:>7.1f}{100 * row['nmi']:>7.1f}{100 * row['ari']:>7.1f}"
      f"{row['empty']:>7}{sec:>9.1f}",
      flush=True,
    )

  baseline_spaces = [] if auto_only else [("a", a), ("b", b)]
  print(f"{os.path.basename(path)}: n={len(y)}, k={k}, d_a={a.shape[1]}, d_b={b.shape[1]}")
  print(f"  {'method':<34}{'space':>6}{'ACC':>7}{'NMI':>7}{'ARI':>7}{'empty':>7}{'seconds':>9}")
  for name, x in baseline_spaces:
    record("k-means, raw", name, lambda: kmeans(x, k))
  for name, x in baseline_spaces:
    record("k-means, PCA-50 whitened", name, lambda: kmeans(pca_whiten(x), k))
  for name, x in baseline_spaces:
    record("k-means, centred PCA-128 unit rows", name, lambda: kmeans(spherical(x), k))
  for name, x in baseline_spaces:
    record("spectral, centred PCA-128 unit rows", name, lambda: spectral(spherical(x), k))

  def auto():
    res = fit_auto(a, b, k, budget_seconds=budget, seed=seed, progress=False, say=lambda s: print("    " + s))
    return vote_labels(res, a, b)

  record("HUME, --preset auto (the default)", "auto", auto)
  if auto_only:
    return rows

  def hume_cpu():  # phi1 = a: Open-NSFW for images (the shipped default's phi1), MiniLM for texts
    phi1 = l2_normalize(a, "phi1")
    state, _ = fit(phi1, b, dataclasses.replace(CPU, k=k, seed=seed), progress=False)
    return predict(state.encoder, phi1)

  record("linear probe, 5-fold (supervised)", "a+b", lambda: probe(a, b, y))
  record("HUME, cpu preset, raw inputs", "a->b", hume_cpu)
  if turtle:
    record(
      "TURTLE mode, TURTLE defaults",
      "a+b",
      lambda: predict_turtle(fit_turtle([a, b], TurtleConfig(k=k, seed=seed), progress=False)[0].encoder, [a, b]),
    )
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder", nargs="?", help="the folder benchmarks/quality_data.py wrote")
  p.add_argument("--only", default="fashion_mnist,digits,debian_sections,fortunes")
  p.add_argument("--budget", type=float, default=600.0, help="--preset auto's budget in seconds (default 600)")
  p.add_argument("--json", help="also write every row to this file")
  p.add_argument(
    "--no-turtle",
    dest="turtle",
    action="store_false",
    help="skip TURTLE mode (6000 iterations at its defaults: about 30 minutes at 10k x 2300-d here)",
  )
  p.add_argument(
    "--auto-only",
    action="store_true",
    help="run only --preset auto; with an existing --json file, its auto rows are replaced and every other row kept",
  )
  p.add_argument("--summary", nargs="+", metavar="JSON", help="only print the tables of saved --json files")
  args = p.parse_args()
  if args.summary:
    merged = {}
    for path in args.summary:
      with open(path) as f:
        merged.update(json.load(f))
    summary(merged)
    return
  import jax

  print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}")
  results, kept = {}, {}
  if args.auto_only and args.json and os.path.exists(args.json):
    with open(args.json) as f:
      kept = json.load(f)
    results = dict(kept)
  for name in args.only.split(","):

    def save(rows, name=name):
      new = {(r["method"], r["space"]): r for r in rows}
      old = kept.get(name, [])
      results[name] = [new.pop((r["method"], r["space"]), r) for r in old] + list(new.values())
      if args.json:
        with open(args.json, "w") as f:
          json.dump(results, f, indent=1)

    run_set(
      os.path.join(args.folder, f"{name}.npz"), args.budget, on_row=save, turtle=args.turtle, auto_only=args.auto_only
    )
  summary(results)


def summary(results: dict[str, list[dict]]) -> None:
  """The markdown tables of ``benchmarks/README.md``: per set, every row; then ACC per family."""
  for name, rows in results.items():
    print(f"\n{name}\n\n| method | space | ACC | NMI | ARI | empty classes | seconds |\n|---|---|---|---|---|---|---|")
    for r in rows:
      print(
        f"| {r['method']} | {r['space']} | {100 * r['acc']:.1f} | {100 * r['nmi']:.1f} | {100 * r['ari']:.1f} | "
        f"{r['empty']} | {r['seconds']:.0f} |"
      )
  print("\nACC (%), best space chosen with labels for each baseline family:")
  families = list(dict.fromkeys(r["method"] for rows in results.values() for r in rows))
  if not families:
    return
  print("| method | " + " | ".join(results) + " |\n|---" * 1 + "|---" * len(results) + "|")
  for fam in families:
    cells = []
    for rows in results.values():
      rs = [r for r in rows if r["method"] == fam]
      if not rs:
        cells.append("-")
        continue
      best = max(rs, key=lambda r: r["acc"])
      cells.append(f"{100 * best['acc']:.1f}" + (f" ({best['empty']} empty)" if best["empty"] else ""))
    print(f"| {fam} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
