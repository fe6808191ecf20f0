"""Label-free conditioning of a raw representation: centring, PCA and a scale (or unit rows),
fitted on the training split and applied to any split; and spherical k-means, the start
``hume_jax.auto`` offers HUME besides the official random one.

Why each step (``hume_jax.auto``'s docstring has the measurements): centring spreads an
all-positive cone of features over the sphere, so that a task encoder without bias can give
every class some rows; scaling ``phi2`` to unit top eigenvalue makes ``inner_lr`` a fraction of
the largest stable SGD step whatever the features' scale; PCA bounds the cost of raw
1000-2000-d inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MAX_DIM = 128


class Conditioning(NamedTuple):
  """An affine map ``x -> ((x - mean) @ components.T) * scale``, then unit rows if ``unit_rows``.

  Attributes:
    mean: ``[d]`` mean of the fitted split.
    components: ``[r, d]`` leading principal directions (``r <= max_dim``).
    scale: ``[]`` multiplier after projection.
    unit_rows: L2-normalise rows at the end (for ``phi1``).
    explained: share of the variance the ``r`` components keep.
  """
  mean: np.ndarray
  components: np.ndarray
  scale: float
  unit_rows: bool
  explained: float


def fit_conditioning(x: np.ndarray, *, unit_rows: bool, max_dim: int = MAX_DIM) -> Conditioning:
  """Centring and PCA to ``min(max_dim, d, n)`` components fitted on ``x [n, d]``.

  With ``unit_rows`` (``phi1``), rows are L2-normalised after centring; otherwise (``phi2``)
  they are scaled so that the largest eigenvalue of their covariance is 1.
  """
  x = np.asarray(x, np.float64)
  mean = x.mean(0)
  _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
  r = min(max_dim, len(s))
  var = s ** 2 / len(x)
  scale = 1.0 if unit_rows else float(1 / np.sqrt(max(var[0], 1e-30)))
  return Conditioning(mean, vt[:r], scale, unit_rows, float(var[:r].sum() / max(var.sum(), 1e-30)))


def apply_conditioning(c: Conditioning, x: np.ndarray) -> np.ndarray:
  """``x [m, d]`` mapped by ``c``: ``float32 [m, r]``."""
  z = (np.asarray(x, np.float64) - c.mean) @ c.components.T * c.scale
  if c.unit_rows:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.where(norms > 0, norms, 1.0)  # a row at the mean stays 0: it gets no class preference
  return z.astype(np.float32)


def condition_splits(train: dict, val: dict | None, max_dim: int = MAX_DIM) -> tuple[dict, dict | None]:
  """``phi1`` and ``phi2`` of both splits conditioned as ``fit_auto`` does (fitted on ``train``)."""
  c1 = fit_conditioning(train["phi1"], unit_rows=True, max_dim=max_dim)
  c2 = fit_conditioning(train["phi2"], unit_rows=False, max_dim=max_dim)
  cond = lambda d: None if d is None else {**d, "phi1": apply_conditioning(c1, d["phi1"]),
                                           "phi2": apply_conditioning(c2, d["phi2"])}
  return cond(train), cond(val)


def spherical_kmeans(phi1: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """k-means (``n_init=10``) on the unit rows ``phi1 [n, d1]``: ``(centroids [k, d1] as unit
  rows, each row's cluster [n])``."""
  from sklearn.cluster import KMeans
  km = KMeans(k, n_init=10, random_state=seed).fit(phi1)
  centers = km.cluster_centers_
  return (centers / np.linalg.norm(centers, axis=1, keepdims=True)).astype(phi1.dtype), km.labels_.astype(np.int64)
