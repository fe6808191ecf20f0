"""The label-free premise check (hume_jax.search.premise) and the scikit-learn-style estimator."""

import numpy as np
import pytest
from conftest import planted

from hume_jax import HUME
from hume_jax.search.premise import MARGIN, premise_report, summary_line


def test_a_labeling_both_spaces_share_stands_out():
  phi1, phi2, y = planted()
  report = premise_report(phi1, phi2, y, 4)
  assert report["favoured"] and report["warning"] is None
  assert (
    report["found"]["phi1"] > 0.95 and report["k-means of phi1"]["ari_to_found"] > 0.8
  )  # k-means: the same labeling
  assert "stands out" in summary_line(report)


def test_a_different_partition_as_separable_as_the_found_one_warns():
  phi1, phi2, y = planted()
  found = np.random.default_rng(5).integers(0, 4, len(y))  # a poor labeling; k-means finds a far more separable one
  report = premise_report(phi1, phi2, found, 4)
  assert not report["favoured"] and "may not single out a human-like labeling" in report["warning"]


def two_labelings(weight, n=600, seed=0):
  """phi1 clusters by a labeling ``other``; phi2 separates ``y`` and, with ``weight``, ``other`` too."""
  rng = np.random.default_rng(seed)
  y, other = rng.integers(0, 4, n), rng.integers(0, 4, n)
  eye, noise = np.eye(4), lambda d: rng.normal(size=(n, d))
  phi1 = np.hstack([4 * eye[other], 2.5 * eye[y], noise(4)]) + 0.5 * noise(12)
  phi2 = np.hstack([3 * eye[y], weight * eye[other], noise(4)]) + 0.5 * noise(12)
  return phi1, phi2, y


@pytest.mark.parametrize("weight, favoured", [(0.5, True), (1.2, False)])
def test_a_lead_under_the_margin_over_a_different_partition_warns(weight, favoured):
  phi1, phi2, y = two_labelings(weight)
  report = premise_report(phi1, phi2, y, 4)
  partition = report["k-means of phi1"]
  lead = report["found"]["phi2"] - partition["phi2"]
  assert partition["ari_to_found"] < 0.1 and lead > 0  # a different labeling, less separable in phi2 than y
  assert (lead >= MARGIN) == favoured and report["favoured"] == favoured
  assert (report["warning"] is None) == favoured


def test_estimator_follows_scikit_learn_conventions():
  from sklearn.base import clone

  phi1, phi2, y = planted()
  model = HUME(k=4, preset="official", num_iters=40, seed=0)
  assert clone(model).get_params() == model.get_params() and model.get_params()["k"] == 4
  labels = model.set_params(num_iters=40).fit_predict(phi1 * 3, phi2)  # phi1 L2-normalised for the task encoder
  assert labels.shape == (600,) and 0 < model.cv_score_ <= 1
  np.testing.assert_array_equal(model.predict(phi1), labels)
  with pytest.raises(ValueError, match="call predict\\(phi1, phi2\\)"):
    HUME(k=4, method="turtle", num_iters=5).fit(phi1, phi2).predict(phi1)
