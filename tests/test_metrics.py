import numpy as np
import pytest

from hume_jax.evaluation import metrics as hm
from hume_jax.report import plots


def test_hungarian_accuracy_is_permutation_invariant():
  y = np.array([0, 0, 1, 1, 2, 2, 2])
  assert hm.hungarian_accuracy(np.array([2, 2, 0, 0, 1, 1, 1]), y) == 1.0
  assert hm.hungarian_accuracy(np.array([2, 2, 0, 0, 1, 1, 0]), y) == pytest.approx(6 / 7)
  # brute force over all 3! matchings
  import itertools

  pred = np.random.default_rng(0).integers(0, 3, 50)
  yy = np.random.default_rng(1).integers(0, 3, 50)
  brute = max(np.mean(np.array(p)[pred] == yy) for p in itertools.permutations(range(3)))
  assert hm.hungarian_accuracy(pred, yy) == pytest.approx(brute)


def test_evaluate_and_sizes():
  y = np.array([0, 0, 1, 1])
  assert hm.evaluate(np.array([1, 1, 0, 0]), y) == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
  assert hm.cluster_sizes(np.array([0, 2, 2]), 4) == [1, 0, 2, 0]


def test_cv_score_separable_vs_random():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 300)
  x = np.eye(3)[y] * 5 + 0.1 * rng.normal(size=(300, 3))
  assert hm.cv_score(x, y, n_jobs=1) == 1.0
  assert hm.cv_score(x, rng.integers(0, 3, 300), n_jobs=1) < 0.6
  assert hm.cv_score(x, np.zeros(300, int)) == 1.0


def test_confusion_matrix_png(tmp_path):
  y = np.array([0, 0, 1, 1, 2, 2, 2])
  counts = plots.confusion_matrix(np.array([2, 2, 0, 0, 1, 1, 0]), y, str(tmp_path / "c.png"))
  assert np.trace(counts) == 6 and counts.sum() == 7
  assert (tmp_path / "c.png").stat().st_size > 1000


def test_confusion_matrix_keeps_the_found_numbers_in_matched_order(tmp_path):
  # found 2 <-> true 0, found 0 <-> true 1, found 1 <-> true 2: columns in the order [2, 0, 1]
  y = np.array([0, 0, 1, 1, 2, 2, 2])
  pred = np.array([2, 2, 0, 0, 1, 1, 0])
  counts = plots.confusion_matrix(pred, y, str(tmp_path / "c.png"), class_names=["a", "b", "c"])
  np.testing.assert_array_equal(counts, hm.contingency(y, pred, 3)[:, [2, 0, 1]])
  assert np.trace(counts) == 6
