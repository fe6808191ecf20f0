"""Class-size priors: the sizes a labeling is drawn towards instead of equal ones.

HUME's objective (Eq. 7) rewards the entropy of the mean labeling, which is largest when every
class has the same size; on long-tailed data that splits the large classes and swallows the small
ones. A prior ``pi`` (shares sorted largest first) replaces the entropy by ``H(pi) - KL(sizes by
rank || pi)`` (``hume_jax.core._objective.size_term``); the uniform prior is the paper's term. Priors
are given by a user who knows the sizes (``as_prior``) or estimated without labels from a
partition the search already has (``from_partition``).
"""

from __future__ import annotations

import numpy as np

FLOOR = 0.1  # no class of a prior estimated from a partition gets less than FLOOR / k of the samples
SHORT = 0.25  # a found class under this share of its prior size (by rank) is reported


def as_prior(sizes, k: int | None = None) -> tuple[float, ...]:
  """Class sizes (counts or shares, any order) as a prior: shares sorted largest first, summing to 1.

  Raises ``ValueError`` naming what was wrong when ``sizes`` are not ``k`` positive finite numbers.
  """
  p = np.asarray(sizes, dtype=np.float64).ravel()
  k = len(p) if k is None else k
  if p.shape != (k,) or not np.all(np.isfinite(p)) or not np.all(p > 0):
    raise ValueError(f"class sizes: expected {k} positive numbers, one per class, got {np.asarray(sizes).tolist()}")
  return tuple(float(v) for v in np.sort(p / p.sum())[::-1])


def exponential(k: int, ratio: float) -> tuple[float, ...]:
  """The long-tailed profile of the benchmarks: class ``c`` of ``k`` gets a share proportional to
  ``ratio ** (-c / (k - 1))``, so the largest class is ``ratio`` times the smallest."""
  return as_prior(float(ratio) ** (-np.arange(k) / max(k - 1, 1)))


def from_partition(labels: np.ndarray, k: int, floor: float = FLOOR) -> tuple[float, ...]:
  """The sizes of a label-free partition (k-means of a space) as a prior: its class shares,
  each raised to at least ``floor / k``, sorted largest first."""
  counts = np.bincount(np.asarray(labels), minlength=k)[:k].astype(np.float64)
  shares = counts / max(counts.sum(), 1)
  return as_prior(np.maximum(shares, floor / k))


def imbalance(prior) -> float:
  """Largest share over smallest: 1 for equal sizes."""
  p = np.asarray(prior, dtype=np.float64)
  return float(p.max() / p.min())


def from_kmeans(prior) -> bool:
  """Whether ``prior`` asks for the k-means starts' sizes (``"k-means"``), whatever else it may be."""
  return isinstance(prior, str) and prior == "k-means"


def run_priors(prior, kmeans: dict, k: int):
  """The prior of the auto preset's runs: None (the paper's entropy), the sizes a user gave
  (``as_prior``), or ``"k-means"``: for each space, the sizes of its spherical k-means partition
  (``kmeans``: ``{space: (centroids, labels)}``, the runs' starts), used by the runs that read
  that space as ``phi1`` (``{space: prior}``)."""
  if prior is None:
    return None
  if isinstance(prior, str):
    if prior != "k-means":
      raise ValueError(f'prior: expected None, "k-means" or {k} class sizes, got {prior!r}')
    return {space: from_partition(labels, k) for space, (_, labels) in kmeans.items()}
  return as_prior(prior, k)


def short_classes(counts, prior=None, short: float = SHORT) -> list[dict]:
  """The found classes much smaller than the prior allows: by rank (largest found against the
  prior's largest share, and so on), each class with fewer than ``short`` times its prior size
  (``prior`` None: equal sizes). Returns ``[{"class", "found", "prior"}]``, smallest first."""
  counts = np.asarray(counts, dtype=np.int64)
  k, n = len(counts), int(counts.sum())
  p = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
  order = np.argsort(-counts, kind="stable")  # class ids by found size, largest first
  expected = p * n  # the prior's sizes, largest first
  rows = [
    {"class": int(c), "found": int(counts[c]), "prior": round(float(e), 1)}
    for c, e in zip(order, expected)
    if counts[c] < short * e
  ]
  return rows[::-1]
