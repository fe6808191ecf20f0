"""What the label-free signals say about class sizes: on each set (long-tailed ones as ``quality.long_tailed`` cuts
them), every candidate labeling the default could choose from, with its separability in each space (the auto
preset's criterion, ``metrics.separability_per_space``), its sorted class sizes and, with the labels, its ACC.

Candidates: k-means of each space (the search's spherical k-means start, and ``quality.py``'s raw and PCA-50
whitened rows), each run of ``fit_auto`` at its default budget, the labels it returns, and the cross-space refinement
(``refine.refine``, 3 more rounds) of each k-means and of those labels. Each space's k-means sizes are printed beside
the true ones.

    python benchmarks/size_candidates.py data/quality --only fortunes@10,digits@10,debian_sections@10,digits
    python benchmarks/size_candidates.py data/quality --sizes-only   # each space's k-means sizes only, fast
    python benchmarks/size_candidates.py data/quality --partitions   # other partitions' sizes, fast

``--sizes-only``: the sizes of the search's spherical k-means of each space beside the true ones, and how even each
is (entropy over its maximum, log k: 1 for equal sizes), without any run. ``--partitions``: the same evenness (and,
with the labels, the ACC) of partitions less bound to equal sizes than k-means, in each conditioned space: the
spherical k-means at 3k and 5k clusters merged to k by Ward linkage of their centroids, Ward linkage of the rows, and
a diagonal Gaussian mixture (free weights) on 32 principal components.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from quality import kmeans as raw_kmeans
from quality import long_tailed, pca_whiten
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from hume_jax.evaluation.metrics import evaluate, hungarian_accuracy, separability_per_space
from hume_jax.search.auto import fit_auto, member_labels, vote_labels
from hume_jax.search.conditioning import condition_spaces, kept_dims, kmeans_starts, spherical_kmeans
from hume_jax.search.refine import refine


def candidates(a: np.ndarray, b: np.ndarray, k: int, seed: int = 42) -> tuple[dict, object]:
  """``({name: labels [n]}, spaces)``: every candidate labeling of the raw spaces ``a``, ``b``."""
  spaces = condition_spaces(a, b, kept_dims(k))
  starts = kmeans_starts(spaces, k, seed)
  res = fit_auto(a, b, k, spaces=spaces, seed=seed, progress=False, say=lambda s: None)
  labels = {}
  for s, x in (("a", a), ("b", b)):
    labels[f"k-means sph {s}"] = starts[s][1]
    labels[f"k-means raw {s}"] = raw_kmeans(x, k)
    labels[f"k-means pca50w {s}"] = raw_kmeans(pca_whiten(x), k)
  for entry, pred in zip(res.candidates, member_labels(res.members, a, b)):
    labels[f"run {entry['phi1']} {entry['start']}"] = pred
  labels["labels"] = vote_labels(res, a, b)
  judged = {s: spaces.cond2[s] for s in "ab"}
  for name in [n for n in labels if n.startswith("k-means") or n == "labels"]:
    labels[f"refined({name})"] = refine(judged, labels[name], k)[0]
  return labels, spaces


def load(folder: str, spec: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(a, b, labels)`` of ``name`` or ``name@R`` (cut to a long tail of imbalance ratio R)."""
  name, _, ratio = spec.partition("@")
  with np.load(os.path.join(folder, name + ".npz")) as f:
    a, b, y = f["phi_a"].astype(np.float32), f["phi_b"].astype(np.float32), f["labels"]
  if ratio:
    rows = long_tailed(y, float(ratio))
    a, b, y = a[rows], b[rows], np.unique(y[rows], return_inverse=True)[1]
  return a, b, y


def evenness(labels: np.ndarray, k: int) -> float:
  """Entropy of the class sizes of ``labels`` over its maximum ``log k`` (1: equal sizes)."""
  p = np.bincount(labels, minlength=k) / len(labels)
  return float(-np.sum(p[p > 0] * np.log(p[p > 0])) / np.log(k))


def kmeans_sizes(folder: str, specs: list[str], seed: int = 42) -> None:
  """Prints each set's true sizes and its spaces' k-means sizes (the search's starts), with their evenness."""
  print(f"  {'set':<22}{'true':>7}{'a':>7}{'b':>7}  sizes: true | a | b")
  for spec in specs:
    a, b, y = load(folder, spec)
    k = len(np.unique(y))
    starts = kmeans_starts(condition_spaces(a, b, kept_dims(k)), k, seed)
    parts = [y, starts["a"][1], starts["b"][1]]
    even = "".join(f"{evenness(lab, k):7.2f}" for lab in parts)
    sizes = " | ".join(str(sorted(np.bincount(lab, minlength=k).tolist(), reverse=True)) for lab in parts)
    print(f"  {spec:<22}{even}  {sizes}", flush=True)


def partitions(x: np.ndarray, k: int, seed: int = 42) -> dict[str, np.ndarray]:
  """Label-free partitions of one conditioned space into ``k`` clusters, by name."""
  out = {"sph k-means": spherical_kmeans(x, k, seed)[1]}
  for m in (3, 5):  # over-cluster, then merge the centroids
    centroids, labels = spherical_kmeans(x, m * k, seed)
    out[f"{m}k merged"] = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(centroids).labels_[labels]
  out["ward rows"] = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(x).labels_
  z = PCA(min(32, x.shape[1]), random_state=0).fit_transform(x)
  out["gmm diag"] = GaussianMixture(k, covariance_type="diag", n_init=3, random_state=0).fit(z).predict(z)
  return out


def partition_sizes(folder: str, specs: list[str]) -> None:
  """Prints, per set and space, each partition's evenness / ACC (%) beside the true sizes' evenness."""
  for spec in specs:
    a, b, y = load(folder, spec)
    k = len(np.unique(y))
    spaces = condition_spaces(a, b, kept_dims(k))
    for s in "ab":
      rows = partitions(spaces.cond1[s], k)
      cells = "  ".join(
        f"{n} {evenness(lab, k):.2f} / {100 * hungarian_accuracy(lab, y):.0f}" for n, lab in rows.items()
      )
      print(f"  {spec:<20} true {evenness(y, k):.2f}  space {s}: {cells}", flush=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder", help="the folder benchmarks/quality_data.py wrote")
  p.add_argument("--only", default="fortunes@10,digits@10,debian_sections@10,fashion_mnist@10,fortunes,debian_sections")
  p.add_argument("--json", help="also write every row to this file")
  p.add_argument("--sizes-only", action="store_true", help="only each space's k-means sizes and their evenness")
  p.add_argument("--partitions", action="store_true", help="only the evenness of other label-free partitions")
  args = p.parse_args()
  if args.sizes_only:
    return kmeans_sizes(args.folder, args.only.split(","))
  if args.partitions:
    return partition_sizes(args.folder, args.only.split(","))
  out = {}
  for spec in args.only.split(","):
    t0 = time.time()
    a, b, y = load(args.folder, spec)
    k = len(np.unique(y))
    labels, spaces = candidates(a, b, k)
    judged = [spaces.cond2["a"], spaces.cond2["b"]]
    sizes = lambda lab: sorted(np.bincount(lab, minlength=k).tolist(), reverse=True)
    print(f"\n{spec}: n={len(y)}, k={k}; true sizes {sizes(y)}")
    print(f"  {'candidate':<30}{'ACC':>6}{'sep a':>8}{'sep b':>8}{'mean':>8}  sizes")
    rows = {}
    for cand, lab in labels.items():
      sep = separability_per_space(judged, lab)
      rows[cand] = {"acc": evaluate(lab, y)["acc"], "separability": sep, "sizes": sizes(lab)}
      print(
        f"  {cand:<30}{100 * rows[cand]['acc']:6.1f}{sep[0]:8.3f}{sep[1]:8.3f}{np.mean(sep):8.3f}  {sizes(lab)}",
        flush=True,
      )
    out[spec] = {"true_sizes": sizes(y), "rows": rows, "seconds": round(time.time() - t0, 1)}
    if args.json:
      with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
