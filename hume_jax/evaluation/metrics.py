"""Evaluation of a labeling: Hungarian accuracy, NMI, ARI, and HUME's label-free CV score."""

from __future__ import annotations

import itertools
import warnings

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_predict, cross_val_score

from hume_jax.evaluation.logistic import crossval_kappas, crossval_predict
from hume_jax.evaluation.sampling import subsample, take


def contingency(pred: np.ndarray, ref: np.ndarray, k: int | None = None) -> np.ndarray:
  """``C[i, j]`` = number of samples with ``pred == i`` and ``ref == j``, square ``[k, k]``."""
  pred, ref = np.asarray(pred, np.int64), np.asarray(ref, np.int64)
  k = k or int(max(pred.max(initial=0), ref.max(initial=0)) + 1)
  c = np.zeros((k, k), np.int64)
  np.add.at(c, (pred, ref), 1)
  return c


def hungarian_map(pred: np.ndarray, ref: np.ndarray, k: int | None = None) -> np.ndarray:
  """Permutation ``perm`` maximising ``sum(perm[pred] == ref)`` (``linear_sum_assignment``)."""
  c = contingency(pred, ref, k)
  rows, cols = linear_sum_assignment(-c)
  perm = np.arange(c.shape[0])
  perm[rows] = cols
  return perm


def hungarian_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
  """Accuracy of ``pred`` after the best one-to-one matching of its clusters to ``labels``."""
  pred, labels = np.asarray(pred), np.asarray(labels)
  return float(np.mean(hungarian_map(pred, labels)[pred] == labels))


def evaluate(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """``{"acc", "nmi", "ari"}`` of a labeling against ground truth."""
  return {
    "acc": hungarian_accuracy(pred, labels),
    "nmi": float(skm.normalized_mutual_info_score(labels, pred)),
    "ari": float(skm.adjusted_rand_score(labels, pred)),
  }


def cluster_sizes(pred: np.ndarray, k: int) -> list[int]:
  """Number of samples given each of the ``k`` labels."""
  return np.bincount(np.asarray(pred, np.int64), minlength=k).tolist()


def cv_score(
  phi2: np.ndarray,
  pred: np.ndarray,
  folds: int = 10,
  n_jobs: int | None = -1,
  rows: int | None = None,
  solver: str | None = "sklearn",
) -> float:
  """HUME's label-free model-selection score (official ``evaluate.py``).

  Mean accuracy over ``folds``-fold cross-validation (shuffled, ``random_state=1``) of an
  unpenalised logistic regression predicting the found labels ``pred [n]`` from
  ``phi2 [n, d2]``: how linearly separable the labeling is in the second space.
  Returns 1.0 when the labeling has a single class (trivially predictable). With ``rows``, past
  that many rows it reads a seeded subsample of ``rows`` (``sampling.subsample``); by default
  every row, exactly as the official code. ``solver``: ``"sklearn"`` (the official computation),
  ``"jax"`` (``logistic.crossval_predict``, every fold in one program on the default device) or
  None (JAX on an accelerator, scikit-learn on a CPU).
  """
  keep = None if rows is None else subsample(len(pred), rows)
  phi2, pred = take(phi2, keep), take(np.asarray(pred), keep)
  if len(np.unique(pred)) < 2:
    return 1.0
  cv = KFold(n_splits=folds, random_state=1, shuffle=True)
  if (solver or ("sklearn" if jax.default_backend() == "cpu" else "jax")) == "jax":
    held_out = [rows for _, rows in cv.split(phi2)]
    classes, y = np.unique(pred, return_inverse=True)
    again = crossval_predict([phi2], y, held_out, len(classes))[0]
    return float(np.mean([np.mean(again[r] == y[r]) for r in held_out]))  # per-fold mean, as cross_val_score
  clf = LogisticRegression(C=np.inf)  # unpenalised, as the official penalty=None
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning at max_iter=100, as upstream
    scores = cross_val_score(clf, phi2, pred, scoring="accuracy", cv=cv, n_jobs=n_jobs)
  return float(np.mean(scores))


def cv_kappa(phi2: np.ndarray, pred: np.ndarray, folds: int = 10, n_jobs: int | None = -1) -> float:
  """Chance-corrected CV score: Cohen's kappa between the found labels ``pred [n]`` and
  their cross-validated predictions from ``phi2 [n, d2]`` (same classifier and folds as
  ``cv_score``).

  The CV score's chance level grows as the number of classes K shrinks (a balanced
  labeling is predicted by chance with accuracy 1/K), so it prefers small K. Kappa,
  ``(accuracy - chance) / (1 - chance)``, removes that. A single-class labeling scores 0.
  """
  pred = np.asarray(pred)
  if len(np.unique(pred)) < 2:
    return 0.0
  cv = KFold(n_splits=folds, random_state=1, shuffle=True)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    again = cross_val_predict(LogisticRegression(C=np.inf), phi2, pred, cv=cv, n_jobs=n_jobs)
  return float(skm.cohen_kappa_score(pred, again))


def stability(preds: np.ndarray) -> float:
  """Mean adjusted Rand index over all pairs of labelings ``preds [N, n]`` (N >= 2 runs).

  A label-free way to choose K (Ben-Hur, Elisseeff & Guyon, 2002; Lange et al., 2004): with
  the right K, runs from different seeds find the same partition; with too many classes
  they split a true class in arbitrary, run-dependent ways, and with too few they merge
  different pairs of classes. ARI is corrected for chance, so small K gains nothing by luck.
  """
  pairs = list(itertools.combinations(range(len(preds)), 2))
  return float(np.mean([skm.adjusted_rand_score(preds[i], preds[j]) for i, j in pairs]))


def separability_per_space(
  spaces: list[np.ndarray],
  labels: np.ndarray,
  dims: int = 64,
  folds: int = 5,
  solver: str | None = None,
  n_jobs: int | None = 1,
) -> list[float]:
  """Chance-corrected CV score (Cohen's kappa of ``folds``-fold logistic regression, as
  ``cv_kappa``) of ``labels [n]`` in each space ``[n, d]``, on its first ``dims`` columns (the
  leading principal components of a conditioned space), which keeps it cheap. Past
  ``sampling.ROWS`` rows it reads a seeded subsample of that many (the same for every labeling).

  ``solver``: ``"sklearn"`` (``cv_kappa``), ``"jax"`` (``logistic.crossval_kappas``: every fold
  and space in one jitted program on the default device), or None: JAX on an accelerator,
  scikit-learn on a CPU, where both cost the same and scikit-learn's is the measured reference. ``n_jobs``:
  scikit-learn's folds in parallel (``-1``: every core; the same kappas); the search keeps 1.
  """
  rows = subsample(len(labels))
  labels = take(np.asarray(labels), rows)
  xs = [take(x, rows)[:, :dims] for x in spaces]
  solver = solver or ("sklearn" if jax.default_backend() == "cpu" else "jax")
  if solver == "jax" and len({x.shape[1] for x in xs}) == 1:
    return crossval_kappas(xs, labels, folds)
  return [cv_kappa(x, labels, folds=folds, n_jobs=n_jobs) for x in xs]


def separability(spaces: list[np.ndarray], labels: np.ndarray, dims: int = 64, folds: int = 5) -> float:
  """The label-free criterion of ``hume_jax.search.auto``: ``separability_per_space`` averaged.

  HUME's premise is that a human labeling is linearly separable in *every* strong space, so
  a labeling read off one space is judged in both; kappa removes the chance level (1/K for
  a balanced labeling) that the plain CV score rewards.
  """
  return float(np.mean(separability_per_space(spaces, labels, dims, folds)))
