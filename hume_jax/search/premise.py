"""Does this pair of representations favour one labeling? A label-free check of HUME's premise.

HUME's premise is that the human labeling is linearly separable in *every* strong
representation, more than other labelings are. Where it holds, the labeling that is separable in
both spaces is rare, and HUME finds it. Where it does not, simple partitions of one space, such as
its k-means clusters, are as separable in the *other* space as anything a search finds, and no
criterion built on separability (HUME's objective included) can prefer the human labeling.

``premise_report`` measures that on the reported labeling, without labels: the chance-corrected
CV score (``metrics.separability_per_space``) of the labeling found in each space, beside that
of spherical k-means of each space judged in the other one. The premise holds when the *human*
labeling beats those partitions, and the human labeling's score is not known; the labeling found
is known, and a search for the most separable labeling overshoots the human one. On the eight
quality sets of ``benchmarks/README.md`` the labeling found was at most 0.1955 more separable than
the human labels in any space (``MARGIN`` rounds that up). So the run warns unless the labeling found beats
every k-means partition that is a *different* labeling (adjusted Rand index to the found one
below ``SAME``) by at least ``MARGIN`` in the space it was not clustered in: below that lead, a
human-like labeling may be no more separable than a plain partition of one space, and no
criterion of separability can then prefer it. (A k-means partition that is the found labeling is
agreement, not competition: strong features whose clusters are the classes.) The same README
reports the warning's hits and misses against the human labels on every quality set, and on
held-out pairs that did not set ``MARGIN``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from hume_jax.evaluation.metrics import separability_per_space
from hume_jax.search.conditioning import condition_spaces, kept_dims, spherical_kmeans

MARGIN = 0.2  # kappa; the largest lead of the labeling found over the human one measured on the quality sets
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
  spaces = condition_spaces(phi1, phi2, kept_dims(k))
  judged = [spaces.cond2["a"], spaces.cond2["b"]]
  found = separability_per_space(judged, labels, n_jobs=-1)  # after training: every core
  report = {"found": dict(zip(names, found))}
  for own in (0, 1):
    partition = spherical_kmeans(spaces.cond1["ab"[own]], min(k, len(phi1)), seed)[1]
    kappas = separability_per_space(judged, partition, n_jobs=-1)
    agreement = float(adjusted_rand_score(labels, partition))
    report[f"k-means of {names[own]}"] = {**dict(zip(names, kappas)), "ari_to_found": agreement}
  gap, own, other = smallest_lead(report, names)
  theirs, ours = report[f"k-means of {own}"][other], report["found"][other]
  report.update(margin=MARGIN, same_above=SAME, favoured=bool(gap >= MARGIN), warning=None)
  if gap < MARGIN:
    report["warning"] = (
      f"these representations may not single out a human-like labeling: k-means of {own} alone, a different "
      f"labeling, is linearly separable in {other} at kappa {theirs:.3f}, within {MARGIN} of the labeling found "
      f"({ours:.3f}). A search for the most separable labeling can overshoot a human labeling by that much, so a "
      "human-like labeling may be no more separable here than a plain partition, and no criterion of "
      "separability, HUME's included, could then prefer it. Stronger or more different representations are what "
      "would help (e.g. a self-supervised model trained on these data and a large pretrained one such as DINOv2 "
      "or CLIP)"
    )
  return report


def smallest_lead(report: dict, names: tuple[str, str]) -> tuple[float, str, str]:
  """``(lead, own, other)``: the smallest lead, in kappa, of the labeling found over k-means of space ``own``
  judged in space ``other``, among the partitions that are a different labeling (ARI to it under ``SAME``;
  ``inf`` when none is). Reads a report of ``premise_report``, so saved reports can be judged again."""
  leads = []
  for own, other in (names, names[::-1]):
    partition = report[f"k-means of {own}"]
    lead = report["found"][other] - partition[other] if partition["ari_to_found"] < SAME else np.inf
    leads.append((float(lead), own, other))
  return min(leads, key=lambda t: t[0])


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
