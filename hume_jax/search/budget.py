"""Time budgets: a fixed cost model of every stage of a search, the iterations that fit, and a
guard against the clock while a search runs (``hume_jax.search.auto``).

The plan is sized from the data's shapes (n, d, k), the configuration and the budget through
``COSTS``, never from the clock: the same command plans the same runs on any machine of a
platform, whatever its load, so it gives the same labels. The clock only guards: a search whose
machine is slower than the model is cut when the clock passes ``GUARD`` times its budget, and
says so (``replan``). ``benchmarks/README.md`` ("Cost model") compares the model with measured
seconds.
"""

from __future__ import annotations

import dataclasses
import time

from hume_jax.config import AUTO, HumeConfig
from hume_jax.core._shuffle import sorted_rows
from hume_jax.evaluation.sampling import ROWS

MIN_ITERS = 60
DEFAULT_BUDGET = 600.0  # seconds of a --preset auto search: the default of the CLI, the estimator and fit_auto
K_AUTO_BUDGET = 1800.0  # --k auto under --preset auto: the search over K and the chosen K's full search
K_AUTO_SHARE = 2 / 3  # of that budget, the search over K's (select_k_auto's default); the chosen K's has the rest
GUARD = 2.0  # the clock cuts a search only past this multiple of its budget (a machine slower than the model)

# The cost of each stage per platform, measured (benchmarks/README.md, "Cost model"): work units per second
# on the reference CPU (2 x86-64 cores, float32) and on a GPU (an H200), and for the step a fixed cost per
# inner step (what small problems pay whatever their size) and per row each subset's draw sorts:
# - "step": one outer iteration, S subsets x k classes x (T inner steps x n_tr rows x (d2 + 16) + m rows x d1),
#   plus S x T x the per-inner-step cost, plus S x the rows sorted (n, or 4 m past 65,535 rows: _shuffle.sorted_rows)
#   x the per-row cost;
# - "criterion": one separability (2 spaces x 5 folds of logistic regression, 100 L-BFGS iterations over
#   rows x k x 64 dimensions): scikit-learn on a CPU, hume_jax.evaluation.logistic on an accelerator;
# - "kmeans": spherical k-means of one space (10 starts x about 50 Lloyd iterations over rows x k x d);
# - "conditioning": the PCA of both spaces (conditioning._principal_axes and one projection): n x d x (min(n, d) + r)
#   per space at the first rate (its reads, moments and projection), min(n, d)^3 at the second (the eigenproblem);
#   up to sampling.ROWS rows the host's SVD instead, SVD_COST times the CPU's covariance route;
# - "compile": seconds to compile one step.
COSTS = {
  "step": {"cpu": (6e9, 5e-6, 8e-7), "gpu": (7e12, 2.5e-5, 1e-9)},
  "criterion": {"cpu": 1e9, "gpu": 1e11},
  "kmeans": {"cpu": 2.5e9, "gpu": 2.5e11},
  "conditioning": {"cpu": (2.5e10, 1e10), "gpu": (3.5e11, 1e10)},
  "compile": {"cpu": 8.0, "gpu": 10.0},
}
SVD_COST = 4.0  # the SVD of up to ROWS centred rows against the covariance route (3.9x at 10,000 x 1024 + 1280)

# What a run computes after its search on the same budget (the command line's): the CV score (10-fold logistic
# regression on phi2) and the premise check (its PCA, two k-means and three criteria, every core), seconds at ROWS
# rows, fixed + per class + per dimension of phi2 (scikit-learn's regressions on a CPU; JAX's on an accelerator);
# with labels, the baselines (k-means of each raw space and of both, a probe on each, scikit-learn on the host on
# every platform), fixed + per class and raw dimension + per raw dimension (d1 + d2). Each fits at most
# sampling.ROWS rows. An upper envelope of two-view mixtures (k = 10, 100, 200) and three quality sets, real features
# converging slower than a mixture's (benchmarks/results/cpu/closing_cost.log; the GPU's from the H200's scale table).
CLOSING = {"cpu": (3.0, 0.1, 0.014), "gpu": (4.5, 0.015, 0.0)}
BASELINES = (2.0, 3.3e-4, 0.031)


def _rate(stage: str, platform: str):
  """A stage's rate on ``platform`` (``jax.default_backend()``): a TPU or other accelerator as a GPU."""
  return COSTS[stage]["cpu" if platform == "cpu" else "gpu"]


def step_seconds(config: HumeConfig, n: int, d1: int, d2: int, platform: str = "cpu") -> float:
  """Modelled seconds of one outer iteration of ``config`` on ``n`` rows, ``phi1 [n, d1]``, ``phi2 [n, d2]``."""
  m, n_tr = config.subset_sizes(n)
  units = config.num_subsets * config.k * (config.adaptation_steps * n_tr * (d2 + 16) + m * d1)
  rate, per_inner_step, per_row = _rate("step", platform)
  drawn = sorted_rows(n, m)
  return units / rate + config.num_subsets * (config.adaptation_steps * per_inner_step + drawn * per_row)


def criterion_seconds(rows: int, k: int, dims: int = 64, platform: str = "cpu") -> float:
  """Modelled seconds of one criterion (``metrics.separability_per_space`` on two spaces) on ``rows`` rows."""
  return 2 * 5 * 100 * (rows * 4 // 5) * k * dims / _rate("criterion", platform)


def kmeans_seconds(rows: int, d: int, k: int, platform: str = "cpu") -> float:
  """Modelled seconds of spherical k-means (``conditioning.spherical_kmeans``) of one space."""
  return 10 * 50 * rows * k * d / _rate("kmeans", platform)


def conditioning_seconds(n: int, dims: tuple[int, ...], kept: int, platform: str = "cpu") -> float:
  """Modelled seconds of conditioning spaces of ``dims`` dimensions on ``n`` rows, ``kept`` components each
  (``conditioning.condition_spaces``): their reads, moments, eigenproblems and one projection."""
  small = n <= ROWS  # on the host by the SVD of the centred rows (conditioning._principal_axes)
  rate, eigen_rate = _rate("conditioning", "cpu" if small else platform)
  seconds = sum(n * d * (min(n, d) + min(kept, d)) / rate + min(n, d) ** 3 / eigen_rate for d in dims)
  return seconds * (SVD_COST if small else 1.0)


def closing_seconds(n: int, k: int, platform: str = "cpu", d2: int = 0, baseline_dims: int = 0) -> float:
  """Modelled seconds of the stages after a search on ``n`` rows, ``k`` classes and a ``phi2`` of ``d2``
  dimensions (``CLOSING``), with the baselines on raw spaces of ``baseline_dims`` = d1 + d2 dimensions
  (``BASELINES``; 0: no baselines), in proportion to the rows their fits read."""
  fixed, per_class, per_dim = CLOSING["cpu" if platform == "cpu" else "gpu"]
  seconds = fixed + per_class * k + per_dim * d2
  if baseline_dims:
    seconds += BASELINES[0] + BASELINES[1] * k * baseline_dims + BASELINES[2] * baseline_dims
  return seconds * min(n, ROWS) / ROWS


def plan_iterations(
  step_seconds: float, budget_seconds: float, runs: int, config: HumeConfig = AUTO, fixed_seconds: float = 0.0
) -> int:
  """Outer iterations per run that fit ``runs`` runs, each costing ``fixed_seconds`` besides its
  iterations, in ``budget_seconds``: the preset's ``num_iters`` when they fit, fewer (at least
  ``MIN_ITERS``) otherwise."""
  affordable = int((budget_seconds / max(runs, 1) - fixed_seconds) / max(step_seconds, 1e-9))
  return int(max(MIN_ITERS, min(config.num_iters, affordable)))


def scaled_config(config: HumeConfig, num_iters: int) -> HumeConfig:
  """``config`` with ``num_iters`` and the annealing milestones at the same fractions of it."""
  frac = [m / config.num_iters for m in config.milestones]
  return dataclasses.replace(
    config, num_iters=num_iters, milestones=tuple(max(1, int(round(f * num_iters))) for f in frac)
  )


class Clock:
  """The time budget of one search: ``left()`` seconds until its end (None: no budget)."""

  def __init__(self, seconds: float | None):
    self.end = None if seconds is None else time.perf_counter() + seconds

  def left(self) -> float:
    return float("inf") if self.end is None else self.end - time.perf_counter()


def replan(
  plan: dict, clock: Clock, runs_left: int, step_s: float, say, keep: int = 1, done: int = 0
) -> tuple[dict, int, float | None, int]:
  """Before a run, against the clock: ``(plan, iterations, deadline of this run, runs that fit)``.

  The runs left share the time left, each run's criterion, the vote's (none when a single run is
  all there will be: nothing is chosen) and the refinement's (``plan["refine_criteria"]``
  criteria) kept aside; a run that no longer fits its planned
  iterations gets fewer, and when not even ``MIN_ITERS`` fit, later runs are dropped (never below
  ``keep``; ``done`` runs are finished already). Each cut is logged and recorded in the ``"cuts"``
  of the plan returned (a new dict; ``plan`` is left as it was). Without a budget nothing changes.
  """
  if clock.end is None:
    return plan, plan["num_iters"], None, runs_left
  judged = lambda fits: plan["criterion_seconds"] if done + fits > 1 else 0.0
  closing = lambda fits: judged(fits) + plan["criterion_seconds"] * plan.get("refine_criteria", 0)
  share = lambda fits: (clock.left() - closing(fits)) / fits - judged(fits)
  fits = runs_left
  while fits > max(1, keep) and share(fits) / step_s < MIN_ITERS:
    fits -= 1
  iters, cuts = plan["num_iters"], []
  if iters * step_s > share(fits):
    iters = max(MIN_ITERS, int(share(fits) / step_s))
    if iters < plan["num_iters"]:
      cuts.append(f"behind the budget: {iters} iterations instead of {plan['num_iters']} for the runs left")
  if fits < runs_left:
    cuts.append(f"behind the budget: {runs_left - fits} of the {runs_left} runs left dropped")
  for note in cuts:
    say("auto: " + note)
  planned = min(iters, plan["num_iters"])
  plan = {**plan, "num_iters": planned, "cuts": plan["cuts"] + cuts}
  return plan, iters, time.perf_counter() + max(share(fits), 0.0), fits


def plan_search(
  config: HumeConfig,
  n: int,
  shapes: list[tuple[int, int]],
  kmeans_dims: list[int],
  budget_seconds: float,
  *,
  num_iters: int | None = None,
  refine_criteria: int = 0,
  min_runs: int = 1,
  platform: str = "cpu",
  conditioning_s: float = 0.0,
) -> dict:
  """The plan of a search from the cost model alone (no clock): the runs (``shapes``: ``(d1, d2)``
  of each, in the order a budget drops them from the end), their iterations and whether the
  refinement (``refine_criteria`` criteria) is kept, on ``n`` rows.

  The preset's ``num_iters`` for every run when the whole search fits ``budget_seconds``; else the
  refinement goes first, then runs (never below ``min_runs``), then iterations (never below
  ``MIN_ITERS``). Each cut is a note in ``plan["cuts"]`` that names the budget the whole search
  needs. ``num_iters`` given: no budget applies. ``conditioning_s``: seconds the search spends conditioning its
  spaces on the budget's clock (``conditioning_seconds``; 0 when they come conditioned).
  """
  rows = min(n, ROWS)
  step_s = max(step_seconds(config, n, d1, d2, platform) for d1, d2 in shapes)
  sep_s = criterion_seconds(rows, config.k, platform=platform)
  fixed = sum(kmeans_seconds(rows, d, config.k, platform) for d in kmeans_dims)
  fixed += _rate("compile", platform) * len(set(shapes)) + conditioning_s
  judged = lambda runs: sep_s if runs > 1 else 0.0  # a single run is not judged, nor voted
  cost = lambda runs, iters, refine: fixed + runs * (iters * step_s + judged(runs)) + judged(runs) + sep_s * refine
  runs, refine, iters, cuts = len(shapes), refine_criteria, num_iters or config.num_iters, []
  needed = cost(runs, iters, refine)
  if not num_iters and needed > budget_seconds:
    if refine and cost(runs, MIN_ITERS, refine) > budget_seconds:
      refine = 0
    while runs > max(1, min_runs) and cost(runs, MIN_ITERS, refine) > budget_seconds:
      runs -= 1
    spare = budget_seconds - cost(runs, 0, refine)
    iters = int(max(MIN_ITERS, min(config.num_iters, spare / max(runs * step_s, 1e-9))))
    what = [f"{runs} of {len(shapes)} runs"] * (runs < len(shapes)) + [f"{iters} of {config.num_iters} iterations"] * (
      iters < config.num_iters
    )
    what += ["no refinement"] * (refine < refine_criteria)
    cuts.append(
      f"the budget of {budget_seconds:.0f} s is too small for the whole search (about {needed:.0f} s by the cost "
      f"model): planned {', '.join(what)}; --budget {needed:.0f} runs it all"
    )
  return dict(
    budget_seconds=budget_seconds,
    step_seconds=step_s,
    criterion_seconds=sep_s,
    fixed_seconds=fixed,
    conditioning_seconds=conditioning_s,
    num_iters=iters,
    runs=runs,
    refine_criteria=refine,
    estimate_seconds=cost(runs, iters, refine),
    needed_seconds=needed,
    cuts=cuts,
  )
