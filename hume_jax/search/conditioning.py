"""Label-free conditioning of a raw representation: centring, PCA and a scale (or unit rows),
fitted on the training split and applied to any split; and spherical k-means, the start
``hume_jax.search.auto`` offers HUME besides the official random one.

The official settings assume what the paper's inputs had: ``phi2`` on the scale its inner
learning rate was tuned for, and ``phi1`` spread around the origin of the unit sphere.
Raw features of another model break both. Two failures follow, and conditioning removes
their causes rather than their symptoms:

* **Empty classes.** The task encoder has no bias (Eq. 3): a labeling is the argmax of
  ``phi1 @ E^T`` over directions through the origin. Features that are all positive (ReLU
  pools, e.g. a ResNet's) lie in a narrow cone after L2 normalisation; every row then has
  nearly the same logits, and a class whose direction points away from the cone is never
  the argmax, although the mean soft labeling (what Eq. 7's entropy sees on a subset) can
  look balanced. Centring ``phi1`` before L2 normalisation spreads it over the sphere.
* **No signal from the inner loop.** One inner SGD step (Eq. 5) moves the logits by about
  ``inner_lr * lambda_max(cov(phi2))`` along the leading direction. With ``phi2`` a unit
  sentence embedding (``lambda_max`` ~ 0.01) the official 1e-3 barely moves the classifier
  in 300 steps; with raw CNN features (~ 100s) it is far too large for other inputs. Here
  ``phi2`` is centred and scaled to ``lambda_max = 1``, and ``inner_lr`` is a fraction of
  the largest stable step (``2 / lambda_max``).

PCA to ``max_dim`` components also bounds the cost of raw 1000-2000-d inputs. A labeling of
more classes than that keeps ``k`` components (``kept_dims``): the task encoder needs ``k <= d1``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hume_jax.evaluation.kmeans import cluster
from hume_jax.evaluation.sampling import BATCH, ROWS, row_blocks

MAX_DIM = 128


def kept_dims(k: int, max_dim: int = MAX_DIM) -> int:
  """Principal components the conditioning keeps for ``k`` classes: ``max_dim``, or ``k`` when
  more (Eq. 3's task encoder has ``k`` orthonormal rows in ``phi1``); a space with fewer raw
  dimensions or samples keeps them all."""
  return max(int(max_dim), int(k))


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


def fit_conditioning(x: np.ndarray, *, unit_rows: bool, max_dim: int = MAX_DIM, whiten: bool = False) -> Conditioning:
  """Centring and PCA to ``min(max_dim, d, n)`` components fitted on ``x [n, d]``.

  With ``unit_rows`` (``phi1``), rows are L2-normalised after centring; otherwise (``phi2``)
  they are scaled so that the largest eigenvalue of their covariance is 1. With ``whiten``
  every component is first scaled to unit variance (folded into ``components``). Up to
  ``sampling.ROWS`` rows the components are the SVD's of the centred rows; past that, the
  eigenvectors of the covariance accumulated over row batches (the same subspace, memory ``d x d``).
  """
  mean, var, vt = _principal_axes(x)
  r = min(max_dim, len(var))
  components = vt[:r] / np.sqrt(np.maximum(var[:r], 1e-30))[:, None] if whiten else vt[:r]
  top = 1.0 if whiten else var[0]
  scale = 1.0 if unit_rows else float(1 / np.sqrt(max(top, 1e-30)))
  return Conditioning(mean, components, scale, unit_rows, float(var[:r].sum() / max(var.sum(), 1e-30)))


def _principal_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(mean [d], variances [min(n, d)] in decreasing order, their directions [min(n, d), d])`` of ``x [n, d]``.

  Up to ``ROWS`` rows: the SVD of the centred rows in float64. Past that, the eigenvectors of the
  covariance accumulated over row batches (the same subspace; cost linear in n, memory ``BATCH x d +
  d x d``, a memory map read one batch at a time): in float64 on the host when the default device is
  the CPU, else on the accelerator in float32 at full matmul precision (``on_accelerator``); each direction
  signed so that its largest coordinate is positive, the same spaces from the host and from a device.
  """
  n = len(x)
  if n <= ROWS:  # the SVD's signs as LAPACK gives them: the labels of the measured quality sets (benchmarks/LOG.md)
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, s**2 / n, vt
  if not on_accelerator():  # the host's float64 BLAS is as fast as XLA's CPU float32 here
    batches = range(0, n, BATCH)
    mean = sum(np.asarray(x[i : i + BATCH], np.float64).sum(0) for i in batches) / n
    cov = sum((b := np.asarray(x[i : i + BATCH], np.float64) - mean).T @ b for i in batches) / n
    var, vecs = np.linalg.eigh(cov)
    return mean, np.maximum(var[::-1], 0.0), _signed(vecs[:, ::-1].T)
  # one pass: moments about a shift near the mean, rounded to the float32 the device subtracts
  shift = np.asarray(x[: min(n, BATCH)], np.float64).mean(0).astype(np.float32).astype(np.float64)
  moments = (jnp.zeros(x.shape[1], jnp.float32), jnp.zeros((x.shape[1], x.shape[1]), jnp.float32))
  for block, rows in row_blocks(x):
    moments = _add_moments(moments, block, rows, jnp.asarray(shift, jnp.float32))
  offset = np.asarray(moments[0], np.float64) / n  # mean - shift
  cov = np.asarray(moments[1], np.float64) / n - np.outer(offset, offset)
  var, vecs = np.linalg.eigh(cov)
  return shift + offset, np.maximum(var[::-1], 0.0), _signed(vecs[:, ::-1].T)


def _signed(directions: np.ndarray) -> np.ndarray:
  """``directions [r, d]``, each row's sign flipped where needed so that its largest-magnitude entry is positive."""
  largest = directions[np.arange(len(directions)), np.argmax(np.abs(directions), axis=1)]
  return directions * np.where(largest < 0, -1.0, 1.0)[:, None]


def on_accelerator() -> bool:
  """Whether conditioning past ``ROWS`` rows runs on the default device (a GPU or TPU) rather than the host."""
  return jax.default_backend() != "cpu"


@jax.jit
def _add_moments(moments: tuple, block: jax.Array, rows: jax.Array, shift: jax.Array) -> tuple:
  # sums of (x - shift) and (x - shift)(x - shift)^T; padding rows masked out; HIGHEST: float32 products
  z = (block - shift[None, :]) * (jnp.arange(block.shape[0]) < rows)[:, None]
  return moments[0] + jnp.sum(z, axis=0), moments[1] + jnp.matmul(z.T, z, precision=jax.lax.Precision.HIGHEST)


def apply_conditioning(c: Conditioning, x: np.ndarray) -> np.ndarray:
  """``x [m, d]`` mapped by ``c``: ``float32 [m, r]``, computed in row batches (in float64 on the host;
  past ``ROWS`` rows on an accelerator, in float32 there: ``on_accelerator``)."""
  return _mapped(c, x, (c.unit_rows,))[0]


def _mapped(c: Conditioning, x: np.ndarray, unit_rows: tuple[bool, ...]) -> list[np.ndarray]:
  """``x`` projected once by ``c`` and returned in each form asked: unit rows (True) or scaled by
  ``c.scale`` (False), e.g. ``(True, False)``: a space as ``phi1`` and as ``phi2`` from one read."""
  outs = [np.empty((len(x), c.components.shape[0]), np.float32) for _ in unit_rows]
  if len(x) > ROWS and on_accelerator():
    mean, comps = jnp.asarray(c.mean, jnp.float32), jnp.asarray(c.components.T, jnp.float32)
    for i, (block, rows) in zip(range(0, len(x), BATCH), row_blocks(x)):
      for out, z in zip(outs, _map_block(block, mean, comps, c.scale, unit_rows)):
        out[i : i + rows] = np.asarray(z)[:rows]
    return outs
  for i in range(0, len(x), BATCH):
    z = (np.asarray(x[i : i + BATCH], np.float64) - c.mean) @ c.components.T
    for out, unit in zip(outs, unit_rows):
      out[i : i + len(z)] = _unit(z) if unit else z * c.scale
  return outs


def _unit(z: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(z, axis=1, keepdims=True)
  return z / np.where(norms > 0, norms, 1.0)  # a row at the mean stays 0: it gets no class preference


@functools.partial(jax.jit, static_argnames=("unit_rows",))
def _map_block(block: jax.Array, mean: jax.Array, comps: jax.Array, scale, unit_rows: tuple[bool, ...]) -> list:
  z = jnp.matmul(block - mean[None, :], comps, precision=jax.lax.Precision.HIGHEST)
  norms = jnp.linalg.norm(z, axis=1, keepdims=True)
  return [z / jnp.where(norms > 0, norms, 1.0) if unit else z * scale for unit in unit_rows]


def condition_splits(train: dict, val: dict | None, max_dim: int = MAX_DIM) -> tuple[dict, dict | None]:
  """``phi1`` and ``phi2`` of both splits conditioned as ``fit_auto`` does (fitted on ``train``)."""
  c1 = fit_conditioning(train["phi1"], unit_rows=True, max_dim=max_dim)
  c2 = fit_conditioning(train["phi2"], unit_rows=False, max_dim=max_dim)
  cond = lambda d: (
    None if d is None else {**d, "phi1": apply_conditioning(c1, d["phi1"]), "phi2": apply_conditioning(c2, d["phi2"])}
  )
  return cond(train), cond(val)


def spherical_kmeans(phi1: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """k-means (``n_init=10``) on the unit rows ``phi1 [n, d1]``: ``(centroids [k, d1] as unit
  rows, each row's cluster [n])``. Past ``sampling.ROWS`` rows it is fitted on a seeded subsample
  of that many and every row takes its nearest centroid (``kmeans.cluster``)."""
  centers, labels = cluster(phi1, k, seed)
  return (centers / np.linalg.norm(centers, axis=1, keepdims=True)).astype(phi1.dtype), labels


class Spaces(NamedTuple):
  """The two raw spaces conditioned both ways (same PCA): ``as_phi1[s]`` (unit rows) and
  ``as_phi2[s]`` (unit top eigenvalue) for space ``s`` in ``("a", "b")``, and the training rows
  mapped by each (``cond1[s]``, ``cond2[s]``)."""

  as_phi1: dict
  as_phi2: dict
  cond1: dict
  cond2: dict


def condition_spaces(phi_a: np.ndarray, phi_b: np.ndarray, max_dim: int = MAX_DIM, whiten: bool = False) -> Spaces:
  spaces = {"a": np.asarray(phi_a), "b": np.asarray(phi_b)}
  as_phi2 = {s: fit_conditioning(x, unit_rows=False, max_dim=max_dim, whiten=whiten) for s, x in spaces.items()}
  as_phi1 = {s: c._replace(scale=1.0, unit_rows=True) for s, c in as_phi2.items()}
  mapped = {s: _mapped(c, spaces[s], (True, False)) for s, c in as_phi2.items()}  # one read of each space
  return Spaces(as_phi1, as_phi2, {s: m[0] for s, m in mapped.items()}, {s: m[1] for s, m in mapped.items()})


def kmeans_starts(spaces: Spaces, k: int, seed: int) -> dict:
  """Spherical k-means of each space, whose centroids start HUME: ``{space: (centroids, labels)}``."""
  return {s: spherical_kmeans(spaces.cond1[s], k, seed) for s in ("a", "b")}
