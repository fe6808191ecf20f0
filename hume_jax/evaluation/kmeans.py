"""k-means in JAX: k-means++ seeding and Lloyd iterations, every restart at once under ``jax.vmap``.

The shape of ``ott.tools.k_means``: one key split into ``n_init`` keys, the whole run vmapped over
them, the restart of least inertia kept; with several local devices the restarts are split over
them. Seeding draws each next centre with probability proportional to its squared distance to the
nearest centre so far (Arthur & Vassilvitskii, 2007); Lloyd's iterations then alternate
nearest-centre assignment and means (a centre left without rows stays where it was) for a fixed
number of iterations, so the program has one shape. Distances are ``|c|^2 - 2 x.c`` from one
``[n, k]`` product per iteration. ``tests/test_kmeans.py`` checks it against scikit-learn's
``KMeans`` (inertia and partition).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

from hume_jax.evaluation.sampling import nearest, split_sharding, subsample, take

ITERS = 100  # Lloyd iterations (scikit-learn's max_iter is 300, but it stops once assignments settle)


def _scores(x: jax.Array, centers: jax.Array) -> jax.Array:
  """``[n, k]`` squared distances up to the per-row constant ``|x|^2``."""
  return jnp.sum(centers * centers, axis=1)[None, :] - 2 * x @ centers.T


def _seed(x: jax.Array, k: int, key: jax.Array) -> jax.Array:
  """k-means++ seeding: ``[k, d]`` centres drawn from the rows of ``x [n, d]``."""
  n = x.shape[0]
  sq = jnp.sum(x * x, axis=1)
  key, first = jax.random.split(key)
  centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[jax.random.randint(first, (), 0, n)])
  dist = jnp.maximum(sq - 2 * x @ centers[0] + jnp.sum(centers[0] ** 2), 0.0)

  def draw(i, carry):
    centers, dist, key = carry
    key, sub = jax.random.split(key)
    idx = jax.random.categorical(sub, jnp.log(jnp.maximum(dist, 1e-30)))
    c = x[idx]
    dist = jnp.minimum(dist, jnp.maximum(sq - 2 * x @ c + jnp.sum(c * c), 0.0))
    return centers.at[i].set(c), dist, key

  centers, _, _ = jax.lax.fori_loop(1, k, draw, (centers, dist, key))
  return centers


def _lloyd(x: jax.Array, centers: jax.Array, iters: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``iters`` Lloyd iterations from ``centers``: ``(centers, labels [n], inertia)``."""
  k = centers.shape[0]

  def step(centers, _):
    labels = jnp.argmin(_scores(x, centers), axis=1)
    sums = jax.ops.segment_sum(x, labels, num_segments=k)
    counts = jax.ops.segment_sum(jnp.ones_like(labels, x.dtype), labels, num_segments=k)
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centers), None

  centers, _ = jax.lax.scan(step, centers, None, length=iters)
  scores = _scores(x, centers)
  labels = jnp.argmin(scores, axis=1)
  inertia = jnp.sum(jnp.maximum(jnp.min(scores, axis=1) + jnp.sum(x * x, axis=1), 0.0))
  return centers, labels, inertia


@functools.partial(jax.jit, static_argnames=("k", "iters"))
def _kmeans(x: jax.Array, keys: jax.Array, k: int, iters: int):
  def one(key):
    return _lloyd(x, _seed(x, k, key), iters)

  centers, labels, inertia = jax.vmap(one)(keys)
  best = jnp.argmin(inertia)
  return centers[best], labels[best], inertia[best]


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10, iters: int = ITERS):
  """k-means of ``x [n, d]``: ``(centres [k, d], labels int64 [n], inertia)`` of the best of
  ``n_init`` seeded restarts, all run at once: on the default device, or split over as many local
  devices as divide ``n_init`` (``sampling.split_sharding``; the same result)."""
  x, keys = jnp.asarray(x, jnp.float32), jax.random.split(jax.random.PRNGKey(seed), n_init)
  shardings = split_sharding(n_init, "restarts")
  if shardings is not None:
    keys, x = jax.device_put(keys, shardings[0]), jax.device_put(x, shardings[1])
  centers, labels, inertia = _kmeans(x, keys, k, iters)
  return np.asarray(centers), np.asarray(labels, np.int64), float(inertia)


def cluster(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """``(centres [k, d], each row's cluster int64 [n])`` of ``x [n, d]``, fitted on at most
  ``sampling.ROWS`` rows (a seeded subsample past that; every row then takes its nearest centre).
  On a CPU scikit-learn's ``KMeans`` (the measured reference); on an accelerator ``kmeans``."""
  rows = subsample(len(x), seed=seed)
  fit = take(x, rows)
  if jax.default_backend() == "cpu":
    km = KMeans(k, n_init=n_init, random_state=seed).fit(fit)
    centers, labels = km.cluster_centers_, km.labels_.astype(np.int64)
  else:
    centers, labels, _ = kmeans(fit, k, seed, n_init)
  return centers, labels if rows is None else nearest(x, centers)
