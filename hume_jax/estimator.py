"""A scikit-learn-style face for HUME: ``HUME(k=10).fit(phi1, phi2).predict(phi1_new, phi2_new)``.

    from hume_jax import HUME
    model = HUME(k=10)                      # --preset auto: label-free conditioning, starts, vote
    labels = model.fit_predict(phi1, phi2)  # [n]
    model.cv_score_, model.predict(phi1_test, phi2_test)

HUME reads two representations of the same samples, so ``fit`` and ``predict`` take both
(``predict`` needs only ``phi1`` for an explicit HUME preset, whose task encoder reads phi1
alone). Parameters follow scikit-learn's rules (``get_params``, ``set_params``, ``clone``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from hume_jax.config import PRESETS, TurtleConfig
from hume_jax.evaluation import metrics as hm
from hume_jax.io.data import l2_normalize
from hume_jax.search.auto import fit_auto, vote_labels
from hume_jax.search.budget import DEFAULT_BUDGET
from hume_jax.search.sizes import as_prior
from hume_jax.training._fit import fit, predict
from hume_jax.training.turtle import fit_turtle, predict_turtle


class HUME(ClusterMixin, BaseEstimator):
  """HUME (or TURTLE) as an estimator.

  Args:
    k: number of classes.
    preset: ``"auto"`` (default: ``hume_jax.search.auto.fit_auto`` on raw features), ``"official"``,
      ``"cpu"`` or ``"imagenet"`` (``hume_jax.config``; phi1 L2-normalised, phi2 as given).
    budget: seconds for the ``"auto"`` search.
    num_iters: outer iterations (default: the preset's; for ``"auto"``, fitted to ``budget``).
    seed: seed of the run.
    method: ``"hume"`` or ``"turtle"`` (TURTLE's official settings; ``preset`` is then unused).
    progress: show progress bars.
    class_sizes: the class sizes the labeling is drawn towards (``k`` counts or shares, any order;
      ``"k-means"`` with ``"auto"``: label-free, ``hume_jax.search.sizes.run_priors``); None: equal sizes.

  Attributes (after ``fit``):
    labels_: ``[n]`` labels of the training samples.
    cv_score_: the label-free CV score of ``labels_`` (10-fold logistic regression on phi2).
    result_: what was trained (``AutoResult``, ``TrainState`` or ``TurtleState``).
  """

  def __init__(
    self,
    k: int = 10,
    preset: str = "auto",
    budget: float = DEFAULT_BUDGET,
    num_iters: int | None = None,
    seed: int = 42,
    method: str = "hume",
    progress: bool = False,
    class_sizes=None,
  ):
    self.k, self.preset, self.budget, self.num_iters = k, preset, budget, num_iters
    self.seed, self.method, self.progress, self.class_sizes = seed, method, progress, class_sizes

  def _config(self):
    if self.method == "turtle":
      config = TurtleConfig(k=self.k, seed=self.seed)
    elif self.method == "hume":
      if self.preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {self.preset!r}")
      config = dataclasses.replace(PRESETS[self.preset], k=self.k, seed=self.seed)
    else:
      raise ValueError(f"method: expected 'hume' or 'turtle', got {self.method!r}")
    if self.class_sizes is not None and not (self.preset == "auto" and self.method == "hume"):
      if isinstance(self.class_sizes, str):
        raise ValueError('class_sizes: "k-means" applies to preset "auto"; give the sizes otherwise')
      config = dataclasses.replace(config, prior=as_prior(self.class_sizes, self.k))
    return config if self.num_iters is None else dataclasses.replace(config, num_iters=self.num_iters)

  def fit(self, phi1: np.ndarray, phi2: np.ndarray, y=None) -> "HUME":
    """Trains on ``phi1 [n, d1]`` and ``phi2 [n, d2]`` (``y`` is ignored: HUME uses no labels)."""
    config = self._config()
    phi1, phi2 = np.asarray(phi1, np.float32), np.asarray(phi2, np.float32)
    if self.method == "turtle":
      self.result_ = fit_turtle([phi1, phi2], config, progress=self.progress)[0]
    elif self.preset == "auto":
      self.result_ = fit_auto(
        phi1,
        phi2,
        self.k,
        budget_seconds=self.budget,
        seed=self.seed,
        config=config,
        num_iters=self.num_iters,
        progress=self.progress,
        say=lambda s: None,
        prior=self.class_sizes,
      )
    else:
      self.result_ = fit(l2_normalize(phi1, "phi1"), phi2, config, progress=self.progress)[0]
    self.labels_ = self.predict(phi1, phi2)
    self.cv_score_ = hm.cv_score(phi2, self.labels_)
    return self

  def predict(self, phi1: np.ndarray, phi2: np.ndarray | None = None) -> np.ndarray:
    """Labels ``[m]`` of new samples (``phi2`` needed by ``"auto"``, whose labels are a vote of
    runs reading either space, and by TURTLE)."""
    if not hasattr(self, "result_"):
      raise ValueError("HUME: call fit before predict")
    two = self.method == "turtle" or self.preset == "auto"
    if two and phi2 is None:
      raise ValueError(
        f"phi2: this model ({'TURTLE' if self.method == 'turtle' else 'preset auto'}) labels "
        "samples from both spaces; call predict(phi1, phi2)"
      )
    phi1 = np.asarray(phi1, np.float32)
    if self.method == "turtle":
      return predict_turtle(self.result_.encoder, [phi1, np.asarray(phi2, np.float32)])
    if self.preset == "auto":
      return vote_labels(self.result_, phi1, np.asarray(phi2, np.float32))
    return predict(self.result_.encoder, l2_normalize(phi1, "phi1"))

  def fit_predict(self, phi1: np.ndarray, phi2: np.ndarray, y=None) -> np.ndarray:
    """``fit(phi1, phi2).labels_``."""
    return self.fit(phi1, phi2).labels_
