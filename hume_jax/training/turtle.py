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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hume_jax.config import TurtleConfig, check_turtle_config
from hume_jax.core._inner import init_linear
from hume_jax.core._objective import size_term
from hume_jax.core._shuffle import sample_rows
from hume_jax.io.data import check_fit_inputs
from hume_jax.training._fit import compute_dtype
from hume_jax.training._loop import run_loop
from hume_jax.training.hooks import Hooks, hooks_of


class Head(NamedTuple):
  """A weight-normed linear head ``x @ (g * v / ||v||)^T + b`` (``torch`` ``weight_norm``, dim 0).

  Attributes: ``v [k, d]``, ``g [k]``, ``b [k]``.
  """

  v: jax.Array
  g: jax.Array
  b: jax.Array


def _head_weight(h: Head) -> jax.Array:
  return h.g[:, None] * h.v / jnp.linalg.norm(h.v, axis=1, keepdims=True)  # [k, d]


def _logits_t(W: jax.Array, b: jax.Array, x: jax.Array) -> jax.Array:
  """``[k, n]`` logits ``W x^T + b`` of ``x [n, d]`` for ``W [k, d]``, as one product contracting
  ``d`` of both operands (the fastest of the orientations XLA's CPU dot offers for these
  shapes; ``benchmarks/LOG.md``)."""
  return jax.lax.dot_general(W, x, (((1,), (1,)), ((), ()))) + b[:, None]


def init_head(key: jax.Array, d: int, k: int, dtype=jnp.float32) -> Head:
  """``weight_norm(nn.Linear(d, k))``: the ``nn.Linear`` draw, ``g`` = its row norms."""
  lin = init_linear(key, d, k, dtype)
  v = lin.W.T
  return Head(v=v, g=jnp.linalg.norm(v, axis=1), b=lin.b)


def turtle_labels(encoder: tuple[Head, ...], phis: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
  """``(per-space softmax labels [M, n, k], their mean [n, k])``."""
  per_space, labels = _labels_t(encoder, phis)
  return jnp.swapaxes(per_space, 1, 2), labels.T


def _labels_t(encoder, phis):
  """``turtle_labels`` in ``[k, n]`` layout."""
  per_space = jnp.stack([jax.nn.softmax(_logits_t(_head_weight(h), h.b, x), axis=0) for h, x in zip(encoder, phis)])
  return per_space, per_space.mean(0)


class Classifier(NamedTuple):
  """An inner linear classifier in the ``[k, n]`` layout: logits ``V x^T + c``; ``V [k, d]``
  (torch's ``nn.Linear(d, k).weight``), ``c [k]``."""

  V: jax.Array
  c: jax.Array


def _classifier(key: jax.Array, d: int, k: int, dtype) -> Classifier:
  """``nn.Linear(d, k)``'s init (``init_linear``'s draw, transposed)."""
  lin = init_linear(key, d, k, dtype)
  return Classifier(V=lin.W.T, c=lin.b)


class TurtleState(NamedTuple):
  encoder: tuple[Head, ...]  # one head per space
  opt_state: optax.OptState  # outer Adam
  inner: tuple[Classifier, ...]  # per-space classifiers (kept only with warm_start)
  inner_opt_state: optax.OptState
  key: jax.Array
  step: jax.Array


def init_turtle(key: jax.Array, config: TurtleConfig, dims: tuple[int, ...], dtype=jnp.float32) -> TurtleState:
  k_enc, k_inner, k_run = jax.random.split(key, 3)
  encoder = tuple(init_head(kk, d, config.k, dtype) for kk, d in zip(jax.random.split(k_enc, len(dims)), dims))
  inner = tuple(_classifier(kk, d, config.k, dtype) for kk, d in zip(jax.random.split(k_inner, len(dims)), dims))
  return TurtleState(
    encoder,
    optax.adam(config.outer_lr).init(encoder),
    inner,
    optax.adam(config.inner_lr).init(inner),
    k_run,
    jnp.zeros((), jnp.int32),
  )


def turtle_step(state: TurtleState, phis: tuple[jax.Array, ...], *, config: TurtleConfig):
  """One TURTLE outer iteration on a random batch; returns ``(state, (loss, entropy))``.

  Every loss is a mean over the batch's rows, so a batch of all ``n`` rows (the default
  batch of 10,000 on up to 10,000 samples) uses the inputs in place instead of gathering a
  permuted copy: the same result up to summation order. All products are written in the
  ``[k, n]`` layout of ``_logits_t``.
  """
  n = phis[0].shape[0]
  k_batch, k_init = jax.random.split(jax.random.fold_in(state.key, state.step))
  if config.batch_size >= n:
    xs = tuple(phis)
  else:
    idx = sample_rows(k_batch, n, config.batch_size)  # = jax.random.permutation(k_batch, n)[:batch] up to 65,535
    xs = tuple(x[idx] for x in phis)
  inner_tx, outer_tx = optax.adam(config.inner_lr), optax.adam(config.outer_lr)
  if config.warm_start:
    inner, inner_opt = state.inner, state.inner_opt_state
  else:  # cold start: fresh heads and a fresh Adam every outer iteration
    inner = tuple(
      _classifier(kk, x.shape[1], config.k, x.dtype) for kk, x in zip(jax.random.split(k_init, len(xs)), xs)
    )
    inner_opt = inner_tx.init(inner)

  # The heads' logits (their weights are fixed during the inner loop).
  head_logits_t = [_logits_t(_head_weight(h), h.b, x) for h, x in zip(state.encoder, xs)]

  prior = None if config.prior is None else jnp.asarray(config.prior, xs[0].dtype)

  def outer_loss(logits, log_probs):
    per_space = [jax.nn.softmax(z, axis=0) for z in logits]
    labels = sum(per_space) / len(per_space)  # [k, n]
    pred_error = sum(-jnp.mean(jnp.sum(labels * lp, axis=0)) for lp in log_probs)
    h = sum(size_term(p.mean(1), prior) for p in per_space)  # H per space, or its prior's term
    return pred_error - config.gamma * h, h

  target = sum(jax.nn.softmax(z, axis=0) for z in head_logits_t) / len(xs)  # [k, n], data in the inner loop
  inner, inner_opt = _inner_adam(inner, inner_opt, inner_tx, target, xs, config.inner_steps)
  # The trained classifiers' log-probabilities are constants of the outer loss.
  log_probs = [jax.nn.log_softmax(_logits_t(w.V, w.c, x), axis=0) for w, x in zip(inner, xs)]

  # First order: the gradient reaches the heads through their logits only.
  (loss, h), dZs = jax.value_and_grad(outer_loss, has_aux=True)(head_logits_t, log_probs)
  grads = []
  for head, dZ, x in zip(state.encoder, dZs, xs):
    _, vjp = jax.vjp(lambda hd: (_head_weight(hd), hd.b), head)
    grads.append(vjp((dZ @ x, jnp.sum(dZ, axis=1)))[0])
  grads = tuple(grads)
  updates, opt_state = outer_tx.update(grads, state.opt_state, state.encoder)
  new = state._replace(
    encoder=optax.apply_updates(state.encoder, updates),
    opt_state=opt_state,
    inner=inner,
    inner_opt_state=inner_opt,
    step=state.step + 1,
  )
  return new, (loss, h)


def _inner_adam(inner, inner_opt, inner_tx, target, xs, steps: int):
  """``steps`` Adam steps of the per-space classifiers on the fixed soft labels ``target [k, n]``."""

  def inner_grads(inner):
    """Gradient of the inner loss sum_m CE(w_m x_m, target), written out: dZ = (softmax(Z) * s - target) / n."""
    s = jnp.sum(target, axis=0, keepdims=True)
    grads = []
    for w, x in zip(inner, xs):
      dZ = (jax.nn.softmax(_logits_t(w.V, w.c, x), axis=0) * s - target) / x.shape[0]
      grads.append(Classifier(V=dZ @ x, c=jnp.sum(dZ, axis=1)))
    return tuple(grads)

  def inner_step(carry, _):
    inner, opt = carry
    updates, opt = inner_tx.update(inner_grads(inner), opt, inner)
    return (optax.apply_updates(inner, updates), opt), None

  (inner, inner_opt), _ = jax.lax.scan(inner_step, (inner, inner_opt), None, length=steps)
  return inner, inner_opt


_turtle_step_jit = jax.jit(turtle_step)


def turtle_step_jit(state: TurtleState, phis: tuple[jax.Array, ...], *, config: TurtleConfig):
  """``turtle_step`` compiled once per process for each config and shapes; ``seed`` and
  ``num_iters``, which the step never reads, are traced, not compiled in (``hume_jax.config``), so seeds
  run one after another share it."""
  return _turtle_step_jit(state, phis, config=config)


def fit_turtle(
  phis: list[np.ndarray],
  config: TurtleConfig,
  *,
  labels: np.ndarray | None = None,
  state: TurtleState | None = None,
  hooks: Hooks | None = None,
  **fields,
) -> tuple[TurtleState, list[dict]]:
  """Runs TURTLE on ``M`` spaces ``phis[m] [n, d_m]``; returns ``(state, log records)``.

  ``labels``, ``state``, ``hooks`` and their ``**fields`` (``hume_jax.training.hooks.Hooks``: ``log_every``
  (50), ``progress``, ``on_log``, ``checkpoint_every``, ``on_checkpoint``, ``stop``, ``deadline``,
  ``on_estimate``) work as in ``hume_jax.fit``. Every iteration's draws come from ``fold_in(key, iteration)``, so
  a resumed run ends bit-identical to an uninterrupted one.
  """
  for m in range(1, len(phis)):
    check_fit_inputs(phis[0], phis[m], labels, unit_phi1=False)
  check_turtle_config(config, len(phis[0]))
  dtype = compute_dtype(phis[0])
  xs = tuple(jnp.asarray(x, dtype) for x in phis)
  if state is None:
    state = init_turtle(jax.random.PRNGKey(config.seed), config, tuple(x.shape[1] for x in xs), dtype)
  step = lambda st: turtle_step_jit(st, xs, config=config)
  metrics = lambda out: {"loss": float(out[0]), "entropy": float(out[1])}
  finite = lambda st: all(bool(jnp.all(jnp.isfinite(h.v))) for h in st.encoder)
  predicted = lambda st: predict_turtle(st.encoder, xs)
  return run_loop(
    step,
    state,
    config.num_iters,
    desc="TURTLE",
    metrics=metrics,
    predict=predicted,
    finite=finite,
    labels=labels,
    hooks=hooks_of(hooks, fields),
    log_every=50,
  )


def predict_turtle(encoder: tuple[Head, ...], phis) -> np.ndarray:
  """Hard labels ``argmax`` of the mean per-space labeling, ``[n]``."""
  return np.asarray(jnp.argmax(turtle_labels(encoder, tuple(jnp.asarray(x) for x in phis))[1], axis=-1))
