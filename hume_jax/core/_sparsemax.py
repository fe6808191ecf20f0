"""Sparsemax (Martins & Astudillo, 2016), the activation of HUME's task encoder (Eq. 3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_jvp
def sparsemax(z: jax.Array) -> jax.Array:
  """Euclidean projection of each row of ``z`` onto the probability simplex.

  ``sparsemax(z)_i = max(z_i - t(z), 0)`` with the threshold ``t(z)`` chosen so that the
  output sums to one: with ``z`` sorted decreasingly, the support size is the largest
  ``j`` with ``1 + j z_(j) > sum_{i<=j} z_(i)`` and ``t(z) = (sum_{i<=j} z_(i) - 1) / j``.

  Its Jacobian is the support-restricted one, ``diag(s) - s s^T / |S|`` with ``s`` the
  indicator of the support ``S`` (Martins & Astudillo, 2016, Eq. 12).

  Args:
    z: scores of shape ``[..., k]``.

  Returns:
    probabilities of shape ``[..., k]``, sparse, summing to one over the last axis.

  Example:
    >>> import jax.numpy as jnp
    >>> sparsemax(jnp.array([2.0, 1.0, -1.0]))
    Array([1., 0., 0.], dtype=float32)
  """
  z_sorted = _sorted_pairwise(z) if z.shape[-1] <= PAIRWISE_MAX_K else -jnp.sort(-z, axis=-1)
  cumsum = jnp.cumsum(z_sorted, axis=-1)
  j = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype).reshape((1,) * (z.ndim - 1) + (-1,))
  support_size = jnp.sum(1 + j * z_sorted > cumsum, axis=-1, keepdims=True)
  threshold = (jnp.take_along_axis(cumsum, support_size - 1, axis=-1) - 1) / support_size.astype(z.dtype)
  return jnp.maximum(z - threshold, 0)


# Up to this many classes ``z`` is sorted by pairwise comparisons (``k^2`` work per row),
# above it by XLA's sort (``k log k``). XLA's CPU backend sorts float rows with a general
# comparator-driven sort; at k = 10 the pairwise form costs about a fifth of it
# (``benchmarks/LOG.md``).
PAIRWISE_MAX_K = 32


def _sorted_pairwise(z: jax.Array) -> jax.Array:
  """``-jnp.sort(-z, axis=-1)`` (each row decreasing), bit for bit, without a sort (a ``-0.0``
  comes back as ``+0.0``, an equal value, so the threshold computed from it is the same).

  Row element ``i`` goes to position ``p_i = #{j : z_j > z_i} + #{j < i : z_j = z_i}``, a
  permutation of ``0..k-1`` (ties in index order); position ``p`` then holds the one ``z_i``
  with ``p_i = p``, picked by a sum whose other terms are exact zeros.
  """
  k, lead = z.shape[-1], (1,) * (z.ndim - 1)
  zi, zj = z[..., :, None], z[..., None, :]  # [..., i, j]
  before = (jnp.arange(k)[None, :] < jnp.arange(k)[:, None]).reshape(lead + (k, k))  # j < i
  position = jnp.sum((zj > zi) | ((zj == zi) & before), axis=-1)  # p_i, [..., k]
  picks = position[..., :, None] == jnp.arange(k).reshape(lead + (1, k))  # [..., i, p]
  return jnp.sum(jnp.where(picks, zi, 0), axis=-2)


@sparsemax.defjvp
def _sparsemax_jvp(primals, tangents):
  (z,), (dz,) = primals, tangents
  p = sparsemax(z)
  support = (p > 0).astype(z.dtype)
  # J dz = s * dz - s (s . dz) / |S|
  mean_on_support = jnp.sum(support * dz, axis=-1, keepdims=True) / jnp.sum(support, axis=-1, keepdims=True)
  return p, support * (dz - mean_on_support)
