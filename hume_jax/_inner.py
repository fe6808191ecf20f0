"""HUME's inner problem (paper Eq. 5): a linear classifier on ``phi2`` fitted to the task's
soft labels by ``T`` steps of plain gradient descent, unrolled so that gradients flow
through every step (full second order, as learn2learn's MAML with ``first_order=False``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


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
  return Linear(W=jax.random.uniform(k_w, (d2, k), dtype, -bound, bound),
                b=jax.random.uniform(k_b, (k,), dtype, -bound, bound))


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


def inner_sgd(w0: Linear, phi2: jax.Array, y: jax.Array, lr: float, steps: int,
              remat: bool = False) -> Linear:
  """``steps`` steps of ``w <- w - lr * grad CE(phi2 @ W + b, y)`` from ``w0`` (Eq. 5, cold start).

  A ``lax.scan``, so compile time does not grow with ``steps`` and ``jax.grad`` with
  respect to ``y`` (and ``w0``) goes through every step.

  Args:
    w0: initial classifier, ``W [d2, k]``, ``b [k]``.
    phi2: ``[n_tr, d2]`` inner training inputs.
    y: ``[n_tr, k]`` soft labels (not detached: the hypergradient flows through them).
    lr: the inner learning rate.
    steps: ``T``, the number of steps.
    remat: recompute each step's activations in the backward pass instead of storing them
      (``jax.checkpoint``): memory ``O(d2 k)`` instead of ``O(n_tr k)`` per step, for one
      more forward pass per step.
  """
  def step(w, _):
    g = cross_entropy_grad(w, phi2, y)
    return Linear(w.W - lr * g.W, w.b - lr * g.b), None

  w, _ = jax.lax.scan(jax.checkpoint(step) if remat else step, w0, None, length=steps)
  return w
