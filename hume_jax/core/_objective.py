"""HUME's objective (paper Eq. 7), averaged over random (train, test) subsets."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from hume_jax.core._inner import Linear, init_linear, inner_sgd, inner_sgd_shared_rows, soft_cross_entropy
from hume_jax.core._shuffle import sample_rows
from hume_jax.core._task_encoder import TaskEncoder, task_labels


class SubsetStats(NamedTuple):
  """Per-subset quantities besides the loss (all scalars except ``label_dist [k]``)."""

  test_error: jax.Array  # CE of the inner classifier on the held-out part
  entropy: jax.Array  # entropy of the mean label distribution
  label_dist: jax.Array  # [k] mean soft label over the subset


def entropy(p: jax.Array) -> jax.Array:
  """``sum_k -p_k log p_k`` with ``0 log 0 = 0`` (``torch.special.entr(p).sum()``)."""
  safe = jnp.where(p > 0, p, 1)
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0), axis=-1)


def size_term(label_dist: jax.Array, prior: jax.Array | None = None) -> jax.Array:
  """The class-size term that Eq. 7 weights by ``H_reg``: ``H(p)`` of the mean labeling ``p [..., k]``.

  With a class-size ``prior`` (``[k]``, positive, sorted in decreasing order, sums to 1) it is
  ``H(prior) - KL(sort(p) || prior)``, ``sort(p)`` being ``p`` in decreasing order: the classes are
  matched to the prior's sizes by rank, so no class is named in advance. It is largest when the
  sizes follow the prior; the uniform prior gives ``H(p)`` (``KL(p || 1/k) = log k - H(p)``).
  """
  if prior is None:
    return entropy(label_dist)
  p = -jnp.sort(-label_dist, axis=-1)  # sizes by rank, largest first
  safe = jnp.where(p > 0, p, 1)
  log_prior = jnp.log(prior).reshape((1,) * (p.ndim - 1) + prior.shape)  # over any leading axes of p
  kl = jnp.sum(jnp.where(p > 0, p * (jnp.log(safe) - log_prior), 0), axis=-1)
  return entropy(prior) - kl


def draw_subsets(key: jax.Array, n: int, num_subsets: int, subset_size: int) -> jax.Array:
  """``num_subsets`` index sets, each ``min(n, subset_size)`` distinct rows of ``[0, n)``.

  Returns ``int32 [num_subsets, min(n, subset_size)]``; the first ``int(m * train_fraction)``
  columns are the inner training part, the rest the held-out part.
  """
  m = min(n, subset_size)
  keys = jax.random.split(key, num_subsets)
  return jax.vmap(lambda k: sample_rows(k, n, m))(keys)  # = jax.random.permutation(k, n)[:m] up to 65,535 rows


def subset_loss(
  encoder: TaskEncoder,
  w0: Linear,
  phi1_tr: jax.Array,
  phi2_tr: jax.Array,
  phi1_te: jax.Array,
  phi2_te: jax.Array,
  *,
  tau,
  inner_lr: float,
  steps: int,
  H_reg: float,
  remat: bool = False,
  row_block: int = 0,
  prior: jax.Array | None = None,
) -> tuple[jax.Array, SubsetStats]:
  """HUME's loss on one subset (Eq. 7).

  ``L = CE(phi2_te @ W_T + b_T, y_te) - H_reg * H(mean(y_tr ++ y_te))``, where
  ``y = sparsemax(phi1 @ E^T / tau)`` (Eq. 3) and ``(W_T, b_T)`` is ``steps`` steps of
  gradient descent on ``CE(phi2_tr @ W + b, y_tr)`` from ``w0`` (Eq. 5).

  Args:
    encoder: task encoder parameters.
    w0: inner initialisation, ``W [d2, k]``, ``b [k]``.
    phi1_tr, phi2_tr: ``[n_tr, d1]``, ``[n_tr, d2]`` the inner training part.
    phi1_te, phi2_te: ``[n_te, d1]``, ``[n_te, d2]`` the held-out part.
    tau: temperature of the task encoder.
    inner_lr, steps: the inner SGD learning rate and number of steps ``T``.
    H_reg: weight of the entropy regulariser.
    remat: rematerialise the inner steps in the backward pass (see ``inner_sgd``).
    row_block: rows per block of the inner steps, 0 for whole matrices (see ``inner_sgd``).
    prior: class-size prior (``size_term``); None: the paper's entropy.

  Returns:
    ``(loss, SubsetStats)``; ``SubsetStats.entropy`` holds ``size_term``.
  """
  y_tr = task_labels(encoder, phi1_tr, tau)
  y_te = task_labels(encoder, phi1_te, tau)
  w = inner_sgd(w0, phi2_tr, y_tr, inner_lr, steps, remat, row_block)
  test_error = soft_cross_entropy(phi2_te @ w.W + w.b[None, :], y_te)
  label_dist = jnp.mean(jnp.concatenate([y_tr, y_te]), axis=0)
  h = size_term(label_dist, prior)
  return test_error - H_reg * h, SubsetStats(test_error, h, label_dist)


def hume_loss(
  encoder: TaskEncoder,
  phi1: jax.Array,
  phi2: jax.Array,
  subsets: jax.Array,
  w0: Linear,
  *,
  n_train: int,
  tau,
  inner_lr: float,
  steps: int,
  H_reg: float,
  remat: bool = False,
  row_block: int = 0,
  prior: jax.Array | None = None,
) -> tuple[jax.Array, SubsetStats]:
  """Mean of ``subset_loss`` over ``S`` subsets, vmapped.

  Args:
    encoder: task encoder parameters.
    phi1: ``[n, d1]`` (L2-normalised rows), phi2: ``[n, d2]``.
    subsets: ``int [S, m]`` row indices; the first ``n_train`` columns are the inner
      training part of each subset (see ``draw_subsets``).
    w0: inner initialisation: one ``Linear`` shared by all subsets (``W [d2, k]``), or one
      per subset (``W [S, d2, k]``, ``b [S, k]``) for the cold start with random init.
    n_train: size of the inner training part, ``int(m * train_fraction)``.
    remat: rematerialise the inner steps in the backward pass (see ``inner_sgd``).
    row_block: rows per block of the inner steps, 0 for whole matrices (see ``inner_sgd``).
    prior: class-size prior (``size_term``); None: the paper's entropy.

  Returns:
    ``(mean loss, SubsetStats with a leading [S] axis)``.
  """
  per_subset_w0 = w0.W.ndim == 3

  def one(idx, w0_s):
    tr, te = idx[:n_train], idx[n_train:]
    return subset_loss(
      encoder,
      w0_s,
      phi1[tr],
      phi2[tr],
      phi1[te],
      phi2[te],
      tau=tau,
      inner_lr=inner_lr,
      steps=steps,
      H_reg=H_reg,
      remat=remat,
      row_block=row_block,
      prior=prior,
    )

  if subsets.shape[0] == 1:
    # One subset: call it directly. vmap would turn every matmul of the inner loop into a
    # batched matmul of batch 1, which XLA's CPU backend runs ~1.6x slower.
    loss, stats = one(subsets[0], jax.tree.map(lambda x: x[0], w0) if per_subset_w0 else w0)
    return loss, jax.tree.map(lambda x: x[None], stats)
  losses, stats = jax.vmap(one, in_axes=(0, 0 if per_subset_w0 else None))(subsets, w0)
  return jnp.mean(losses), stats


def hume_loss_shared_rows(
  encoder: TaskEncoder,
  phi1: jax.Array,
  phi2: jax.Array,
  subsets: jax.Array,
  w0: Linear,
  *,
  n_train: int,
  tau,
  inner_lr: float,
  steps: int,
  H_reg: float,
  remat: bool = False,
  prior: jax.Array | None = None,
) -> tuple[jax.Array, SubsetStats]:
  """``hume_loss`` computed over all ``n`` rows at once, the subsets as row masks.

  The labels ``y = sparsemax(phi1 @ E^T / tau)`` of every row are computed once; subset
  ``s``'s inner problem gets targets ``y`` on its ``n_train`` training rows and zero
  elsewhere (``inner_sgd_shared_rows``: the ``S`` classifiers step together through wide
  products), its held-out error is the CE averaged over its held-out rows, and its label
  distribution the mean of ``y`` over its ``m`` rows. Equal to ``hume_loss`` up to summation
  order (tested to 1e-12 in float64); cheaper on a CPU when the subsets cover most of the
  ``n`` rows, since it computes every step on all ``n`` rows. Arguments as ``hume_loss``.
  """
  S, m = subsets.shape
  n = phi1.shape[0]
  if w0.W.ndim == 2:
    w0 = jax.tree.map(lambda x: jnp.broadcast_to(x, (S,) + x.shape), w0)
  rows = jnp.arange(S)[:, None]
  train = jnp.zeros((S, n), phi1.dtype).at[rows, subsets[:, :n_train]].set(1)  # [S, n] row masks
  test = jnp.zeros((S, n), phi1.dtype).at[rows, subsets[:, n_train:]].set(1)
  y = task_labels(encoder, phi1, tau)  # [n, k] (Eq. 3)
  w = inner_sgd_shared_rows(w0, phi2, y.T[None] * train[:, None, :], inner_lr, steps, n_train, remat)  # Eq. 5
  logits = jnp.einsum("sdk,nd->snk", w.W, phi2) + w.b[:, None, :]  # [S, n, k]
  ce = -jnp.sum(y[None] * jax.nn.log_softmax(logits, axis=-1), axis=-1)  # [S, n]
  test_error = jnp.sum(ce * test, axis=1) / (m - n_train)
  label_dist = (train + test) @ y / m  # [S, k]
  h = size_term(label_dist, prior)
  losses = test_error - H_reg * h  # Eq. 7
  return jnp.mean(losses), SubsetStats(test_error, h, label_dist)


def init_inner(key: jax.Array, num_subsets: int, d2: int, k: int, dtype=jnp.float32) -> Linear:
  """One fresh ``nn.Linear``-style initialisation per subset: ``W [S, d2, k]``, ``b [S, k]``."""
  return jax.vmap(lambda kk: init_linear(kk, d2, k, dtype))(jax.random.split(key, num_subsets))
