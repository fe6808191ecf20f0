"""Reference points for a HUME result: k-means on each representation (the usual
unsupervised baseline) and a supervised linear probe (the ceiling a linear labeling can reach)."""

from __future__ import annotations

import warnings

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hume_jax.evaluation import metrics as hm
from hume_jax.evaluation.kmeans import cluster
from hume_jax.evaluation.sampling import nearest, subsample, take


def kmeans(phi_fit: np.ndarray, phi_eval: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
  """k-means (``n_init=10``) fitted on ``phi_fit [n, d]`` (past ``sampling.ROWS`` rows, on a seeded
  subsample of that many; ``hume_jax.evaluation.kmeans.cluster``); cluster of each row of ``phi_eval``."""
  if jax.default_backend() != "cpu":
    return nearest(phi_eval, cluster(phi_fit, k, seed)[0])

  fit_rows = take(phi_fit, subsample(len(phi_fit), seed=seed))
  return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(fit_rows).predict(phi_eval)


def linear_probe(phi_fit: np.ndarray, y_fit: np.ndarray, phi_eval: np.ndarray) -> np.ndarray:
  """Logistic regression (L2, ``C=1``, standardised inputs) trained on labels (past ``sampling.ROWS``
  rows, on a seeded subsample of that many); predictions on ``phi_eval``."""
  rows = subsample(len(phi_fit))
  clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return clf.fit(take(phi_fit, rows), take(y_fit, rows)).predict(phi_eval)


def _unit_variance(x: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
  """``x`` centred and scaled (by the statistics of ``fitted_on``) to unit total variance, so that
  neither space of a concatenation dominates it by its scale."""
  mean = fitted_on.mean(0)
  return (x - mean) / np.sqrt(((fitted_on - mean) ** 2).sum(1).mean())


def cv_probe(phi: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 5) -> np.ndarray:
  """Each row's prediction by a ``linear_probe`` trained on the other folds of ``folds``-fold cross-validation
  (stratified and shuffled by ``seed``; plain shuffled folds when a class has fewer than ``folds`` rows):
  the probe of a split that has no other labeled split, never scored on the rows it was trained on."""

  class Probe(ClassifierMixin, BaseEstimator):  # linear_probe as an estimator: fitted on each fold's training rows
    def fit(self, x, t):
      self.x_, self.t_ = x, t
      return self

    def predict(self, x):
      return linear_probe(self.x_, self.t_, x)

  stratify = np.unique(y, return_counts=True)[1].min() >= folds
  split = (StratifiedKFold if stratify else KFold)(folds, shuffle=True, random_state=seed)
  return cross_val_predict(Probe(), phi, y, cv=split)


def run_baselines(
  train: dict[str, np.ndarray],
  evaluation: dict[str, np.ndarray],
  k: int,
  seed: int = 0,
  *,
  same_split: bool = False,
  names: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
  """ACC/NMI/ARI on the evaluation split of k-means (each representation, and both concatenated)
  and of a linear probe, per representation.

  Args:
    train, evaluation: dicts with ``phi1``, ``phi2`` and ``labels``.
    same_split: they hold the same rows (no val split): each probe is scored by its 5-fold
      cross-validated predictions (``cv_probe``), and its row says so.
    names: how the rows name each space, e.g. ``{"phi1": "--phi1 (a.npy)", ...}`` (default its key).
  """
  names = {"phi1": "phi1", "phi2": "phi2", **(names or {})}
  results = {}
  y = evaluation["labels"]
  for name in ("phi1", "phi2"):
    results[f"k-means on {names[name]}"] = hm.evaluate(kmeans(train[name], evaluation[name], k, seed), y)
  both = lambda split: np.hstack([_unit_variance(split[name], train[name]) for name in ("phi1", "phi2")])
  results[f"k-means on {names['phi1']} + {names['phi2']}"] = hm.evaluate(
    kmeans(both(train), both(evaluation), k, seed), y
  )
  for name in ("phi1", "phi2"):
    if same_split:
      pred = cv_probe(evaluation[name], y, seed)
      results[f"linear probe on {names[name]} (supervised, 5-fold CV)"] = hm.evaluate(pred, y)
    else:
      pred = linear_probe(train[name], train["labels"], evaluation[name])
      results[f"linear probe on {names[name]} (supervised)"] = hm.evaluate(pred, y)
  return results
