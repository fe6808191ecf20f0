"""hume_jax: HUME (Gadetsky & Brbic, NeurIPS 2023) in JAX.

Unsupervised classification that recovers a human-like labeling of a dataset from two
pretrained representations ``phi1`` and ``phi2``, with no labels.

    import hume_jax as hj
    labels = hj.HUME(k=10).fit_predict(phi1, phi2)          # the default on raw features
    state, log = hj.fit(phi1_unit, phi2, hj.OFFICIAL)         # the paper's settings
    run = hj.train_seeds(hj.HUME_METHOD, hj.OFFICIAL, list(range(42, 142)), train, val)  # 100 seeds + vote

Every protocol of ``python -m hume_jax.train`` is here: one run (``fit``, ``train_one``), the
official seeds protocol (``fit_seeds``, ``best_and_vote``, ``train_seeds``), the choice of K
(``select_k``), the default for a user's own features (``fit_auto``, ``train_auto``) and TURTLE
(``fit_turtle``); each takes one ``Hooks`` (how it is watched, steered and kept), and HUME's runs an
``Execution`` (how their steps are scheduled, never what they compute). The paper's pieces (Eq. 3, 5,
7) are pure functions, re-exported below.
"""

from hume_jax.config import (
  AUTO,
  CPU,
  IMAGENET,
  OFFICIAL,
  PRESETS,
  HumeConfig,
  TurtleConfig,
  check_config,
  check_turtle_config,
)
from hume_jax.core._inner import Linear, cross_entropy_grad, init_linear, inner_sgd, soft_cross_entropy
from hume_jax.core._objective import SubsetStats, draw_subsets, entropy, hume_loss, init_inner, subset_loss
from hume_jax.core._outer import StepMetrics, TrainState, anneal_factor, init_state, make_optimizer, outer_step
from hume_jax.core._plan import Execution
from hume_jax.core._sparsemax import sparsemax
from hume_jax.core._task_encoder import TaskEncoder, encoder_matrix, init_task_encoder, task_labels, task_logits
from hume_jax.estimator import HUME
from hume_jax.evaluation.metrics import cv_kappa, cv_score, evaluate, hungarian_accuracy, separability
from hume_jax.runs import HUME_METHOD, TURTLE_METHOD, Method, Run, summarize, train_auto, train_one, train_seeds
from hume_jax.search.auto import AutoResult, fit_auto, vote_labels
from hume_jax.training._fit import fit, outer_step_jit, predict
from hume_jax.training._loop import Stopped
from hume_jax.training.ensemble import (
  KSelection,
  SeedProtocol,
  best_and_vote,
  fit_seeds,
  majority_vote,
  predict_seeds,
  select_k,
)
from hume_jax.training.hooks import Hooks
from hume_jax.training.turtle import TurtleState, fit_turtle, predict_turtle

# fmt: off
__all__ = [
  "AUTO", "CPU", "HUME", "HUME_METHOD", "IMAGENET", "OFFICIAL", "PRESETS", "TURTLE_METHOD", "AutoResult", "Execution",
  "Hooks", "HumeConfig", "KSelection", "Linear", "Method", "Run", "SeedProtocol", "StepMetrics", "Stopped",
  "SubsetStats", "TaskEncoder", "TrainState", "TurtleConfig", "TurtleState", "anneal_factor", "best_and_vote",
  "check_config", "check_turtle_config", "cross_entropy_grad", "cv_kappa", "cv_score", "draw_subsets", "encoder_matrix",
  "entropy", "evaluate", "fit", "fit_auto", "fit_seeds", "fit_turtle", "hume_loss", "hungarian_accuracy", "init_inner",
  "init_linear", "init_state", "init_task_encoder", "inner_sgd", "majority_vote", "make_optimizer", "outer_step",
  "outer_step_jit", "predict", "predict_seeds", "predict_turtle", "select_k", "separability", "soft_cross_entropy",
  "sparsemax", "subset_loss", "summarize", "task_labels", "task_logits", "train_auto", "train_one", "train_seeds",
  "vote_labels",
]
# fmt: on
