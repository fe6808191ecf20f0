"""The label-free premise check (hume_jax.premise) and the scikit-learn-style estimator."""

import numpy as np
import pytest
from test_fit import planted

from hume_jax import HUME
from hume_jax.premise import premise_report, summary_line


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
  assert not report["favoured"] and "do not single out a labeling" in report["warning"]


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
