"""Does this pair of representations favour one labeling? A label-free check of HUME's premise.

HUME's premise is that the human labeling is linearly separable in *every* strong
representation, more than other labelings are. Where it holds, the labeling that is separable in
both spaces is rare, and HUME finds it. Where it does not, simple partitions of one space, such as
its k-means clusters, are as separable in the *other* space as anything a search finds, and no
criterion built on separability (HUME's objective included) can prefer the human labeling.

``premise_report`` measures exactly that on the reported labeling, without labels: the
chance-corrected CV score (``metrics.separability_per_space``) of the labeling found in each
space, beside that of spherical k-means of each space judged in the other one. It warns when a
k-means partition that is a *different* labeling (adjusted Rand index to the found one below
``SAME``) comes within ``MARGIN`` of the found labeling in the space it was not clustered in: two
different labelings the pair cannot tell apart. (A k-means partition that is the found labeling
is agreement, not competition: strong features whose clusters are the classes.)
``benchmarks/README.md`` reports its hits and misses against the human labels on every quality set.
"""

from __future__ import annotations

import numpy as np

MARGIN = 0.02  # kappa; a few standard errors of a 5-fold kappa on thousands of samples
SAME = 0.8  # adjusted Rand index above which a k-means partition is the found labeling itself


def premise_report(
  phi1: np.ndarray,
  phi2: np.ndarray,
  labels: np.ndarray,
  k: int,
  seed: int = 0,
  names: tuple[str, str] = ("phi1", "phi2"),
) -> dict:
  """The premise check of ``labels [n]`` found on the samples ``phi1 [n, d1]``, ``phi2 [n, d2]``.

  Returns ``{"found": {name: kappa}, "k-means of <name>": {name: kappa}, ..., "margin",
  "favoured": bool, "warning": str or None}``; ``favoured`` is True when the labeling found beats
  every k-means partition that differs from it by at least ``MARGIN`` in the space it was not
  clustered in.
  """
  from sklearn.metrics import adjusted_rand_score

  from hume_jax.conditioning import condition_spaces, spherical_kmeans
  from hume_jax.metrics import separability_per_space

  spaces = condition_spaces(phi1, phi2)
  judged = [spaces.cond2["a"], spaces.cond2["b"]]
  found = separability_per_space(judged, labels)
  report = {"found": dict(zip(names, found))}
  worst = None
  for own, other in ((0, 1), (1, 0)):
    space = "ab"[own]
    partition = spherical_kmeans(spaces.cond1[space], min(k, len(phi1)), seed)[1]
    kappas = separability_per_space(judged, partition)
    agreement = float(adjusted_rand_score(labels, partition))
    report[f"k-means of {names[own]}"] = {**dict(zip(names, kappas)), "ari_to_found": agreement}
    gap = found[other] - kappas[other] if agreement < SAME else np.inf
    if worst is None or gap < worst[0]:
      worst = (gap, names[own], names[other], kappas[other], found[other])
  gap, own, other, theirs, ours = worst
  report.update(margin=MARGIN, same_above=SAME, favoured=bool(gap >= MARGIN), warning=None)
  if gap < MARGIN:
    report["warning"] = (
      f"these representations do not single out a labeling: k-means of {own} alone, a different labeling, is "
      f"about as linearly separable in {other} (kappa {theirs:.3f}) as the labeling found ({ours:.3f}), so no "
      "criterion of separability, HUME's included, can prefer a human-like labeling here. Bring stronger or "
      "more different representations (e.g. a self-supervised model trained on these data and a large "
      "pretrained one such as DINOv2 or CLIP)"
    )
  return report


def summary_line(report: dict) -> str:
  """One line for the console: the found labeling's separability beside the k-means partitions'."""
  names = list(report["found"])
  fmt = lambda key: (
    "/".join(f"{report[key][n]:.3f}" for n in names)
    + (f" (ARI {report[key]['ari_to_found']:.2f} to it)" if "ari_to_found" in report[key] else "")
  )
  parts = [f"{key.replace('found', 'labeling found')} {fmt(key)}" for key in report if isinstance(report[key], dict)]
  stands = "; the labeling found stands out" if report["favoured"] else ""
  return f"premise (label-free; kappa in {'/'.join(names)}): " + ", ".join(parts) + stands
