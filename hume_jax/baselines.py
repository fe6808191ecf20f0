"""Reference points for a HUME result: k-means on each representation (the usual
unsupervised baseline) and a supervised linear probe (the ceiling a linear labeling can reach)."""

from __future__ import annotations

import warnings

import numpy as np

from hume_jax import metrics as hm


def kmeans(phi_fit: np.ndarray, phi_eval: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
  """k-means (``n_init=10``) fitted on ``phi_fit [n, d]``; cluster of each row of ``phi_eval``."""
  from sklearn.cluster import KMeans

  return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(phi_fit).predict(phi_eval)


def linear_probe(phi_fit: np.ndarray, y_fit: np.ndarray, phi_eval: np.ndarray) -> np.ndarray:
  """Logistic regression (L2, ``C=1``, standardised inputs) trained on labels; predictions on ``phi_eval``."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return clf.fit(phi_fit, y_fit).predict(phi_eval)


def _unit_variance(x: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
  """``x`` centred and scaled (by the statistics of ``fitted_on``) to unit total variance, so that
  neither space of a concatenation dominates it by its scale."""
  mean = fitted_on.mean(0)
  return (x - mean) / np.sqrt(((fitted_on - mean) ** 2).sum(1).mean())


def run_baselines(
  train: dict[str, np.ndarray], evaluation: dict[str, np.ndarray], k: int, seed: int = 0
) -> dict[str, dict[str, float]]:
  """ACC/NMI/ARI on the evaluation split of k-means (each representation, and both concatenated)
  and of a linear probe, per representation.

  Args:
    train, evaluation: dicts with ``phi1``, ``phi2`` and ``labels``. When they are the same
      split (transductive), the probe is trained on one half and evaluated on the other.
  """
  results = {}
  same = train is evaluation
  y = evaluation["labels"]
  for name in ("phi1", "phi2"):
    results[f"k-means on {name}"] = hm.evaluate(kmeans(train[name], evaluation[name], k, seed), y)
  both = lambda split: np.hstack([_unit_variance(split[name], train[name]) for name in ("phi1", "phi2")])
  results["k-means on phi1 + phi2"] = hm.evaluate(kmeans(both(train), both(evaluation), k, seed), y)
  for name in ("phi1", "phi2"):
    if same:
      idx = np.random.default_rng(seed).permutation(len(y))
      a, b = idx[: len(y) // 2], idx[len(y) // 2 :]
      pred = linear_probe(train[name][a], train["labels"][a], evaluation[name][b])
      results[f"linear probe on {name} (supervised)"] = hm.evaluate(pred, y[b])
    else:
      pred = linear_probe(train[name], train["labels"], evaluation[name])
      results[f"linear probe on {name} (supervised)"] = hm.evaluate(pred, y)
  return results
