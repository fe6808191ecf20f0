"""The JAX logistic regression against scikit-learn's, and row weights against removed rows."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from hume_jax.evaluation.logistic import _fit_one, crossval_kappas, crossval_predict
from hume_jax.evaluation.metrics import cv_kappa, separability_per_space


def mixture(n=600, k=4, d=6, seed=0, spread=1.5):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  x = rng.normal(size=(k, d))[y] * spread + rng.normal(size=(n, d))
  return x.astype(np.float32), y


def test_l2_fit_matches_scikit_learn_coefficients():
  """sklearn's objective C * sum(loss) + ||W||^2 / 2 is ours with l2 = 1 / (C n): same optimum."""
  x, y = mixture()
  ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x.astype(np.float64), y)
  W, b = _fit_one(jnp.asarray(x), jnp.asarray(y), jnp.ones(len(y)), 1.0 / len(y), 4, 100)
  np.testing.assert_allclose(np.asarray(W).T, ref.coef_, atol=2e-3)
  centred = lambda v: v - v.mean()  # intercepts are defined up to a common constant
  np.testing.assert_allclose(centred(np.asarray(b)), centred(ref.intercept_), atol=2e-3)


def test_a_zero_row_weight_is_a_removed_row():
  x, y = mixture(n=300)
  keep = np.arange(300) % 3 != 0
  weighted = _fit_one(jnp.asarray(x), jnp.asarray(y), jnp.asarray(keep, jnp.float32), 0.01, 4, 100)
  removed = _fit_one(jnp.asarray(x[keep]), jnp.asarray(y[keep]), jnp.ones(keep.sum()), 0.01, 4, 100)
  for a, b in zip(weighted, removed):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_out_of_fold_predictions_match_scikit_learn():
  from sklearn.model_selection import KFold, cross_val_predict

  x, y = mixture(n=800, spread=1.0)
  folds = [rows for _, rows in KFold(5, shuffle=True, random_state=1).split(x)]
  ours = crossval_predict([x, x[:, ::-1]], y, folds, 4, c=1.0)
  theirs = cross_val_predict(LogisticRegression(C=1.0), x, y, cv=KFold(5, shuffle=True, random_state=1))
  assert ours.shape == (2, 800)
  assert (ours[0] == theirs).mean() > 0.99 and (ours[1] == theirs).mean() > 0.99


@pytest.mark.parametrize("spread", [0.6, 1.5])
def test_unpenalised_kappas_match_the_scikit_learn_criterion(spread):
  """Unpenalised, where the optimum may lie at infinity, both stop after 100 iterations: the kappas
  of their out-of-fold predictions agree (measured on real features in benchmarks/README.md)."""
  x, y = mixture(n=1000, k=5, spread=spread)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    theirs = [cv_kappa(v, y, folds=5, n_jobs=1) for v in (x, x * 2.0)]
  ours = crossval_kappas([x, x * 2.0], y, folds=5)
  np.testing.assert_allclose(ours, theirs, atol=0.01)
  assert separability_per_space([x, x], y, solver="jax") == pytest.approx(
    separability_per_space([x, x], y, solver="sklearn"), abs=0.01
  )


def test_a_single_class_scores_zero():
  x, _ = mixture(n=100)
  assert crossval_kappas([x], np.zeros(100, np.int64)) == [0.0]


def test_an_accelerator_refines_and_scores_as_scikit_learn_does(monkeypatch):
  """On an accelerator the refinement's cross-fitted regressions and the search's CV score run in JAX:
  the same labels and score as scikit-learn's on a CPU, up to the optimiser's last digits."""
  import hume_jax.search.refine as hr
  from hume_jax.evaluation.metrics import cv_score

  rng = np.random.default_rng(3)
  x, y = mixture(n=900, k=4, d=6, spread=1.2)
  noisy = np.where(rng.random(900) < 0.15, rng.integers(0, 4, 900), y)
  spaces = {"a": x, "b": x[:, ::-1] * 0.5}
  cpu, cpu_models, _ = hr.refine(spaces, noisy, 4)
  cpu_cv = cv_score(x, noisy, rows=10_000, solver=None)
  monkeypatch.setattr(hr.jax, "default_backend", lambda: "gpu")
  gpu, gpu_models, _ = hr.refine(spaces, noisy, 4)
  assert (gpu == cpu).mean() > 0.99
  np.testing.assert_allclose(gpu_models["a"][0], cpu_models["a"][0], atol=0.02)
  assert cv_score(x, noisy, rows=10_000, solver=None) == pytest.approx(cpu_cv, abs=0.01)
