"""Cross-space refinement (hume_jax.search.refine) against an independent sklearn formulation, its fixed
point, its consistency with the saved classifiers, and what it does for fit_auto."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_predict

from hume_jax.search.conditioning import condition_spaces
from hume_jax.search.refine import Refiner, refine, refined_labels


def two_views(n=600, k=4, noise=0.8, seed=0):
  """Two views of k Gaussian classes (different random embeddings of the same class means)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  means = rng.normal(size=(k, 6)) * 3
  views = []
  for d in (20, 30):
    mix = rng.normal(size=(6, d))
    views.append((means[y] + noise * rng.normal(size=(n, 6))) @ mix + 0.3 * rng.normal(size=(n, d)))
  return views[0].astype(np.float32), views[1].astype(np.float32), y


def sklearn_round(x: dict, labels, c):
  """One round as the plain sklearn calls: out-of-fold log-probabilities in each space, summed."""
  cv = KFold(5, shuffle=True, random_state=1)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    total = sum(
      cross_val_predict(LogisticRegression(C=c), x[s], labels, cv=cv, method="predict_log_proba") for s in "ab"
    )
  return np.argmax(total, axis=1)


def test_each_round_is_sklearns_cross_fitted_logistic_regression_in_both_spaces():
  a, b, y = two_views()
  spaces = condition_spaces(a, b).cond2
  x = {s: spaces[s][:, :64].astype(np.float64) for s in "ab"}
  start = np.where(np.random.default_rng(1).random(len(y)) < 0.25, (y + 1) % 4, y)  # a quarter mislabelled
  expected = start
  for _ in range(2):
    expected = sklearn_round(x, expected, 1.0)
  # the two rounds then the final fit: compare the rounds through a refine of 2 rounds whose final
  # classifiers are fitted on `expected`; refitting sklearn on `expected` must give the same labels
  new, models, changed = refine(spaces, start, 4, rounds=2)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    final = sum(LogisticRegression(C=1.0).fit(x[s], expected).predict_log_proba(x[s]) for s in "ab")
  np.testing.assert_array_equal(new, np.argmax(final, axis=1))
  assert len(changed) == 2 and changed[0] > 0.15  # the first round undoes most of the noise
  assert (new == y).mean() > 0.97 > (start == y).mean()


def test_a_labeling_separable_in_both_spaces_is_a_fixed_point():
  a, b, y = two_views(noise=0.2)
  spaces = condition_spaces(a, b).cond2
  new, _, changed = refine(spaces, y, 4)
  assert changed == [0.0]
  np.testing.assert_array_equal(new, y)


def test_the_saved_classifiers_label_the_training_rows_as_the_refinement_did():
  a, b, y = two_views(seed=3)
  sp = condition_spaces(a, b)
  noisy = np.where(np.random.default_rng(2).random(len(y)) < 0.2, 0, y)
  new, models, _ = refine(sp.cond2, noisy, 4)
  refiner = Refiner(sp.as_phi2, {s: m[0] for s, m in models.items()}, {s: m[1] for s, m in models.items()}, 64)
  np.testing.assert_array_equal(refined_labels(refiner, a, b), new)


@pytest.mark.parametrize("present", [(0, 2), (0, 1, 3)])
def test_classes_the_labels_lack_are_never_given(present):
  a, b, y = two_views(seed=4)
  sp = condition_spaces(a, b).cond2
  labels = np.asarray(present)[y % len(present)]  # only these class ids appear (binary or three)
  new, models, _ = refine(sp, labels, 4)
  assert set(np.unique(new)) <= set(present)
  for coef, intercept in models.values():
    assert coef.shape[0] == intercept.shape[0] == 4


def test_fit_auto_refines_a_vote_both_spaces_can_improve():
  from hume_jax.search.auto import fit_auto, vote_labels

  a, b, y = two_views(n=400, noise=2.0, seed=5)
  res = fit_auto(a, b, 4, num_iters=3, progress=False, say=lambda s: None)  # a short search: an imperfect vote
  report = res.refinement
  assert report["used"] and res.refiner is not None and 1 <= report["rounds"] <= 3
  for s in "ab":
    assert report["separability_per_space"][s] >= res.vote["separability_per_space"][s] + 0.01
  labels, voted = vote_labels(res, a, b), vote_labels(res._replace(refiner=None), a, b)
  assert len(np.unique(labels)) == 4
  assert abs((labels == voted).mean() - report["agreement_with_search"]) < 1e-9 and report["agreement_with_search"] < 1


def test_fit_auto_keeps_a_vote_the_refinement_cannot_make_more_separable_in_each_space():
  from hume_jax.search.auto import fit_auto, vote_labels

  a, b, y = two_views(n=400, noise=1.2, seed=5)  # the vote is already separable in both spaces
  said = []
  res = fit_auto(a, b, 4, num_iters=10, progress=False, say=said.append)
  assert not res.refinement["used"] and res.refiner is None
  assert res.refinement["separability_gain"] < 0.01
  assert any("labels = the search's" in line for line in said)
  np.testing.assert_array_equal(vote_labels(res, a, b), vote_labels(res._replace(refiner=None), a, b))
