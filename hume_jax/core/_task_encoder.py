"""HUME's task encoder (paper Eq. 3): ``labels = sparsemax(phi1 @ E^T / tau)`` with ``E``
a ``[k, d1]`` matrix of orthonormal rows and no bias.

The orthogonality constraint is a parametrisation, as in the official code
(``torch.nn.utils.parametrizations.orthogonal`` with its default Householder map and
trivialisation): ``E^T = base @ householder(raw)``, where ``base [d1, d1]`` is a fixed
orthogonal matrix whose first ``k`` columns are the initial rows of ``E``, and ``raw
[d1, k]`` is the trainable matrix (torch's ``parametrizations.weight.original``,
transposed). Only the strictly lower-triangular part of ``raw`` is trained; the signs on
its diagonal are fixed at ``-1`` so that ``raw`` of zeros below the diagonal gives
``E = base[:, :k]^T``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from hume_jax.core._sparsemax import sparsemax


class TaskEncoder(NamedTuple):
  """Parameters of the task encoder.

  Attributes:
    raw: ``[d1, k]`` trainable Householder vectors (strictly lower part) and signs (diagonal).
    base: ``[d1, d1]`` fixed orthogonal matrix, not trained.
  """

  raw: jax.Array
  base: jax.Array


def householder_product(a: jax.Array, tau: jax.Array) -> jax.Array:
  """First ``k`` columns of ``H_1 ... H_k``, ``H_i = I - tau_i v_i v_i^T`` (LAPACK ``orgqr``).

  ``v_i`` is column ``i`` of ``a [d, k]`` below the diagonal with a unit on the diagonal.
  Computed in compact WY form ``I - V T V^T`` with ``T^{-1} = diag(1/tau) + striu(V^T V)``
  (Joffrain et al., 2006), i.e. matrix products and one triangular solve instead of ``k``
  sequential reflections.

  Args:
    a: ``[d, k]`` with ``d >= k``.
    tau: ``[k]`` reflection coefficients.

  Returns:
    ``[d, k]`` matrix with orthonormal columns when ``tau_i = 2 / ||v_i||^2``.
  """
  d, k = a.shape
  v = jnp.tril(a, -1) + jnp.eye(d, k, dtype=a.dtype)
  vtv = v.T @ v
  t_inv = jnp.triu(vtv, 1) + jnp.diag(1 / tau)
  # Q[:, :k] = I[:, :k] - V T V[:k]^T
  return jnp.eye(d, k, dtype=a.dtype) - v @ solve_triangular(t_inv, v[:k].T, lower=False)


def encoder_matrix(params: TaskEncoder) -> jax.Array:
  """The task encoder ``E [k, d1]`` with orthonormal rows (Eq. 3)."""
  a = jnp.tril(params.raw, -1)
  tau = 2 / (1 + jnp.sum(a * a, axis=0))  # = 2 / ||v_i||^2: exact reflections
  q = householder_product(a, tau)
  # The diagonal of raw holds fixed signs (+-1); torch casts it to int: no gradient flows.
  signs = jax.lax.stop_gradient(jnp.trunc(jnp.diagonal(params.raw)))
  return (params.base @ (q * signs[None, :])).T


def init_task_encoder(key: jax.Array, k: int, d1: int, dtype=jnp.float32) -> TaskEncoder:
  """Draws a task encoder as the official code does.

  ``nn.Linear(d1, k, bias=False)`` weight, ``U(-1/sqrt(d1), 1/sqrt(d1))``, is completed
  with Gaussian columns to a ``[d1, d1]`` matrix and orthogonalised by QR with a
  positive diagonal of ``R``; that is ``base``, and ``raw`` is ``-I`` (so that ``E`` starts
  at the Gram-Schmidt orthonormalisation of the drawn weight).

  Args:
    key: PRNG key.
    k: number of classes, ``k <= d1``.
    d1: dimension of ``phi1``.
  """
  if not 1 <= k <= d1:
    raise ValueError(f"task encoder: need 1 <= k <= d1 for orthonormal rows, got k={k}, d1={d1}")
  k_w, k_n = jax.random.split(key)
  bound = 1 / jnp.sqrt(d1)
  w = jax.random.uniform(k_w, (k, d1), dtype, -bound, bound)
  full = jnp.concatenate([w.T, jax.random.normal(k_n, (d1, d1 - k), dtype)], axis=1)
  q, r = jnp.linalg.qr(full)
  base = q * jnp.sign(jnp.diagonal(r))[None, :]
  return TaskEncoder(raw=-jnp.eye(d1, k, dtype=dtype), base=base)


def task_encoder_from(weight: jax.Array, key: jax.Array) -> TaskEncoder:
  """A task encoder whose rows start at the Gram-Schmidt orthonormalisation of ``weight [k, d1]``
  (e.g. cluster centroids), completed to ``base`` like ``init_task_encoder``."""
  k, d1 = weight.shape
  if not 1 <= k <= d1:
    raise ValueError(f"task encoder: need 1 <= k <= d1 for orthonormal rows, got k={k}, d1={d1}")
  full = jnp.concatenate([weight.T, jax.random.normal(key, (d1, d1 - k), weight.dtype)], axis=1)
  q, r = jnp.linalg.qr(full)
  return TaskEncoder(raw=-jnp.eye(d1, k, dtype=weight.dtype), base=q * jnp.sign(jnp.diagonal(r))[None, :])


def task_logits(params: TaskEncoder, phi1: jax.Array) -> jax.Array:
  """``phi1 @ E^T`` of shape ``[n, k]`` for ``phi1 [n, d1]``; its argmax is the hard labeling."""
  return phi1 @ encoder_matrix(params).T


def task_labels(params: TaskEncoder, phi1: jax.Array, tau: float | jax.Array) -> jax.Array:
  """Soft labels ``sparsemax(phi1 @ E^T / tau)`` of shape ``[n, k]`` (Eq. 3)."""
  return sparsemax(task_logits(params, phi1) / tau)
