"""What is solved: HUME's and TURTLE's hyperparameters, the official defaults, named presets,
and the checks that reject a configuration before any compute.

``OFFICIAL`` is the official code's ``argparser.py`` (used for STL-10, CIFAR-10 and
CIFAR-100-20); ``IMAGENET`` the official README's ImageNet-1000 settings; ``CPU`` the
smaller preset of the default Fashion-MNIST run, chosen by the label-free CV score
(``benchmarks/cpu_preset.py``); ``AUTO`` the default for a user's own representations, run
by ``hume_jax.search.auto`` on conditioned inputs within a time budget. ``TurtleConfig`` holds
TURTLE's official defaults (``run_turtle.py``).

Each config keeps its official code's names: ``HumeConfig.gamma`` is HUME's annealing factor
(``MultiStepLR``'s gamma), ``TurtleConfig.gamma`` TURTLE's entropy weight (its ``--gamma``).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np


def _freeze_prior(config) -> None:
  """A prior given as a list or array is kept as a tuple of floats: a config is a static
  argument of the jitted step, hashed and compared (the values themselves: ``check_prior``)."""
  if config.prior is not None and not isinstance(config.prior, tuple):
    try:
      object.__setattr__(config, "prior", tuple(float(x) for x in np.ravel(np.asarray(config.prior, np.float64))))
    except (TypeError, ValueError):
      pass  # check_prior says what is wrong


@dataclasses.dataclass(frozen=True)
class HumeConfig:
  """Everything that defines a HUME run.

  Attributes:
    k: number of classes of the labeling.
    inner_lr: learning rate of the inner SGD (Eq. 5).
    outer_lr: Adam learning rate of the task encoder.
    tau: temperature of the task encoder's sparsemax (Eq. 3).
    H_reg: weight of the entropy of the mean labeling (Eq. 7).
    num_iters: outer iterations.
    adaptation_steps: ``T``, inner SGD steps, unrolled.
    num_subsets: ``S``, (train, test) subsets averaged per outer iteration.
    subset_size: rows per subset (clipped to the number of samples).
    train_fraction: share of each subset used to fit the inner classifier.
    anneal: multiply the outer learning rate and ``tau`` by ``gamma`` at each milestone.
    milestones: outer iterations where annealing happens.
    gamma: annealing factor (the official ``MultiStepLR`` gamma, 0.1).
    rand_init: a fresh ``nn.Linear`` init per subset (cold start); otherwise one fixed
      init drawn once per run.
    clip_norm: global-norm clipping of the task encoder's gradient.
    seed: seed of the run.
    prior: class sizes the labeling is drawn towards, as shares of the samples: ``k`` positive
      numbers, largest first, summing to 1 (``hume_jax.search.sizes.as_prior`` makes them from counts).
      The ``H_reg`` term becomes ``H(prior) - KL(sizes by rank || prior)``
      (``hume_jax.core._objective.size_term``). None: the paper's entropy, which favours equal sizes and
      equals the uniform prior's term.
  """

  k: int = 10
  inner_lr: float = 1e-3
  outer_lr: float = 1e-3
  tau: float = 0.1
  H_reg: float = 10.0
  num_iters: int = 1000
  adaptation_steps: int = 300
  num_subsets: int = 20
  subset_size: int = 10000
  train_fraction: float = 0.9
  anneal: bool = True
  milestones: tuple[int, ...] = (100, 200)
  gamma: float = 0.1
  rand_init: bool = True
  clip_norm: float = 1.0
  seed: int = 42
  prior: tuple[float, ...] | None = None

  def __post_init__(self):
    _freeze_prior(self)

  def subset_sizes(self, n: int) -> tuple[int, int]:
    """``(m, n_train)``: rows per subset for ``n`` samples and its inner training part."""
    m = min(n, self.subset_size)
    return m, int(m * self.train_fraction)


def _run_fields_traced(cls):
  """Registers the config ``cls`` as a pytree whose ``seed`` and ``num_iters`` are data and every other
  field static (``jax.tree_util.register_dataclass``). The two say which run and how long, not what one
  step computes: ``jax.jit`` traces them (the steps never read them) and keys its compiled programs on the
  other fields, so runs that differ only in seed or length share one compiled step (``fit_auto``'s runs,
  seeds run one after another, the command line's repeated fits)."""
  run = ("seed", "num_iters")
  meta = [f.name for f in dataclasses.fields(cls) if f.name not in run]
  return jax.tree_util.register_dataclass(cls, data_fields=list(run), meta_fields=meta)


_run_fields_traced(HumeConfig)

OFFICIAL = HumeConfig()

IMAGENET = dataclasses.replace(
  OFFICIAL,
  k=1000,
  outer_lr=0.1,
  inner_lr=0.1,
  adaptation_steps=100,
  subset_size=20000,
  train_fraction=0.7,
  anneal=False,
  rand_init=False,
)

# Chosen among 11 candidates by the CV score on the default data (benchmarks/README.md):
# 8 subsets of 2000 rows, 50 inner steps at 6e-3 (the official lr x steps budget is 0.3),
# outer lr 1e-2, 300 iterations (the official schedule anneals at 100 and 200).
CPU = dataclasses.replace(
  OFFICIAL, num_subsets=8, subset_size=2000, adaptation_steps=50, inner_lr=6e-3, outer_lr=1e-2, num_iters=300
)

# The default for a user's own representations (hume_jax.search.auto): the CPU preset's subsets and
# steps on conditioned inputs, phi2 scaled to unit top eigenvalue so that inner_lr 0.9 is 0.9 of
# 1 / lambda_max (under the stable limit 2 / lambda_max), whatever the features' scale.
# num_iters is cut to fit the time budget.
AUTO = dataclasses.replace(CPU, inner_lr=0.9)

PRESETS = {"official": OFFICIAL, "imagenet": IMAGENET, "cpu": CPU, "auto": AUTO}


@dataclasses.dataclass(frozen=True)
class TurtleConfig:
  """TURTLE's hyperparameters with the official defaults (``run_turtle.py``).

  Attributes:
    k: number of classes.
    inner_lr: Adam learning rate of the per-space inner classifiers.
    outer_lr: Adam learning rate of the per-space heads.
    inner_steps: inner Adam steps per outer iteration.
    num_iters: outer iterations.
    batch_size: samples per iteration (both loops).
    gamma: weight of the entropy of each space's mean labeling (TURTLE's ``--gamma``).
    warm_start: keep the inner classifiers and their Adam state across iterations.
    seed: seed of the run.
    prior: class-size prior as ``HumeConfig.prior``: the ``gamma`` term of each space becomes
      ``H(prior) - KL(sizes by rank || prior)``; None: TURTLE's entropy.
  """

  k: int = 10
  inner_lr: float = 1e-3
  outer_lr: float = 1e-3
  inner_steps: int = 10
  num_iters: int = 6000
  batch_size: int = 10000
  gamma: float = 10.0
  warm_start: bool = False
  seed: int = 42
  prior: tuple[float, ...] | None = None

  def __post_init__(self):
    _freeze_prior(self)


_run_fields_traced(TurtleConfig)


def _require(config, positive: tuple[str, ...], non_negative: tuple[str, ...]) -> None:
  for name in positive:
    if not getattr(config, name) > 0:
      raise ValueError(f"{name}: expected a positive value, got {getattr(config, name)}")
  for name in non_negative:
    if getattr(config, name) < 0:
      raise ValueError(f"{name}: expected a value >= 0, got {getattr(config, name)}")


def check_config(config: HumeConfig, n: int, d1: int) -> None:
  """Rejects HUME hyperparameters that cannot define a run on ``n`` samples of ``d1``
  dimensions in ``phi1``, before any compute; messages name the parameter."""
  if config.k < 2:
    raise ValueError(f"k: expected at least 2 classes, got {config.k}")
  if config.k > n:
    raise ValueError(f"k: expected at most the number of samples ({n}), got {config.k}")
  if config.k > d1:
    raise ValueError(f"k: the task encoder has orthonormal rows, so k must be <= d1 = {d1}; got {config.k}")
  if not 0 < config.train_fraction < 1:
    raise ValueError(f"train_fraction: expected a value in (0, 1), got {config.train_fraction}")
  _require(
    config, ("inner_lr", "outer_lr", "tau", "num_iters", "adaptation_steps", "num_subsets", "subset_size"), ("H_reg",)
  )
  check_prior(config.prior, config.k)
  m, n_train = config.subset_sizes(n)
  if n_train < 1 or n_train >= m:
    raise ValueError(
      f"train_fraction {config.train_fraction} of a subset of {m} rows leaves "
      f"{n_train} for inner training and {m - n_train} held out; both must be >= 1"
    )


def check_prior(prior, k: int, name: str = "prior") -> None:
  """Rejects a class-size prior that is not ``k`` positive finite shares, sorted largest first,
  summing to 1 (``hume_jax.search.sizes.as_prior`` makes one from any sizes)."""
  if prior is None:
    return
  p = np.asarray(prior, dtype=np.float64)
  if p.shape != (k,):
    raise ValueError(f"{name}: expected {k} class sizes (one per class, k = {k}), got shape {p.shape}")
  if not (np.all(np.isfinite(p)) and np.all(p > 0)):
    raise ValueError(f"{name}: expected positive finite class sizes, got {p.tolist()}")
  if abs(p.sum() - 1) > 1e-6 or np.any(np.diff(p) > 0):
    raise ValueError(
      f"{name}: expected shares sorted largest first that sum to 1 (hume_jax.search.sizes.as_prior), got {p.tolist()}"
    )


def check_turtle_config(config: TurtleConfig, n: int) -> None:
  """Rejects TURTLE hyperparameters that cannot define a run on ``n`` samples, before any compute."""
  if not 2 <= config.k <= n:
    raise ValueError(f"k: expected 2 <= k <= n = {n}, got {config.k}")
  _require(config, ("inner_lr", "outer_lr", "inner_steps", "num_iters", "batch_size"), ("gamma",))
  check_prior(config.prior, config.k)
