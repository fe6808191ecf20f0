"""How the label-free criterion's ranking of labelings holds as it reads fewer rows.

    python benchmarks/criterion_rows.py [--rows 1000,2500,5000] [--data hume_jax/data/fashion_mnist.npz]

``metrics.separability_per_space`` reads at most ``sampling.ROWS`` rows (a seeded subsample
past that). On the shipped Fashion-MNIST features (10,000 test images, both spaces conditioned
as ``--preset auto`` does), a pool of labelings of k = 10 is ranked on every row and on seeded
subsamples of fewer rows: k-means partitions of each space (three seeds), the human labels, and
the human labels with 10%, 25% and 40% of the rows relabelled at random. Printed: each
labeling's criterion at each size, and Spearman's rank correlation and the top-1 agreement with
the ranking on every row. The human labels are only one more labeling here: nothing is chosen.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans

from hume_jax.evaluation.metrics import separability_per_space
from hume_jax.search.conditioning import condition_spaces


def pool(a: np.ndarray, b: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  labelings = {"human": y}
  for share in (0.1, 0.25, 0.4):
    noisy = y.copy()
    idx = rng.random(len(y)) < share
    noisy[idx] = rng.integers(0, 10, idx.sum())
    labelings[f"human, {int(share * 100)}% relabelled"] = noisy
  for name, x in (("a", a), ("b", b)):
    for s in (0, 1, 2):
      labelings[f"k-means of {name}, seed {s}"] = KMeans(10, n_init=1, random_state=s).fit_predict(x)
  return labelings


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--rows", default="1000,2500,5000", help="comma-separated subsample sizes")
  p.add_argument("--data", default="hume_jax/data/fashion_mnist.npz")
  args = p.parse_args()
  d = np.load(args.data)
  sp = condition_spaces(d["open_nsfw_test"], d["efficientnet_lite0_test"])
  judged = [sp.cond2["a"], sp.cond2["b"]]
  labelings = pool(sp.cond1["a"], sp.cond1["b"], d["labels_test"])
  sizes = [len(d["labels_test"])] + [int(r) for r in args.rows.split(",")]
  scores = {n: {} for n in sizes}
  for n in sizes:
    rows = np.sort(np.random.default_rng(0).choice(len(d["labels_test"]), n, replace=False))
    for name, lab in labelings.items():
      scores[n][name] = float(np.mean(separability_per_space([x[rows] for x in judged], lab[rows])))
  print("labeling".ljust(32) + "".join(f"{n:>10}" for n in sizes))
  for name in labelings:
    print(name.ljust(32) + "".join(f"{scores[n][name]:10.4f}" for n in sizes))
  full = [scores[sizes[0]][k] for k in labelings]
  for n in sizes[1:]:
    sub = [scores[n][k] for k in labelings]
    rho = spearmanr(full, sub).statistic
    top = list(labelings)[int(np.argmax(full))] == list(labelings)[int(np.argmax(sub))]
    print(f"{n} rows: Spearman {rho:.3f} with every row's ranking; same top labeling: {top}")


if __name__ == "__main__":
  main()
