"""TURTLE (Gadetsky, Jiang & Brbic, ICML 2024), HUME's successor, on the same core.

Differences from HUME: M >= 1 symmetric spaces; the labeling is the mean
of per-space softmax heads (weight-normed linear with bias, no temperature); per space, a
linear classifier is trained on the *detached* labels by ``inner_steps`` steps of Adam
(cold start by default, or warm: weights and Adam state kept across outer iterations); the
outer loss is, summed over spaces, the cross-entropy of the (fixed) classifier's
predictions against the labels minus ``gamma`` times the entropy of the space's mean
labeling (first-order hypergradient); one random batch serves both loops; outer Adam, no
clipping, no schedule.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hume_jax._inner import Linear, init_linear, soft_cross_entropy
from hume_jax._objective import entropy


@dataclasses.dataclass(frozen=True)
class TurtleConfig:
  """TURTLE's hyperparameters with the official defaults (``run_turtle.py``)."""
  k: int = 10
  inner_lr: float = 1e-3
  outer_lr: float = 1e-3
  inner_steps: int = 10
  num_iters: int = 6000
  batch_size: int = 10000
  gamma: float = 10.0
  warm_start: bool = False
  seed: int = 42


class Head(NamedTuple):
  """A weight-normed linear head ``x @ (g * v / ||v||)^T + b`` (``torch`` ``weight_norm``, dim 0).

  Attributes: ``v [k, d]``, ``g [k]``, ``b [k]``.
  """
  v: jax.Array
  g: jax.Array
  b: jax.Array


def head_logits(h: Head, x: jax.Array) -> jax.Array:
  """``[n, k]`` logits of ``x [n, d]``."""
  w = h.g[:, None] * h.v / jnp.linalg.norm(h.v, axis=1, keepdims=True)
  return x @ w.T + h.b[None, :]


def init_head(key: jax.Array, d: int, k: int, dtype=jnp.float32) -> Head:
  """``weight_norm(nn.Linear(d, k))``: the ``nn.Linear`` draw, ``g`` = its row norms."""
  lin = init_linear(key, d, k, dtype)
  v = lin.W.T
  return Head(v=v, g=jnp.linalg.norm(v, axis=1), b=lin.b)


def turtle_labels(encoder: tuple[Head, ...], phis: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
  """``(per-space softmax labels [M, n, k], their mean [n, k])``."""
  per_space = jnp.stack([jax.nn.softmax(head_logits(h, x), axis=-1) for h, x in zip(encoder, phis)])
  return per_space, per_space.mean(0)


class TurtleState(NamedTuple):
  encoder: tuple[Head, ...]      # one head per space
  opt_state: optax.OptState      # outer Adam
  inner: tuple[Linear, ...]      # per-space classifiers (kept only with warm_start)
  inner_opt_state: optax.OptState
  key: jax.Array
  step: jax.Array


def init_turtle(key: jax.Array, config: TurtleConfig, dims: tuple[int, ...], dtype=jnp.float32) -> TurtleState:
  k_enc, k_inner, k_run = jax.random.split(key, 3)
  encoder = tuple(init_head(kk, d, config.k, dtype) for kk, d in zip(jax.random.split(k_enc, len(dims)), dims))
  inner = tuple(init_linear(kk, d, config.k, dtype) for kk, d in zip(jax.random.split(k_inner, len(dims)), dims))
  return TurtleState(encoder, optax.adam(config.outer_lr).init(encoder), inner,
                     optax.adam(config.inner_lr).init(inner), k_run, jnp.zeros((), jnp.int32))


def turtle_step(state: TurtleState, phis: tuple[jax.Array, ...], *, config: TurtleConfig):
  """One TURTLE outer iteration on a random batch; returns ``(state, (loss, entropy))``."""
  n = phis[0].shape[0]
  k_batch, k_init = jax.random.split(jax.random.fold_in(state.key, state.step))
  idx = jax.random.permutation(k_batch, n)[: min(n, config.batch_size)]
  xs = tuple(x[idx] for x in phis)
  inner_tx, outer_tx = optax.adam(config.inner_lr), optax.adam(config.outer_lr)
  if config.warm_start:
    inner, inner_opt = state.inner, state.inner_opt_state
  else:  # cold start: fresh heads and a fresh Adam every outer iteration
    inner = tuple(init_linear(kk, x.shape[1], config.k, x.dtype)
                  for kk, x in zip(jax.random.split(k_init, len(xs)), xs))
    inner_opt = inner_tx.init(inner)

  _, labels = turtle_labels(state.encoder, xs)
  target = jax.lax.stop_gradient(labels)  # first order: labels are data inside the inner loop

  def inner_loss(inner):
    return sum(soft_cross_entropy(x @ w.W + w.b[None, :], target) for w, x in zip(inner, xs))

  def inner_step(carry, _):
    inner, opt = carry
    grads = jax.grad(inner_loss)(inner)
    updates, opt = inner_tx.update(grads, opt, inner)
    return (optax.apply_updates(inner, updates), opt), None

  (inner, inner_opt), _ = jax.lax.scan(inner_step, (inner, inner_opt), None, length=config.inner_steps)
  fixed = jax.lax.stop_gradient(inner)

  def outer_loss(encoder):
    per_space, labels = turtle_labels(encoder, xs)
    pred_error = sum(soft_cross_entropy(x @ w.W + w.b[None, :], labels) for w, x in zip(fixed, xs))
    h = sum(entropy(p.mean(0)) for p in per_space)
    return pred_error - config.gamma * h, h

  (loss, h), grads = jax.value_and_grad(outer_loss, has_aux=True)(state.encoder)
  updates, opt_state = outer_tx.update(grads, state.opt_state, state.encoder)
  new = state._replace(encoder=optax.apply_updates(state.encoder, updates), opt_state=opt_state,
                       inner=inner, inner_opt_state=inner_opt, step=state.step + 1)
  return new, (loss, h)


def check_turtle_config(config: TurtleConfig, n: int) -> None:
  """Rejects TURTLE hyperparameters that cannot define a run, before any compute."""
  if not 2 <= config.k <= n:
    raise ValueError(f"k: expected 2 <= k <= n = {n}, got {config.k}")
  for name in ("inner_lr", "outer_lr", "inner_steps", "num_iters", "batch_size"):
    if not getattr(config, name) > 0:
      raise ValueError(f"{name}: expected a positive value, got {getattr(config, name)}")
  if config.gamma < 0:
    raise ValueError(f"gamma: expected a value >= 0, got {config.gamma}")


def fit_turtle(phis: list[np.ndarray], config: TurtleConfig, *, progress: bool = True,
               log_every: int = 50, labels: np.ndarray | None = None, on_log=None) -> tuple[TurtleState, list[dict]]:
  """Runs TURTLE on ``M`` spaces ``phis[m] [n, d_m]``; returns ``(state, log records)``."""
  from tqdm.auto import tqdm

  from hume_jax import metrics as hm
  from hume_jax._fit import compute_dtype

  from hume_jax.data import check_fit_inputs
  for m in range(1, len(phis)):
    check_fit_inputs(phis[0], phis[m], labels, unit_phi1=False)
  n = len(phis[0])
  check_turtle_config(config, n)
  dtype = compute_dtype(phis[0])
  xs = tuple(jnp.asarray(x, dtype) for x in phis)
  state = init_turtle(jax.random.PRNGKey(config.seed), config, tuple(x.shape[1] for x in xs), dtype)
  step = jax.jit(functools.partial(turtle_step, config=config))
  history = []
  with tqdm(total=config.num_iters, desc="TURTLE", unit="it", disable=not progress, dynamic_ncols=True) as bar:
    for it in range(config.num_iters):
      state, (loss, h) = step(state, xs)
      bar.update(1)
      if (it + 1) % log_every == 0 or it + 1 == config.num_iters:
        record = {"iteration": it + 1, "loss": float(loss), "entropy": float(h)}
        if not np.isfinite(record["loss"]):
          raise FloatingPointError(f"non-finite TURTLE loss at iteration {it + 1}")
        if labels is not None:
          record["acc"] = hm.hungarian_accuracy(predict_turtle(state.encoder, xs), labels)
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "iteration"})
        if on_log is not None:
          on_log(record)
  return state, history


def predict_turtle(encoder: tuple[Head, ...], phis) -> np.ndarray:
  """Hard labels ``argmax`` of the mean per-space labeling, ``[n]``."""
  return np.asarray(jnp.argmax(turtle_labels(encoder, tuple(jnp.asarray(x) for x in phis))[1], axis=-1))
