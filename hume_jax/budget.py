"""Time budgets: the measured cost of a step, the iterations that fit, and re-planning
against the clock while a search runs (``hume_jax.auto``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from hume_jax.config import AUTO, HumeConfig

MIN_ITERS = 60


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


def time_step(phi1: np.ndarray, phi2: np.ndarray, config: HumeConfig, repeats: int = 3) -> tuple[float, float]:
  """``(compile seconds, seconds per outer iteration)`` of ``config`` on these shapes, measured."""
  import jax

  from hume_jax._fit import outer_step_jit
  from hume_jax._outer import init_state

  state = init_state(jax.random.PRNGKey(0), config, phi1.shape[1], phi2.shape[1])
  x1, x2 = jax.numpy.asarray(phi1), jax.numpy.asarray(phi2)
  t0 = time.perf_counter()
  state, m = outer_step_jit(state, x1, x2, config=config)
  jax.block_until_ready(m.loss)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(repeats):
    state, m = outer_step_jit(state, x1, x2, config=config)
  jax.block_until_ready(m.loss)
  return compile_s, (time.perf_counter() - t0) / repeats


class Clock:
  """The time budget of one search: ``left()`` seconds until its end (None: no budget)."""

  def __init__(self, seconds: float | None):
    self.end = None if seconds is None else time.perf_counter() + seconds

  def left(self) -> float:
    return float("inf") if self.end is None else self.end - time.perf_counter()


def replan(
  plan: dict, clock: Clock, runs_left: int, step_s: float, say, keep: int = 1, done: int = 0
) -> tuple[int, float | None, int]:
  """Before a run, against the clock: ``(iterations, deadline of this run, runs that fit)``.

  The runs left share the time left, each run's criterion, the vote's (none when a single run is
  all there will be: nothing is chosen) and the refinement's (``plan["refine_criteria"]``
  criteria) kept aside; a run that no longer fits its planned
  iterations gets fewer, and when not even ``MIN_ITERS`` fit, later runs are dropped (never below
  ``keep``; ``done`` runs are finished already). Each cut is logged and recorded in
  ``plan["cuts"]``. Without a budget nothing changes.
  """
  if clock.end is None:
    return plan["num_iters"], None, runs_left
  judged = lambda fits: plan["criterion_seconds"] if done + fits > 1 else 0.0
  closing = lambda fits: judged(fits) + plan["criterion_seconds"] * plan.get("refine_criteria", 0)
  share = lambda fits: (clock.left() - closing(fits)) / fits - judged(fits)
  fits = runs_left
  while fits > max(1, keep) and share(fits) / step_s < MIN_ITERS:
    fits -= 1
  iters = plan["num_iters"]
  if iters * step_s > share(fits):
    iters = max(MIN_ITERS, int(share(fits) / step_s))
    if iters < plan["num_iters"]:
      note = f"behind the budget: {iters} iterations instead of {plan['num_iters']} for the runs left"
      plan["cuts"].append(note)
      say("auto: " + note)
      plan["num_iters"] = iters
  if fits < runs_left:
    note = f"behind the budget: {runs_left - fits} of the {runs_left} runs left dropped"
    plan["cuts"].append(note)
    say("auto: " + note)
  return iters, time.perf_counter() + max(share(fits), 0.0), fits
