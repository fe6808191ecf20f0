"""Multinomial logistic regression in JAX, batched over folds and spaces: the label-free
criterion's cross-validated kappa (``metrics.cv_kappa``) as one jitted program.

The objective is scikit-learn's ``LogisticRegression`` (multinomial, intercept unpenalised):

    mean_i CE(x_i W + b, y_i) + ||W||^2 / (2 C n_fit)        (C = inf: unpenalised)

minimised by ``optax.lbfgs`` with its zoom line search for a fixed number of iterations
(scikit-learn's ``max_iter`` default, 100), so the same inputs give the same result on any
machine. A fold is a row weight (1 fits, 0 held out), so every fold of every space has the same
shapes and ``jax.vmap`` runs them all at once; only argmax predictions leave the device.
``tests/test_logistic.py`` checks the fit against scikit-learn's on the same data, and
``benchmarks/README.md`` ("The criterion in JAX") its kappas against scikit-learn's on real data.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.metrics import cohen_kappa_score
from sklearn.model_selection import KFold

from hume_jax.evaluation.sampling import split_sharding

MAX_ITER = 100


def _loss(params, x, y, w, l2):
  """Weighted mean cross-entropy of ``x [n, d] @ W + b`` against ``y [n]`` plus ``l2 / 2 ||W||^2``."""
  W, b = params
  logp = jax.nn.log_softmax(x @ W + b[None, :], axis=-1)
  nll = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
  return jnp.sum(w * nll) / jnp.sum(w) + 0.5 * l2 * jnp.sum(W * W)


def _fit_one(x, y, w, l2, k: int, iters: int):
  """``(W [d, k], b [k])`` minimising ``_loss`` from zeros, ``iters`` L-BFGS iterations."""
  dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32, or float64 in x64 mode (optax's line search
  x, w, l2 = (jnp.asarray(v, dtype) for v in (x, w, l2))  # seeds its cotangents in the default float)
  fun = functools.partial(_loss, x=x, y=y, w=w, l2=l2)
  opt = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=20, store_grad=True))
  value_and_grad = optax.value_and_grad_from_state(fun)
  params = (jnp.zeros((x.shape[1], k), x.dtype), jnp.zeros((k,), x.dtype))

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=iters)
  return params


@functools.partial(jax.jit, static_argnames=("k", "iters", "proba"))
def _crossval_predict(x, y, fit_weights, l2, k: int, iters: int, proba: bool):
  """``x [S, n, d]`` (S spaces), ``fit_weights [F, n]`` (F folds): each fold's predictions of every
  row, ``int [S, F, n]`` (or log-probabilities ``[S, F, n, k]`` with ``proba``); the caller keeps
  each row's held-out fold."""

  def per_space(xs):
    def per_fold(w):
      W, b = _fit_one(xs, y, w, l2 / jnp.sum(w), k, iters)
      logits = xs @ W + b[None, :]
      return jax.nn.log_softmax(logits, axis=-1) if proba else jnp.argmax(logits, axis=-1)

    return jax.vmap(per_fold)(fit_weights)

  return jax.vmap(per_space)(x)


def crossval_predict(
  spaces: list[np.ndarray], labels: np.ndarray, folds: list[np.ndarray], k: int, c: float = np.inf, proba: bool = False
) -> np.ndarray:
  """Out-of-fold predictions ``int [S, n]`` (with ``proba``, log-probabilities ``[S, n, k]``) of
  ``labels [n]`` (in ``range(k)``) from each space ``[n, d]`` (all of one ``d``), ``folds`` the
  held-out row indices of each fold (a partition of the rows), ``c`` scikit-learn's inverse L2
  strength (``inf``: unpenalised). With several local devices the folds are split over as many as
  divide them (``sampling.split_sharding``; the same result)."""
  n = len(labels)
  held = np.zeros((len(folds), n), bool)
  for f, rows in enumerate(folds):
    held[f, rows] = True
  x = jnp.asarray(np.stack([np.asarray(s, np.float32) for s in spaces]))
  l2 = 0.0 if np.isinf(c) else 1.0 / c
  y, w = jnp.asarray(labels, jnp.int32), jnp.asarray(~held, jnp.float32)
  shardings = split_sharding(len(folds), "folds")  # the folds over the local devices that divide them
  if shardings is not None:
    w, x, y = jax.device_put(w, shardings[0]), jax.device_put(x, shardings[1]), jax.device_put(y, shardings[1])
  preds = np.asarray(_crossval_predict(x, y, w, l2, k, MAX_ITER, proba))
  return preds[:, np.argmax(held, axis=0), np.arange(n)]


def fit(x: np.ndarray, labels: np.ndarray, k: int, c: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
  """``(coef [k, d], intercept [k])`` of the regression of ``labels [n]`` on ``x [n, d]`` (as
  scikit-learn's ``coef_``, ``intercept_``), ``MAX_ITER`` iterations on the default device."""
  l2 = 0.0 if np.isinf(c) else 1.0 / (c * len(labels))
  W, b = _fit_jit(jnp.asarray(x, jnp.float32), jnp.asarray(labels, jnp.int32), l2, k)
  return np.asarray(W, np.float64).T, np.asarray(b, np.float64)


@functools.partial(jax.jit, static_argnames=("k",))
def _fit_jit(x, y, l2, k: int):
  return _fit_one(x, y, jnp.ones(x.shape[0]), l2, k, MAX_ITER)


def crossval_kappas(spaces: list[np.ndarray], labels: np.ndarray, folds: int = 5) -> list[float]:
  """Cohen's kappa of ``labels [n]`` against their ``folds``-fold out-of-fold predictions from each
  space (unpenalised, the folds of ``metrics.cv_kappa``: shuffled, ``random_state=1``), every
  fold of every space in one program; a single-class labeling scores 0."""
  labels = np.asarray(labels, np.int64)
  if len(np.unique(labels)) < 2:
    return [0.0] * len(spaces)
  held_out = [rows for _, rows in KFold(folds, shuffle=True, random_state=1).split(labels)]
  preds = crossval_predict(spaces, labels, held_out, int(labels.max()) + 1)
  return [float(cohen_kappa_score(labels, p)) for p in preds]
