"""Does each choice of ``--preset auto`` help on every kind of set? Variants of the search, each
with a fixed number of iterations (no budget, so that the load of the machine changes nothing).

    python benchmarks/auto_ablation.py data/quality --only cifar10,digits --variants default,pca256 --json abl.json

Per set and variant: ACC/NMI/ARI of the labels (the vote) against the human labels, which the
search never sees, the label-free separability of the kept run (the criterion), empty classes and
seconds. A choice is kept only where it helps or is neutral on every set (``benchmarks/LOG.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from hume_jax.evaluation.metrics import evaluate
from hume_jax.search.auto import AUTO, fit_auto, vote_labels
from hume_jax.search.conditioning import MAX_DIM, condition_spaces

VARIANTS = {
  "default": {},
  "pca64": {"max_dim": 64},
  "pca256": {"max_dim": 256},
  "kmeans_start_only": {"starts": ("k-means",)},
  "random_start_only": {"starts": ("random",)},
  "iters600": {"num_iters": 600},
  "subsets5000": {"config": dataclasses.replace(AUTO, subset_size=5000)},
  "inner_lr0.3": {"config": dataclasses.replace(AUTO, inner_lr=0.3)},
  "whiten64": {"whiten": True, "max_dim": 64},
  "whiten128": {"whiten": True},
}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("folder")
  p.add_argument("--only", default="cifar10,cifar10_lite2,debian_sections_st,digits")
  p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
  p.add_argument("--json", help="rows are added to this file (kept across runs)")
  args = p.parse_args()
  rows = json.load(open(args.json)) if args.json and os.path.exists(args.json) else []
  for name in args.only.split(","):
    with np.load(os.path.join(args.folder, f"{name}.npz")) as f:
      a, b, y = f["phi_a"].astype(np.float32), f["phi_b"].astype(np.float32), f["labels"]
    k = len(np.unique(y))
    for variant in args.variants.split(","):
      kw = {"num_iters": 300, **VARIANTS[variant]}
      whiten = kw.pop("whiten", False)
      t0 = time.perf_counter()
      spaces = condition_spaces(a, b, kw.get("max_dim", MAX_DIM), whiten=whiten) if whiten else None
      res = fit_auto(a, b, k, seed=42, progress=False, say=lambda s: None, spaces=spaces, **kw)
      pred = vote_labels(res, a, b)
      row = {
        "set": name,
        "variant": variant,
        **evaluate(pred, y),
        "criterion": res.candidates[res.reference]["separability"],
        "empty": int((np.bincount(pred, minlength=k) == 0).sum()),
        "seconds": round(time.perf_counter() - t0, 1),
      }
      rows.append(row)
      print(
        f"{name:20s} {variant:18s} ACC {100 * row['acc']:5.1f}  criterion {row['criterion']:.4f}  "
        f"{row['seconds']:6.0f} s",
        flush=True,
      )
      if args.json:
        with open(args.json, "w") as f:
          json.dump(rows, f, indent=1)
  summary(rows)


def summary(rows: list[dict]) -> None:
  sets = list(dict.fromkeys(r["set"] for r in rows))
  variants = list(dict.fromkeys(r["variant"] for r in rows))
  print("\n| variant | " + " | ".join(sets) + " |\n|---" + "|---" * len(sets) + "|")
  for v in variants:
    cells = []
    for s in sets:
      r = [x for x in rows if x["set"] == s and x["variant"] == v]
      cells.append(f"{100 * r[-1]['acc']:.1f} ({r[-1]['criterion']:.3f})" if r else "-")
    print(f"| {v} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
