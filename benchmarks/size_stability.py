"""Does the runs' agreement say which class sizes to draw towards? On each set (long-tailed ones as
``quality.long_tailed`` cuts them), the default (equal sizes) and ``--class-sizes k-means`` side by side: the ACC
of each, and the runs' stability (mean pairwise adjusted Rand index of the search's runs, label-free, as
``--k auto`` judges K) and the kept run's separability. A size rule would pick the prior whose runs agree more.

    python benchmarks/size_stability.py data/quality fortunes@10 digits@10 debian_sections@10 fortunes digits
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
from size_candidates import load
from sklearn.metrics import adjusted_rand_score

from hume_jax.evaluation.metrics import hungarian_accuracy
from hume_jax.search.auto import fit_auto, member_labels, vote_labels


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder", help="the quality sets (benchmarks/quality_data.py)")
  p.add_argument("sets", nargs="+", help="NAME or NAME@R (a long tail of imbalance ratio R)")
  p.add_argument("--seed", type=int, default=42)
  p.add_argument("--json", help="write the rows to this file")
  args = p.parse_args()
  rows = {}
  for spec in args.sets:
    a, b, y = load(args.folder, spec)
    k = int(y.max()) + 1
    for prior in (None, "k-means"):
      t0 = time.perf_counter()
      res = fit_auto(a, b, k, seed=args.seed, progress=False, say=lambda s: None, prior=prior)
      preds = member_labels(res.members, a, b)
      agreement = [adjusted_rand_score(p1, p2) for p1, p2 in itertools.combinations(preds, 2)]
      row = {
        "acc": hungarian_accuracy(vote_labels(res, a, b), y),
        "stability": float(np.mean(agreement)) if agreement else None,
        "separability": res.candidates[res.reference]["separability"],
        "seconds": time.perf_counter() - t0,
      }
      rows[f"{spec} {prior or 'equal'}"] = row
      print(f"{spec:20s} {prior or 'equal':8s} " + "  ".join(f"{key} {v:.4f}" for key, v in row.items()), flush=True)
  if args.json:
    json.dump(rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
  main()
