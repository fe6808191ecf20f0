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
import functools
from typing import Callable, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from hume_jax.config import PRESETS, TurtleConfig
from hume_jax.evaluation import metrics as hm
from hume_jax.io.data import l2_normalize
from hume_jax.search.auto import fit_auto, vote_labels
from hume_jax.search.budget import DEFAULT_BUDGET
from hume_jax.search.sizes import as_prior
from hume_jax.training.hooks import Hooks
from hume_jax.training.methods import METHODS


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

  def _protocol(self) -> str:
    """The key of ``PROTOCOLS`` this model's ``method`` and ``preset`` name."""
    return "turtle" if self.method == "turtle" else ("auto" if self.preset == "auto" else "hume")

  def fit(self, phi1: np.ndarray, phi2: np.ndarray, y=None) -> "HUME":
    """Trains on ``phi1 [n, d1]`` and ``phi2 [n, d2]`` (``y`` is ignored: HUME uses no labels)."""
    config = self._config()
    protocol = PROTOCOLS[self._protocol()]
    self.result_ = protocol.fit(self, config, protocol.split(phi1, phi2))
    self.labels_ = self.predict(phi1, phi2)
    self.cv_score_ = hm.cv_score(phi2, self.labels_)
    return self

  def predict(self, phi1: np.ndarray, phi2: np.ndarray | None = None) -> np.ndarray:
    """Labels ``[m]`` of new samples (``phi2`` needed by ``"auto"``, whose labels are a vote of
    runs reading either space, and by TURTLE)."""
    if not hasattr(self, "result_"):
      raise ValueError("HUME: call fit before predict")
    protocol = PROTOCOLS[self._protocol()]
    if protocol.two_spaces and phi2 is None:
      raise ValueError(
        f"phi2: this model ({'TURTLE' if self.method == 'turtle' else 'preset auto'}) labels "
        "samples from both spaces; call predict(phi1, phi2)"
      )
    return protocol.label(self.result_, protocol.split(phi1, phi2))

  def fit_predict(self, phi1: np.ndarray, phi2: np.ndarray, y=None) -> np.ndarray:
    """``fit(phi1, phi2).labels_``."""
    return self.fit(phi1, phi2).labels_


def _split(phi1, phi2, normalize: bool = False) -> dict:
  """A split of ``hume_jax.runs`` (float32; ``phi1`` L2-normalised for an explicit HUME preset)."""
  phi1 = np.asarray(phi1, np.float32)
  return {
    "phi1": l2_normalize(phi1, "phi1") if normalize else phi1,
    "phi2": None if phi2 is None else np.asarray(phi2, np.float32),
    "labels": None,
  }


def _fit_auto(model: HUME, config, split: dict):
  return fit_auto(
    split["phi1"],
    split["phi2"],
    model.k,
    budget_seconds=model.budget,
    seed=model.seed,
    config=config,
    num_iters=model.num_iters,
    progress=model.progress,
    say=lambda s: None,
    prior=model.class_sizes,
  )


class Protocol(NamedTuple):
  """How the estimator trains and labels with one method: ``fit(model, config, split) -> result``,
  ``label(result, split) -> [n]``, ``split(phi1, phi2)`` the split it reads, ``two_spaces`` whether labels
  read ``phi2`` too. HUME and TURTLE are the command line's ``Method`` values (``hume_jax.runs.METHODS``)."""

  fit: Callable
  label: Callable
  split: Callable
  two_spaces: bool


def _method(name: str, normalize: bool, two_spaces: bool) -> Protocol:
  method = METHODS[name]
  fit = lambda model, config, split: method.fit(config, split, None, Hooks(progress=model.progress))
  return Protocol(fit, method.label, functools.partial(_split, normalize=normalize), two_spaces)


PROTOCOLS = {
  "hume": _method("hume", normalize=True, two_spaces=False),
  "turtle": _method("turtle", normalize=False, two_spaces=True),
  "auto": Protocol(_fit_auto, lambda res, split: vote_labels(res, split["phi1"], split["phi2"]), _split, True),
}
