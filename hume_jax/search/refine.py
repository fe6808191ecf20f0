"""Cross-space refinement of a labeling, label-free: each sample takes the class that linear
classifiers of *both* spaces, fitted on the current labels, find most probable.

HUME's premise (the paper's Sec. 3) is that the human labeling is linearly separable in every
strong representation. The search (Eq. 4-7) returns a labeling read off ``phi1`` by the task
encoder and voted over runs that read either space (``hume_jax.search.auto``); samples near a class
boundary of one space are labelled by that space alone. One refinement round asks both spaces:

    log p_s(c | x) from L2-regularised logistic regression fitted in space s on the current labels,
    cross-fitted over ``folds`` (no sample's own label takes part in predicting it);
    new label(x) = argmax_c  sum_{s in (a, b)} log p_s(c | x).

A labeling that is linearly separable in both spaces is a fixed point; the rounds move the
labeling towards one, as HUME's objective does, at the cost of a few logistic regressions each.
After ``rounds`` rounds a final pair of classifiers is fitted on every row with the refined labels
(past ``sampling.ROWS`` rows, each regression reads a seeded subsample of that many and predicts all rows):
their summed log-probabilities label any sample, training rows and new ones alike (``Refiner``).
``fit_auto`` keeps the refinement only where it makes its labels more separable in *each* space
(``refine_search``).
``benchmarks/README.md`` ("Cross-space refinement") measures it against the vote on every quality set.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from hume_jax.evaluation import logistic
from hume_jax.evaluation.metrics import separability_per_space
from hume_jax.evaluation.sampling import ROWS, subsample, take
from hume_jax.search.conditioning import apply_conditioning

ROUNDS = 3
C = 1.0  # inverse L2 strength of sklearn's LogisticRegression, on spaces scaled to unit top eigenvalue
DIMS = 64  # leading principal components of each conditioned space, as the criterion reads
FOLDS = 5
CRITERIA = ROUNDS + 2  # its cost in criteria (each fits 2 x 5 regressions, as a round does): rounds, final fits, report
GAIN = 0.01  # kappa to gain in each space; on the quality sets any value in 0.002-0.019 chooses the same
FLOOR = -1e4  # logit of a class a fold's training rows lack: never the argmax


class Refiner(NamedTuple):
  """The final classifiers of a refinement: for space ``s`` in ``("a", "b")``, ``conditioning[s]``
  (``hume_jax.search.conditioning.Conditioning`` as phi2) maps raw rows to the space the classifier reads
  (its first ``dims`` columns); ``coef[s] [k, dims]`` and ``intercept[s] [k]`` are its logits."""

  conditioning: dict
  coef: dict
  intercept: dict
  dims: int


def _logistic(x: np.ndarray, labels: np.ndarray, k: int, c: float) -> tuple[np.ndarray, np.ndarray]:
  """``(coef [k, d], intercept [k])`` of a logistic regression on ``x [n, d]``; a class absent
  from ``labels`` gets the logit ``FLOOR``."""
  if jax.default_backend() != "cpu":  # on an accelerator: the same regression in JAX (hume_jax.evaluation.logistic)
    coef, intercept = logistic.fit(x, labels, k, c)
    return coef, np.where(np.bincount(labels, minlength=k) > 0, intercept, FLOOR)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning at max_iter=100
    clf = LogisticRegression(C=c).fit(x, labels)
  coef, intercept = np.zeros((k, x.shape[1])), np.full(k, FLOOR)
  if len(clf.classes_) == 2:  # sklearn's binary model: one logit, for classes_[1] against classes_[0]
    coef[clf.classes_[1]], intercept[clf.classes_] = clf.coef_[0], (0.0, clf.intercept_[0])
  else:
    coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
  return coef, intercept


def _crossfit_log_proba(x: np.ndarray, labels: np.ndarray, k: int, c: float, folds: int) -> np.ndarray:
  """``[n, k]`` out-of-fold log-probabilities of ``labels`` from ``x [n, d]``."""
  if jax.default_backend() != "cpu":  # every fold at once on the device, all rows (cost linear in n)
    held_out = [rows for _, rows in KFold(folds, shuffle=True, random_state=1).split(x)]
    log_p = logistic.crossval_predict([x], labels, held_out, k, c, proba=True)[0]
    return np.where(np.bincount(labels, minlength=k)[None, :] > 0, log_p, FLOOR)
  out = np.empty((len(x), k))
  for fold, (fit_rows, held_out) in enumerate(KFold(folds, shuffle=True, random_state=1).split(x)):
    fit_rows = take(fit_rows, subsample(len(fit_rows), ROWS * (folds - 1) // folds, seed=fold))
    coef, intercept = _logistic(x[fit_rows], labels[fit_rows], k, c)
    out[held_out] = log_softmax(x[held_out] @ coef.T + intercept, axis=1)
  return out


def refine(
  spaces: dict, labels: np.ndarray, k: int, *, rounds: int = ROUNDS, c: float = C, folds: int = FOLDS, dims: int = DIMS
) -> tuple[np.ndarray, dict, list[float]]:
  """``rounds`` cross-fitted rounds from ``labels [n]`` on the conditioned training rows
  ``spaces = {"a": [n, d_a], "b": [n, d_b]}``, then the final classifiers on every row.

  Returns ``(labels of the final classifiers [n], {s: (coef, intercept)}, the share of samples
  each round relabelled)``. Rounds stop early when one changes no label.
  """
  x = {s: np.asarray(v, np.float64)[:, :dims] for s, v in spaces.items()}
  labels, changed = np.asarray(labels, np.int64), []
  for _ in range(rounds):
    new = np.argmax(sum(_crossfit_log_proba(x[s], labels, k, c, folds) for s in ("a", "b")), axis=1)
    changed.append(float((new != labels).mean()))
    labels = new
    if not changed[-1]:
      break
  rows = subsample(len(labels))  # past ROWS rows the final classifiers read a seeded subsample
  models = {s: _logistic(take(x[s], rows), take(labels, rows), k, c) for s in ("a", "b")}
  return _predict(models, x), models, changed


def _predict(models: dict, x: dict) -> np.ndarray:
  return np.argmax(sum(log_softmax(x[s] @ models[s][0].T + models[s][1], axis=1) for s in ("a", "b")), axis=1)


def refined_labels(refiner: Refiner, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
  """Labels ``[m]`` of raw samples ``phi_a [m, d_a]``, ``phi_b [m, d_b]`` by the refiner's classifiers."""
  raw = {"a": phi_a, "b": phi_b}
  x = {s: apply_conditioning(refiner.conditioning[s], raw[s]).astype(np.float64)[:, : refiner.dims] for s in raw}
  models = {s: (refiner.coef[s], refiner.intercept[s]) for s in raw}
  return _predict(models, x)


def refine_search(spaces, labels: np.ndarray, k: int, before=None, say=print) -> tuple[Refiner | None, dict]:
  """The refinement of the search's labels on the training rows of ``spaces``
  (``hume_jax.search.conditioning.Spaces``), and its report for ``metrics.json``: the share of samples
  each round relabelled, the refined labeling's separability in each space, its agreement with
  the labels it started from and whether it is used: only when it empties no class they fill and
  is more separable than they are (``before``: their separability per space, measured when not
  given) by ``GAIN`` in *each* space. A gain in one space alone means the rounds followed that
  space's own structure (on the quality sets: the weak view's), not a labeling both spaces share."""
  judged = {s: spaces.cond2[s] for s in ("a", "b")}
  if before is None or np.isnan(before).any():
    before = separability_per_space([judged["a"], judged["b"]], labels)
  new, models, changed = refine(judged, labels, k)
  sizes, counts = np.bincount(new, minlength=k), np.bincount(labels, minlength=k)
  per_space = separability_per_space([judged["a"], judged["b"]], new)
  gain = float(np.min(np.subtract(per_space, before)))
  report = {
    "rounds": len(changed),
    "relabelled_per_round": changed,
    "separability": float(np.mean(per_space)),
    "separability_per_space": dict(zip("ab", per_space)),
    "nonempty_classes": int((sizes > 0).sum()),
    "smallest_class": int(sizes.min()),
    "agreement_with_search": float((new == labels).mean()),
    "separability_gain": gain,
    "used": bool((sizes > 0).sum() >= (counts > 0).sum() and gain >= GAIN),
  }
  if not report["used"]:
    why = "left a class empty" if gain >= GAIN else f"gained {gain:+.4f} separability in one space (under {GAIN})"
    say(f"auto: the refinement in both spaces {why}: labels = the search's")
    return None, report
  say(
    f"auto: refined in both spaces ({len(changed)} rounds of cross-fitted logistic regression; "
    f"{100 * (1 - report['agreement_with_search']):.1f}% of samples relabelled; separability "
    f"{report['separability']:.4f})"
  )
  refiner = Refiner(
    {s: spaces.as_phi2[s] for s in ("a", "b")},
    {s: models[s][0] for s in models},
    {s: models[s][1] for s in models},
    DIMS,
  )
  return refiner, report
