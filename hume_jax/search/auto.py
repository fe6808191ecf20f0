"""The default for a user's own representations: label-free conditioning, starts, order of the
spaces and a time budget, each recorded.

Both spaces are conditioned (``hume_jax.search.conditioning``; why, there). Two starts of the task encoder are tried:
the official random orthogonal draw, and the orthonormalised centroids of spherical k-means on ``phi1``, from which
HUME refines a plausible labeling instead of searching from noise (package descriptions: ACC 0.55 from the random
start, 0.78 from k-means). The start and the space that is ``phi1`` are chosen by the label-free criterion
``separability``. The labels are the per-sample majority vote of all runs, each matched to the kept one (Hungarian
matching on the training rows; ties go to the kept run): runs from other spaces and starts err on other samples
(``benchmarks/LOG.md``: +0.2 to +2.7 ACC on four sets), although ``separability`` scores the vote lower than the kept
run, so the vote is not one more candidate. The vote is then refined in both spaces at once
(``hume_jax.search.refine``): each sample takes the class that logistic regressions of both spaces, fitted on the
current labels, find most probable.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import jax
import numpy as np

from hume_jax.config import AUTO, HumeConfig
from hume_jax.core._outer import init_state
from hume_jax.core._task_encoder import task_encoder_from
from hume_jax.evaluation.metrics import hungarian_map, separability, separability_per_space  # noqa: F401
from hume_jax.io.data import check_fit_inputs
from hume_jax.search.budget import (  # noqa: F401
  DEFAULT_BUDGET,
  GUARD,
  MIN_ITERS,
  Clock,
  conditioning_seconds,
  plan_iterations,
  plan_search,
  replan,
  scaled_config,
)
from hume_jax.search.conditioning import (  # noqa: F401
  MAX_DIM,
  Conditioning,
  Spaces,
  apply_conditioning,
  condition_spaces,
  condition_splits,
  fit_conditioning,
  kept_dims,
  kmeans_starts,
  spherical_kmeans,
)
from hume_jax.search.refine import CRITERIA, refine_search, refined_labels
from hume_jax.search.sizes import from_kmeans, run_priors
from hume_jax.training._fit import fit, predict
from hume_jax.training.ensemble import vote_matched, vote_runs
from hume_jax.training.hooks import Hooks, hooks_of

STARTS = ("k-means", "random")
STARTS_SAID = {"k-means": "spherical k-means centroids of phi1", "random": "the official random start"}


class Member(NamedTuple):
  """One run of the search, as needed to label new samples.

  Attributes:
    phi1: ``"a"`` or ``"b"``: the raw space this run's encoder reads.
    conditioning: ``Conditioning`` of that space as this run's ``phi1``.
    encoder: the run's final ``TaskEncoder``.
    to_reference: ``int [k]``: this run's class ids -> the kept run's (Hungarian matching on
      the training rows; the identity for the kept run).
  """

  phi1: str
  conditioning: Conditioning
  encoder: object
  to_reference: np.ndarray


class Candidate(NamedTuple):
  """One finished run of the search: its report ``entry`` (order, start, separability, class
  counts, iterations, seconds), its final ``TrainState`` and its labels of the training rows."""

  entry: dict
  state: object
  pred: np.ndarray


class AutoResult(NamedTuple):
  """What ``fit_auto`` chose and why.

  Attributes:
    state: final ``TrainState`` of the chosen run.
    order: ``("a", "b")`` when space a is phi1, ``("b", "a")`` when swapped.
    conditioning: ``{"phi1": Conditioning, "phi2": Conditioning}`` of the chosen run's spaces.
    config: the chosen run's ``HumeConfig``.
    candidates: one dict per candidate: order, start, separability, class counts, seconds.
    plan: the plan printed before training (step time, iterations, estimate) and what the
      clock cut while it ran (``plan["cuts"]``).
    members: every run (``Member``), the kept one at index ``reference``; ``vote_labels``
      labels samples with their vote.
    reference: index of the kept run in ``members``.
    vote: how the vote was used: its separability, class counts and whether it is the labeling
      (it is not when it leaves a class empty that the kept run fills).
    refiner: ``hume_jax.search.refine.Refiner`` that labels samples after the vote, or None (no
      refinement, or one that emptied a class).
    refinement: its report (rounds, samples relabelled, separability, whether used).
  """

  state: object
  order: tuple[str, str]
  conditioning: dict
  config: HumeConfig
  candidates: list[dict]
  plan: dict
  members: list
  reference: int
  vote: dict
  refiner: object = None
  refinement: dict = {}


def member_labels(members: list, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
  """Every run's labels of the samples ``phi_a [m, d_a]``, ``phi_b [m, d_b]`` (raw), in the
  kept run's numbering: ``int [N, m]``."""
  spaces = {"a": phi_a, "b": phi_b}
  return np.stack(
    [r.to_reference[predict(r.encoder, apply_conditioning(r.conditioning, spaces[r.phi1]))] for r in members]
  )


def vote_labels(result: AutoResult, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
  """The labels of ``fit_auto``: the classes its refiner (``hume_jax.search.refine``) finds most probable
  in both spaces; without one, the runs' majority vote (ties: the kept run), or the kept run's
  labels when the vote was found to leave a class empty on the training rows."""
  if result.refiner is not None:
    return refined_labels(result.refiner, phi_a, phi_b)
  preds = member_labels(result.members, phi_a, phi_b)
  if not result.vote["used"]:
    return preds[result.reference]
  return vote_matched(preds, result.reference, result.config.k)


class Resume(NamedTuple):
  """A search resumed: the runs finished before (by index, as given to ``Hooks.on_candidate(index,
  candidate)`` when each ends) and the seconds they took."""

  finished: dict = {}
  spent_seconds: float = 0.0


def _runs(spaces: Spaces, k: int, max_dim: int, say, starts=STARTS) -> list[tuple[tuple[str, str], str]]:
  """Every (order, start) candidate: each space with at least k dimensions as phi1, each start."""
  dims = {s: x.shape[1] for s, x in spaces.cond1.items()}
  orders = [(p1, p2) for p1, p2 in (("a", "b"), ("b", "a")) if dims[p1] >= k]
  if not orders:
    raise ValueError(
      f"phi_a, phi_b: expected at least one space with k = {k} or more dimensions to serve as phi1 "
      f"(HUME's task encoder has k orthonormal rows), found {dims['a']} and {dims['b']} (the principal "
      f"components kept: at most the space's own dimension, n = {len(spaces.cond1['a'])} and "
      f"max(k, {max_dim})); give a representation with at least {k} dimensions, or a smaller k"
    )
  for space in ("a", "b"):
    if dims[space] < k:
      say(f"auto: {space} has {dims[space]} dimensions, fewer than k = {k}: only as phi2")
  return [(o, s) for s in starts for o in orders]  # k-means starts first: a budget drops random starts first


def _plan(spaces: Spaces, runs, config: HumeConfig, num_iters, budget: float, say, refine, min_runs, raw, max_dim):
  """The runs, their iterations and the refinement that fit ``budget`` by the fixed cost model
  (``budget.plan_search``: the same plan on any machine, whatever its load), said before training;
  ``raw``: the raw spaces' dimensions when the search conditioned them on its clock (its cost is counted)."""
  shapes = [(spaces.cond1[o[0]].shape[1], spaces.cond2[o[1]].shape[1]) for o, _ in runs]
  kmeans_dims = [spaces.cond1[s].shape[1] for s in dict.fromkeys(o[0] for o, s0 in runs if s0 == "k-means")]
  n = len(spaces.cond1["a"])
  plan = plan_search(
    config,
    n,
    shapes,
    kmeans_dims,
    budget,
    num_iters=num_iters,
    refine_criteria=CRITERIA * refine,
    min_runs=min_runs,
    platform=jax.default_backend(),
    conditioning_s=conditioning_seconds(n, raw, spaces.cond1["a"].shape[1], jax.default_backend()),
  )
  dims = {s: int(c.components.shape[0]) for s, c in spaces.as_phi1.items()}
  explained = {s: c.explained for s, c in spaces.as_phi1.items()}
  plan = {**plan, "dims": dims, "explained_variance": explained}
  plan = {**plan, "budget_seconds": budget, "max_dim": max_dim, "min_runs": min_runs}
  say(
    f"auto: each space centred and reduced to its leading principal components (a: {dims['a']}, "
    f"{100 * explained['a']:.1f}% of the variance; b: {dims['b']}, {100 * explained['b']:.1f}%); phi1 "
    "L2-normalised, phi2 scaled to unit top eigenvalue"
  )
  m, _ = config.subset_sizes(n)
  orders = ", then ".join(o[0] + " as phi1" for o in dict.fromkeys(o for o, _ in runs[: plan["runs"]]))
  starts = ", then ".join(STARTS_SAID[s] for s in dict.fromkeys(s for _, s in runs[: plan["runs"]]))
  say(
    f"auto: {plan['runs']} run{'s' * (plan['runs'] > 1)} ({orders}; from {starts}); {plan['num_iters']} "
    f"iterations of S={config.num_subsets} x {m} rows, T={config.adaptation_steps}, "
    f"inner_lr={config.inner_lr} (x 1/lambda_max), outer_lr={config.outer_lr}; about {plan['estimate_seconds']:.0f} s "
    f"by the cost model ({plan['step_seconds']:.3f} s/iteration, {plan['criterion_seconds']:.1f} s per criterion)"
  )
  for note in plan["cuts"]:
    say("auto: " + note)
  return plan


def _run_candidate(
  spaces: Spaces, run, config: HumeConfig, kmeans: dict, deadline, hooks: Hooks, judged: bool = True
) -> Candidate:
  """One run of the search on the conditioned spaces, from k-means centroids or the official start;
  its criterion only when ``judged`` (a run that is all the search will have needs none)."""
  t0 = time.perf_counter()
  (p1, p2), start = run
  x1, x2 = spaces.cond1[p1], spaces.cond2[p2]
  config = dataclasses.replace(config, prior=config.prior[p1] if isinstance(config.prior, dict) else config.prior)
  state = init_state(jax.random.PRNGKey(config.seed), config, x1.shape[1], x2.shape[1])
  if start == "k-means":
    centers = jax.numpy.asarray(kmeans[p1][0])
    state = state._replace(encoder=task_encoder_from(centers, jax.random.PRNGKey(config.seed + 1)))
  state, _ = fit(
    x1,
    x2,
    config,
    state=state,
    progress=hooks.progress,
    log_every=max(config.num_iters, 1),
    stop=hooks.stop,
    deadline=deadline,
  )
  loop_s, done = time.perf_counter() - t0, int(state.step)
  pred = predict(state.encoder, x1)
  judge = [spaces.cond2["a"], spaces.cond2["b"]]
  t_judge = time.perf_counter()
  per_space = separability_per_space(judge, pred) if judged else [float("nan")] * 2
  judge_s = time.perf_counter() - t_judge
  sizes = np.bincount(pred, minlength=config.k)
  entry = dict(
    phi1=p1,
    phi2=p2,
    start=start,
    separability=float(np.mean(per_space)),
    separability_per_space=dict(zip("ab", per_space)),
    nonempty_classes=int((sizes > 0).sum()),
    smallest_class=int(sizes.min()),
    iterations=done,
    planned_iterations=config.num_iters,
    step_seconds=loop_s / max(done, 1),
    criterion_seconds=judge_s if judged else None,
    seconds=time.perf_counter() - t0,
  )
  cut = "" if done == config.num_iters else f", cut at iteration {done} of {config.num_iters} by the budget"
  judgement = f"separability {entry['separability']:.4f} (label-free)" if judged else "the only run (not judged)"
  hooks.say(
    f"auto: phi1 = {p1}, phi2 = {p2}, {start} start: {judgement}, {entry['nonempty_classes']} of "
    f"{config.k} classes non-empty, {entry['seconds']:.0f} s{cut}"
  )
  return Candidate(entry, state, pred)


def fit_auto(
  phi_a: np.ndarray,
  phi_b: np.ndarray,
  k: int,
  *,
  budget_seconds: float = DEFAULT_BUDGET,
  seed: int = 42,
  config: HumeConfig = AUTO,
  num_iters: int | None = None,
  max_dim: int = MAX_DIM,
  hooks: Hooks | None = None,
  names: dict | None = None,
  resume: Resume = Resume(),
  spaces: Spaces | None = None,
  min_runs: int = 1,
  starts: tuple[str, ...] = STARTS,
  refine: bool = True,
  prior=None,
  **fields,
) -> AutoResult:
  """HUME on a user's two representations with every choice made without labels.

  For each order of the spaces (``a`` as ``phi1`` and ``b`` as ``phi2``, then swapped) and
  each start of the task encoder (spherical k-means centroids of ``phi1``, and the official
  random orthogonal draw), HUME trains with ``config`` on the conditioned spaces
  (``condition_spaces``), as many runs and iterations as the budget's cost model allows. The most
  separable run without empty classes is kept; the labels are the refined vote (``vote_labels``).

  Args:
    phi_a, phi_b, k: ``[n, d_a]``, ``[n, d_b]`` raw representations of the training split; number of classes.
    budget_seconds: time for the whole search (the conditioning, both orders, their k-means and criteria).
    seed: seed of k-means, of the encoder completion and of the runs.
    config: the runs' hyperparameters (``AUTO``; its ``k`` and ``seed`` are replaced).
    num_iters: iterations of each run, as given: no budget applies (default: cut to the budget).
    hooks, resume: ``hume_jax.training.hooks.Hooks`` (or its fields as keywords): ``say``, ``progress``, ``stop``,
      ``on_candidate(index, candidate)`` as each run ends; ``Resume``: the runs finished before.
    names: how messages name the spaces (``{"a": ..., "b": ...}``; default ``phi_a``, ``phi_b``).
    max_dim: principal components kept of each space (``kept_dims``: at least ``k``).
    spaces: ``condition_spaces(phi_a, phi_b, kept_dims(k, max_dim))`` done before (``phi_a``, ``phi_b`` unchecked).
    min_runs, starts: runs the budget may never drop (``kauto`` needs two); starts tried (``"k-means"``, ``"random"``).
    refine: refine the vote in both spaces (``hume_jax.search.refine``; ``kauto`` judges runs, not labels).
    prior: class sizes the runs are drawn towards: ``"k-means"`` or sizes (``sizes.run_priors``); None:
      ``config.prior`` (None there too: the paper's equal sizes).
  """
  if spaces is None:
    check_fit_inputs(phi_a, phi_b, unit_phi1=False, names=("phi_a", "phi_b"))
  hooks, names = hooks_of(hooks, fields), names or {"a": "phi_a", "b": "phi_b"}
  hooks.say(f"auto: space a is {names['a']}, space b is {names['b']}")
  clock = Clock(None if num_iters else GUARD * budget_seconds - resume.spent_seconds)  # a guard, not the plan
  config = dataclasses.replace(config, k=k, seed=seed)
  raw_dims = () if spaces is not None else (phi_a.shape[1], phi_b.shape[1])  # conditioned here, on the clock
  spaces = spaces or condition_spaces(phi_a, phi_b, kept_dims(k, max_dim))
  runs = _runs(spaces, k, max_dim, hooks.say, starts)
  plan = _plan(spaces, runs, config, num_iters, budget_seconds, hooks.say, refine, min_runs, raw_dims, max_dim)
  runs = runs[: plan["runs"]]
  prior = config.prior if prior is None else prior
  kmeans = kmeans_starts(spaces, k, seed) if any(s == "k-means" for _, s in runs) or from_kmeans(prior) else {}
  config = dataclasses.replace(config, prior=run_priors(prior, kmeans, k))
  candidates, plan = _search(spaces, runs, config, plan, clock, kmeans, hooks, resume)
  return _choose_and_vote(spaces, runs, candidates, config, plan, hooks.say, names)


def _search(spaces, runs, config: HumeConfig, plan: dict, clock: Clock, kmeans, hooks: Hooks, resume: Resume):
  """Every run not finished before, each re-planned against the clock; returns ``({index: Candidate}, the plan
  as the clock left it)`` (``plan`` itself unchanged)."""
  candidates = dict(resume.finished)
  todo = [i for i in range(len(runs)) if i not in candidates]
  if candidates:
    hooks.say(f"auto: {len(candidates)} finished runs kept from before; {len(todo)} to run")
  step_s = plan["step_seconds"]
  while todo:
    i = todo.pop(0)
    keep = plan["min_runs"] - len(candidates)
    plan, iters, deadline, fits = replan(plan, clock, len(todo) + 1, step_s, hooks.say, keep, len(candidates))
    todo = todo[: fits - 1]
    judged = len(candidates) + fits > 1
    candidates[i] = _run_candidate(spaces, runs[i], scaled_config(config, iters), kmeans, deadline, hooks, judged)
    step_s = max(step_s, candidates[i].entry["step_seconds"])
    # the criterion's cost as measured on this run (under load it can exceed the plan's estimate)
    measured = candidates[i].entry["criterion_seconds"] or 0.0
    plan = {**plan, "criterion_seconds": max(plan["criterion_seconds"], measured)}
    if hooks.on_candidate is not None:
      hooks.on_candidate(i, candidates[i])
  return candidates, plan


def _choose_and_vote(
  spaces: Spaces, runs, candidates: dict, config: HumeConfig, plan: dict, say, names: dict
) -> AutoResult:
  """The most separable run without empty classes (or of all, when every run leaves one
  empty), and the majority vote of the runs matched to it on the training rows."""
  k = config.k
  done = sorted(candidates)
  cands = [candidates[i] for i in done]
  full = [j for j, c in enumerate(cands) if c.entry["nonempty_classes"] == k] or list(range(len(cands)))
  best = max(full, key=lambda j: np.nan_to_num(cands[j].entry["separability"], nan=-1.0))
  order, start = runs[done[best]]
  say(
    f"auto: kept phi1 = {order[0]} ({names[order[0]]}), phi2 = {order[1]} ({names[order[1]]}), {start} "
    "start (highest separability)"
  )
  ref = cands[best].pred
  members = [
    Member(
      runs[i][0][0], spaces.as_phi1[runs[i][0][0]], c.state.encoder, hungarian_map(c.pred, ref, k).astype(np.int64)
    )
    for i, c in zip(done, cands)
  ]
  matched = np.stack([m.to_reference[c.pred] for m, c in zip(members, cands)])
  voted, vote = vote_runs(matched, best, cands[best].entry, [spaces.cond2["a"], spaces.cond2["b"]], k, say)
  before = vote["separability_per_space"] if vote["used"] else cands[best].entry["separability_per_space"]
  refiner, refinement = (
    refine_search(spaces, voted if vote["used"] else ref, k, list(before.values()), say)
    if plan["refine_criteria"]
    else (None, {"used": False, "skipped": True})
  )
  run_config = scaled_config(config, cands[best].entry["planned_iterations"])
  if isinstance(config.prior, dict):  # a prior per space: the kept run's
    run_config = dataclasses.replace(run_config, prior=config.prior[order[0]])
  conditioning = {"phi1": spaces.as_phi1[order[0]], "phi2": spaces.as_phi2[order[1]]}
  entries = [c.entry for c in cands]
  result = (cands[best].state, order, conditioning, run_config, entries, plan, members, best, vote, refiner, refinement)
  return AutoResult(*result)
