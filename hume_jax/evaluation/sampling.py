"""Costs linear in n: the label-free estimates fit on at most ``ROWS`` rows, and every row is
labelled in fixed-size batches on the device.

A criterion needs enough rows to rank labelings, not all of them, and k-means needs enough rows
to place its centroids. Past ``ROWS`` rows each such fit (``conditioning.spherical_kmeans``,
``metrics.separability_per_space``, the refinement's regressions, the premise check, the
baselines) reads a seeded uniform subsample of ``ROWS`` rows, the same one on any machine, and the
rows it did not read are labelled by what it fitted (``nearest``). Up to ``ROWS`` rows, every
quality set and the default job, nothing changes. ``benchmarks/README.md`` ("Rows a criterion
reads") measures how the criterion's ranking of labelings agrees with the one on every row as the
sample shrinks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

ROWS = 10_000
BATCH = 16_384  # rows per labelling batch: one compiled program for any n


def subsample(n: int, rows: int = ROWS, seed: int = 0) -> np.ndarray | None:
  """Sorted indices of a seeded uniform draw of ``rows`` of ``n`` rows, or None when ``n <= rows`` (all rows)."""
  if n <= rows:
    return None
  return np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))


def take(x: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
  """``x[idx]`` (all of ``x`` when ``idx`` is None); reads only those rows of a memory map."""
  return x if idx is None else np.asarray(x[idx])


@functools.partial(jax.jit, static_argnames=("squared",))
def _nearest_batch(x: jax.Array, centers: jax.Array, squared: bool = True) -> jax.Array:
  # argmin_c |x - c|^2 = argmin_c (|c|^2 - 2 x.c): one [batch, k] product, no [batch, k, d] tensor
  scores = jnp.sum(centers * centers, axis=1)[None, :] - 2 * x @ centers.T
  return jnp.argmin(scores, axis=1)


def row_sharding() -> jax.sharding.NamedSharding | None:
  """A batch's rows split over every local device (``[BATCH, d]`` as ``BATCH / D`` rows each), as the
  step splits its subsets; None on one device, or when ``BATCH`` does not split evenly."""
  devices = jax.local_devices()
  if len(devices) < 2 or BATCH % len(devices):
    return None
  mesh = jax.sharding.Mesh(np.array(devices), ("rows",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows", None))


def split_sharding(count: int, axis: str) -> tuple[jax.sharding.NamedSharding, jax.sharding.NamedSharding] | None:
  """``(split, replicated)``: ``count`` independent problems stacked on their first axis (k-means restarts,
  cross-validation folds) split over as many local devices as evenly divide ``count``, as the step splits
  its subsets, and the inputs they share replicated on the same devices; None on one device."""
  devices = jax.local_devices()
  used = max(d for d in range(1, len(devices) + 1) if count % d == 0)
  if used < 2:
    return None
  mesh = jax.sharding.Mesh(np.array(devices[:used]), (axis,))
  P = jax.sharding.PartitionSpec
  return jax.sharding.NamedSharding(mesh, P(axis)), jax.sharding.NamedSharding(mesh, P())


def row_blocks(x: np.ndarray):
  """``(block, rows)`` for each batch of ``BATCH`` rows of ``x [n, d]``: the rows as float32 on the
  devices (``row_sharding``), the last batch zero-padded so that every batch runs one compiled program,
  and how many of its rows are real. A memory map is read one batch at a time."""
  sharding = row_sharding()
  for start in range(0, len(x), BATCH):
    block = np.asarray(x[start : start + BATCH], np.float32)
    if len(block) < BATCH:
      block = np.concatenate([block, np.zeros((BATCH - len(block), block.shape[1]), np.float32)])
    yield (jnp.asarray(block) if sharding is None else jax.device_put(block, sharding)), min(BATCH, len(x) - start)


def nearest(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
  """Index of the nearest of ``centers [k, d]`` (Euclidean) for each row of ``x [n, d]``: ``int64 [n]``,
  computed in batches of ``BATCH`` rows split over the local devices (``row_blocks``), so memory
  stays ``BATCH x k``."""
  c = jnp.asarray(np.asarray(centers, np.float32))
  out = np.empty(len(x), np.int64)
  for start, (block, rows) in zip(range(0, len(x), BATCH), row_blocks(x)):
    out[start : start + rows] = np.asarray(_nearest_batch(block, c))[:rows]
  return out
