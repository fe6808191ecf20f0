"""hume_jax: HUME (Gadetsky & Brbic, NeurIPS 2023) in JAX.

Unsupervised classification that recovers a human-like labeling of a dataset from two
pretrained representations ``phi1`` and ``phi2``, with no labels.
"""

from hume_jax._inner import Linear, cross_entropy_grad, init_linear, inner_sgd, soft_cross_entropy
from hume_jax._objective import SubsetStats, draw_subsets, entropy, hume_loss, init_inner, subset_loss
from hume_jax._outer import StepMetrics, TrainState, anneal_factor, init_state, make_optimizer, outer_step
from hume_jax._sparsemax import sparsemax
from hume_jax._task_encoder import (TaskEncoder, encoder_matrix, householder_product, init_task_encoder,
                                    task_labels, task_logits)
from hume_jax.config import CPU, IMAGENET, OFFICIAL, PRESETS, HumeConfig
from hume_jax._fit import fit, predict
from hume_jax.metrics import cv_score, evaluate, hungarian_accuracy

__all__ = [
    "CPU", "IMAGENET", "OFFICIAL", "PRESETS", "HumeConfig", "Linear", "StepMetrics", "SubsetStats",
    "TaskEncoder", "TrainState", "anneal_factor", "cross_entropy_grad", "cv_score", "draw_subsets",
    "encoder_matrix", "entropy", "evaluate", "fit", "householder_product", "hume_loss",
    "hungarian_accuracy", "init_inner", "init_linear", "init_state", "init_task_encoder",
    "inner_sgd", "make_optimizer", "outer_step", "predict", "soft_cross_entropy", "sparsemax",
    "subset_loss", "task_labels", "task_logits",
]
