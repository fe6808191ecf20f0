"""HUME's inner problem (paper Eq. 5): a linear classifier on ``phi2`` fitted to the task's
soft labels by ``T`` steps of plain gradient descent, unrolled so that gradients flow
through every step (full second order, as learn2learn's MAML with ``first_order=False``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


class Linear(NamedTuple):
  """A linear classifier ``logits = phi2 @ W + b``.

  Attributes:
    W: ``[d2, k]`` weights (the transpose of torch's ``nn.Linear(d2, k).weight``).
    b: ``[k]`` bias.
  """

  W: jax.Array
  b: jax.Array


def init_linear(key: jax.Array, d2: int, k: int, dtype=jnp.float32) -> Linear:
  """PyTorch's ``nn.Linear(d2, k)`` default init: weight and bias ``U(-1/sqrt(d2), 1/sqrt(d2))``.

  (Kaiming-uniform with ``a = sqrt(5)`` gives exactly this bound for the weight.)
  """
  k_w, k_b = jax.random.split(key)
  bound = 1 / jnp.sqrt(d2)
  return Linear(
    W=jax.random.uniform(k_w, (d2, k), dtype, -bound, bound), b=jax.random.uniform(k_b, (k,), dtype, -bound, bound)
  )


def soft_cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Mean over samples of ``-sum_k y_k log softmax(logits)_k`` for ``[n, k]`` inputs
  (``F.cross_entropy`` with probability targets)."""
  return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def cross_entropy_grad(w: Linear, phi2: jax.Array, y: jax.Array) -> Linear:
  """Gradient of ``soft_cross_entropy(phi2 @ W + b, y)`` with respect to ``(W, b)``.

  With ``z = phi2 @ W + b`` of shape ``[n, k]``: ``dL/dz = (softmax(z) * sum_k y - y) / n``,
  ``dL/dW = phi2^T dL/dz`` (``[d2, k]``) and ``dL/db = sum_n dL/dz``. Written out rather than
  taken by ``jax.grad`` so that the outer derivative differentiates one matmul pair per
  step; the expression is the exact gradient, so the unroll stays second order.
  """
  z = phi2 @ w.W + w.b[None, :]
  dz = (jax.nn.softmax(z, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y) / z.shape[0]
  return Linear(W=phi2.T @ dz, b=jnp.sum(dz, axis=0))


def inner_sgd(
  w0: Linear, phi2: jax.Array, y: jax.Array, lr: float, steps: int, remat: bool = False, row_block: int = 0
) -> Linear:
  """``steps`` steps of ``w <- w - lr * grad CE(phi2 @ W + b, y)`` from ``w0`` (Eq. 5, cold start).

  A ``lax.scan``, so compile time does not grow with ``steps``, and ``jax.grad`` with
  respect to ``y`` and ``w0`` goes through every step (full second order). The reverse
  pass is written out (``custom_vjp``, checked against autodiff of ``inner_sgd_autodiff``)
  so that all four passes over ``phi2`` per step are matrix products in the orientation
  CPUs and GPUs run fastest; ``phi2`` itself is treated as data and cannot be
  differentiated.

  Args:
    w0: initial classifier, ``W [d2, k]``, ``b [k]``.
    phi2: ``[n_tr, d2]`` inner training inputs.
    y: ``[n_tr, k]`` soft labels (not detached: the hypergradient flows through them).
    lr: the inner learning rate.
    steps: ``T``, the number of steps.
    remat: keep only the classifier of each step (``[k, d2 + 1]``) for the backward pass
      and recompute its activations there, instead of storing the ``[n_tr, k]`` softmax of
      every step: less memory, one more pass over ``phi2`` per step.
    row_block: 0 to run each step as whole-matrix products (best on GPUs), or a number of
      rows: each step then walks ``phi2`` in blocks of that many rows and does all its work
      on a block (logits, softmax, gradient; in the backward pass all of the adjoint) while
      the block is in cache, so each step reads ``phi2`` from memory once forward and once
      backward instead of twice each (best on CPUs). Same result up to summation order.
  """
  V, c = _unrolled_sgd(w0.W.T, w0.b[:, None], phi2, y.T, float(lr), int(steps), bool(remat), int(row_block), 0)
  return Linear(W=V.T, b=c[:, 0])


def inner_sgd_shared_rows(
  w0: Linear, phi2: jax.Array, YT: jax.Array, lr: float, steps: int, n_train: int, remat: bool = False
) -> Linear:
  """``S`` inner problems on the rows of one ``phi2``, each with its own targets, in lockstep.

  Problem ``s`` is ``inner_sgd(w0[s], phi2[rows_s], y[rows_s], ...)`` with ``n_train`` rows
  ``rows_s``, written over all ``n`` rows with targets ``YT[s]`` that are zero outside
  ``rows_s``: a row with zero targets has zero gradient (``G = P * sum_k Y - Y = 0``), and
  the mean is taken over ``n_train``. The ``S`` classifiers are stacked into one
  ``[S k, d2]`` matrix, so every product of a step is one wide ``[S k, d2] x [d2, n]`` (or
  ``[S k, n] x [n, d2]``) product instead of ``S`` narrow ones: worth it when the subsets
  cover most rows (``benchmarks/README.md``). Same result up to summation order.

  Args:
    w0: ``W [S, d2, k]``, ``b [S, k]``.
    phi2: ``[n, d2]``.
    YT: ``[S, k, n]`` targets, zero outside each problem's rows (not detached).
    lr, steps, remat: as for ``inner_sgd``.
    n_train: rows of each problem (the divisor of its mean).

  Returns:
    ``Linear`` with ``W [S, d2, k]``, ``b [S, k]``.
  """
  V, c = _unrolled_sgd(
    jnp.swapaxes(w0.W, 1, 2), w0.b[:, :, None], phi2, YT, float(lr), int(steps), bool(remat), 0, int(n_train)
  )
  return Linear(W=jnp.swapaxes(V, 1, 2), b=c[:, :, 0])


def inner_sgd_autodiff(w0: Linear, phi2: jax.Array, y: jax.Array, lr: float, steps: int) -> Linear:
  """``inner_sgd`` left to ``jax.grad`` (plain autodiff through the scan): the reference."""

  def step(w, _):
    g = cross_entropy_grad(w, phi2, y)
    return Linear(w.W - lr * g.W, w.b - lr * g.b), None

  w, _ = jax.lax.scan(step, w0, None, length=steps)
  return w


# The unroll in transposed layout: V = W^T [k, d2], c = b [k, 1], logits Z = V phi2^T + c
# [k, n], targets Y^T [k, n]. One step (Eq. 5 with the gradient of cross_entropy_grad):
#   P = softmax_k(Z),  G = (P * s - Y^T) / n  with s = sum_k Y^T  [1, n],
#   V <- V - lr G phi2,  c <- c - lr G 1.
# V, c, Y^T may carry a leading axis of S stacked problems ([S, k, .]; inner_sgd_shared_rows):
# the products then run on the [S k, .] matrices, the softmax over each problem's k, and the
# mean is over n_div rows (n_div = 0: all n rows).


def _mm(A, B):
  """``A [..., k, p] @ B [p, q]`` as one ``[(...) k, p] x [p, q]`` product."""
  return (A.reshape(-1, A.shape[-1]) @ B).reshape(A.shape[:-1] + B.shape[1:])


def _probs(V, c, phi2_t):
  return jax.nn.softmax(_mm(V, phi2_t) + c, axis=-2)


def _forward(V0, c0, phi2, YT, lr, steps, remat, n_div):
  n = n_div or phi2.shape[0]
  phi2_t = phi2.T
  s = jnp.sum(YT, axis=-2, keepdims=True)

  def step(carry, _):
    V, c = carry
    P = _probs(V, c, phi2_t)
    G = (P * s - YT) / n
    return (V - lr * _mm(G, phi2), c - lr * jnp.sum(G, axis=-1, keepdims=True)), (carry if remat else P)

  return jax.lax.scan(step, (V0, c0), None, length=steps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7, 8))
def _unrolled_sgd(V0, c0, phi2, YT, lr, steps, remat, block, n_div):
  if block:
    return _forward_blocked(V0, c0, *_blocks(phi2, YT, block), phi2.shape[0], lr, steps, remat)[0]
  return _forward(V0, c0, phi2, YT, lr, steps, remat, n_div)[0]


def _unrolled_sgd_fwd(V0, c0, phi2, YT, lr, steps, remat, block, n_div):
  if phi2.perturbed:
    raise NotImplementedError("inner_sgd: the gradient with respect to phi2 is not implemented; use inner_sgd_autodiff")
  if block:
    Xb, Yb, sb = _blocks(phi2.value, YT.value, block)
    out, history = _forward_blocked(V0.value, c0.value, Xb, Yb, sb, YT.value.shape[1], lr, steps, remat)
    return out, ((Xb, Yb, sb), YT.value, history)
  out, history = _forward(V0.value, c0.value, phi2.value, YT.value, lr, steps, remat, n_div)
  return out, (phi2.value, YT.value, history)


def _unrolled_sgd_bwd(lr, steps, remat, block, n_div, residuals, cotangents):
  if block:
    return _backward_blocked(lr, steps, remat, residuals, cotangents)
  phi2, YT, history = residuals
  n = n_div or phi2.shape[0]
  phi2_t = phi2.T
  s = jnp.sum(YT, axis=-2, keepdims=True)
  V_bar, c_bar = (jnp.zeros(ct.shape, ct.dtype) if isinstance(ct, SymbolicZero) else ct for ct in cotangents)

  def step(carry, saved):
    V_bar, c_bar, Y_bar = carry
    P = _probs(*saved, phi2_t) if remat else saved
    # G enters V_{t+1} = V_t - lr G phi2 and c_{t+1} = c_t - lr G 1.
    G_bar = -lr * (_mm(V_bar, phi2_t) + c_bar)
    # G = (P * s - Y^T) / n, with s = sum_k Y^T.
    P_bar = G_bar * s / n
    Y_bar = Y_bar - G_bar / n + jnp.sum(G_bar * P, axis=-2, keepdims=True) / n
    # P = softmax_k(Z): Z_bar = P * (P_bar - sum_k P_bar P); Z = V phi2^T + c.
    Z_bar = P * (P_bar - jnp.sum(P_bar * P, axis=-2, keepdims=True))
    return (V_bar + _mm(Z_bar, phi2), c_bar + jnp.sum(Z_bar, axis=-1, keepdims=True), Y_bar), None

  (V0_bar, c0_bar, Y_bar), _ = jax.lax.scan(step, (V_bar, c_bar, jnp.zeros_like(YT)), history, reverse=True)
  return V0_bar, c0_bar, None, Y_bar


_unrolled_sgd.defvjp(_unrolled_sgd_fwd, _unrolled_sgd_bwd, symbolic_zeros=True)


# The same step, walking the rows of phi2 in blocks (row_block > 0). With phi2 cut into
# blocks X_j [nb, d2] (zero rows padding the last one, whose targets and s are zero, so
# their G and adjoints vanish), Z_j = V X_j^T + c and G_j follow block by block, and
# G phi2 = sum_j G_j X_j: each block is read once per step while it sits in cache.


def _blocks(phi2, YT, block):
  """``phi2 [n, d2]``, ``Y^T [k, n]`` -> ``X [J, nb, d2]``, ``Y [J, k, nb]``, ``s [J, 1, nb]``."""
  n, d2 = phi2.shape
  k = YT.shape[0]
  nb = min(block, n)
  J = -(-n // nb)
  pad = J * nb - n
  Xb = jnp.pad(phi2, ((0, pad), (0, 0))).reshape(J, nb, d2)
  Yb = jnp.pad(YT, ((0, 0), (0, pad))).reshape(k, J, nb).transpose(1, 0, 2)
  return Xb, Yb, jnp.sum(Yb, axis=1, keepdims=True)


def _block_probs(V, c, X):
  return jax.nn.softmax(jax.lax.dot_general(V, X, (((1,), (1,)), ((), ()))) + c, axis=0)  # [k, nb]


def _forward_blocked(V0, c0, Xb, Yb, sb, n, lr, steps, remat):
  def step(carry, _):
    V, c = carry

    def block(acc, xs):
      X, Y, s = xs
      P = _block_probs(V, c, X)
      G = (P * s - Y) / n
      return (acc[0] + G @ X, acc[1] + jnp.sum(G, axis=1, keepdims=True)), P

    (gV, gc), P = jax.lax.scan(block, (jnp.zeros_like(V), jnp.zeros_like(c)), (Xb, Yb, sb))
    return (V - lr * gV, c - lr * gc), (carry if remat else P)

  return jax.lax.scan(step, (V0, c0), None, length=steps)


def _backward_blocked(lr, steps, remat, residuals, cotangents):
  (Xb, Yb, sb), YT, history = residuals
  n = YT.shape[1]
  V_bar, c_bar = (jnp.zeros(ct.shape, ct.dtype) if isinstance(ct, SymbolicZero) else ct for ct in cotangents)

  def step(carry, saved):
    V_bar, c_bar, Y_bar = carry

    def block(acc, xs):
      X, s, P, Y_bar_j = xs
      if remat:
        P = _block_probs(*saved, X)
      # The adjoint of one step, as in _unrolled_sgd_bwd, on the columns of block j.
      G_bar = -lr * (jax.lax.dot_general(V_bar, X, (((1,), (1,)), ((), ()))) + c_bar)
      P_bar = G_bar * s / n
      Y_bar_j = Y_bar_j - G_bar / n + jnp.sum(G_bar * P, axis=0, keepdims=True) / n
      Z_bar = P * (P_bar - jnp.sum(P_bar * P, axis=0, keepdims=True))
      return (acc[0] + Z_bar @ X, acc[1] + jnp.sum(Z_bar, axis=1, keepdims=True)), Y_bar_j

    P_all = None if remat else saved  # under remat, P is recomputed per block
    (dV, dc), Y_bar = jax.lax.scan(block, (jnp.zeros_like(V_bar), jnp.zeros_like(c_bar)), (Xb, sb, P_all, Y_bar))
    return (V_bar + dV, c_bar + dc, Y_bar), None

  (V0_bar, c0_bar, Y_bar), _ = jax.lax.scan(step, (V_bar, c_bar, jnp.zeros_like(Yb)), history, reverse=True)
  k = Yb.shape[1]
  YT_bar = Y_bar.transpose(1, 0, 2).reshape(k, -1)[:, :n]
  return V0_bar, c0_bar, None, YT_bar
