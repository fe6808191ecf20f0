"""The default for a user's own representations: label-free conditioning, initialisation,
order of the spaces and a time budget, each recorded.

The official settings assume what the paper's inputs had: ``phi2`` on the scale its inner
learning rate was tuned for, and ``phi1`` spread around the origin of the unit sphere.
Raw features of another model break both. Two failures follow, and this module removes
their causes rather than their symptoms:

* **Empty classes.** The task encoder has no bias (Eq. 3): a labeling is the argmax of
  ``phi1 @ E^T`` over directions through the origin. Features that are all positive (ReLU
  pools, e.g. a ResNet's) lie in a narrow cone after L2 normalisation; every row then has
  nearly the same logits, and a class whose direction points away from the cone is never
  the argmax, although the mean soft labeling (what Eq. 7's entropy sees on a subset) can
  look balanced. Centring ``phi1`` before L2 normalisation spreads it over the sphere.
* **No signal from the inner loop.** One inner SGD step (Eq. 5) moves the logits by about
  ``inner_lr * lambda_max(cov(phi2))`` along the leading direction. With ``phi2`` a unit
  sentence embedding (``lambda_max`` ~ 0.01) the official 1e-3 barely moves the classifier
  in 300 steps; with raw CNN features (~ 100s) it is far too large for other inputs. Here
  ``phi2`` is centred and scaled to ``lambda_max = 1``, and ``inner_lr`` is a fraction of
  the largest stable step (``2 / lambda_max``).

Both spaces are also reduced to their leading principal components (``max_dim``), which
bounds the cost of raw 1000-2000-d inputs. Two starts of the task encoder are tried: the
official random orthogonal draw, and the (orthonormalised) centroids of spherical k-means on
``phi1``, from which HUME refines a labeling that is already plausible instead of searching
from noise (on package descriptions embedded by a sentence model: ACC 0.55 from the random
start, 0.78 from k-means; on Fashion-MNIST both about 0.75). Which start and which
representation is ``phi1`` are chosen by the label-free criterion ``separability``.

The labels returned are the per-sample majority vote of all four runs, each matched to the
kept one (Hungarian matching on the training rows; ties go to the kept run). Runs from other
spaces and starts err on different samples, so their vote is more accurate than the kept run
alone: measured on Fashion-MNIST, digits, Debian package descriptions and fortunes quotes
from raw features (``benchmarks/quality.py``), ACC 73.7 -> 74.6, 80.1 -> 82.8, 73.1 -> 74.6 and
58.4 -> 58.6, although ``separability`` itself scores the vote lower than the
kept run (which is why the vote is not one more candidate of the criterion).
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import numpy as np

from hume_jax.config import AUTO, HumeConfig
MAX_DIM = 128
MIN_ITERS = 60


class Conditioning(NamedTuple):
  """An affine map ``x -> ((x - mean) @ components.T) * scale``, then unit rows if ``unit_rows``.

  Attributes:
    mean: ``[d]`` mean of the fitted split.
    components: ``[r, d]`` leading principal directions (``r <= max_dim``).
    scale: ``[]`` multiplier after projection.
    unit_rows: L2-normalise rows at the end (for ``phi1``).
    explained: share of the variance the ``r`` components keep.
  """
  mean: np.ndarray
  components: np.ndarray
  scale: float
  unit_rows: bool
  explained: float


def fit_conditioning(x: np.ndarray, *, unit_rows: bool, max_dim: int = MAX_DIM) -> Conditioning:
  """Centring and PCA to ``min(max_dim, d, n)`` components fitted on ``x [n, d]``.

  With ``unit_rows`` (``phi1``), rows are L2-normalised after centring; otherwise (``phi2``)
  they are scaled so that the largest eigenvalue of their covariance is 1.
  """
  x = np.asarray(x, np.float64)
  mean = x.mean(0)
  _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
  r = min(max_dim, len(s))
  var = s ** 2 / len(x)
  scale = 1.0 if unit_rows else float(1 / np.sqrt(max(var[0], 1e-30)))
  return Conditioning(mean, vt[:r], scale, unit_rows, float(var[:r].sum() / max(var.sum(), 1e-30)))


def apply_conditioning(c: Conditioning, x: np.ndarray) -> np.ndarray:
  """``x [m, d]`` mapped by ``c``: ``float32 [m, r]``."""
  z = (np.asarray(x, np.float64) - c.mean) @ c.components.T * c.scale
  if c.unit_rows:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.where(norms > 0, norms, 1.0)  # a row at the mean stays 0: it gets no class preference
  return z.astype(np.float32)


def condition_splits(train: dict, val: dict | None, max_dim: int = MAX_DIM) -> tuple[dict, dict | None]:
  """``phi1`` and ``phi2`` of both splits conditioned as ``fit_auto`` does (fitted on ``train``)."""
  c1 = fit_conditioning(train["phi1"], unit_rows=True, max_dim=max_dim)
  c2 = fit_conditioning(train["phi2"], unit_rows=False, max_dim=max_dim)
  cond = lambda d: None if d is None else {**d, "phi1": apply_conditioning(c1, d["phi1"]),
                                           "phi2": apply_conditioning(c2, d["phi2"])}
  return cond(train), cond(val)


def spherical_kmeans(phi1: np.ndarray, k: int, seed: int) -> np.ndarray:
  """Centroids ``[k, d1]`` (unit rows) of k-means on the unit rows ``phi1 [n, d1]``."""
  from sklearn.cluster import KMeans
  centers = KMeans(k, n_init=10, random_state=seed).fit(phi1).cluster_centers_
  return (centers / np.linalg.norm(centers, axis=1, keepdims=True)).astype(phi1.dtype)


def separability(spaces: list[np.ndarray], labels: np.ndarray, dims: int = 64, folds: int = 5) -> float:
  """The label-free criterion: chance-corrected CV score (Cohen's kappa of 5-fold logistic
  regression, as ``metrics.cv_kappa``) of ``labels`` in each space, averaged over spaces.

  HUME's premise is that a human labeling is linearly separable in *every* strong space, so
  a labeling read off one space is judged in both; kappa removes the chance level (1/K for
  a balanced labeling) that the plain CV score rewards. The first ``dims`` principal
  components of each (conditioned) space keep it cheap.
  """
  from hume_jax.metrics import cv_kappa
  return float(np.mean([cv_kappa(x[:, :dims], labels, folds=folds, n_jobs=1) for x in spaces]))


def plan_iterations(step_seconds: float, budget_seconds: float, runs: int, config: HumeConfig = AUTO) -> int:
  """Outer iterations per run that fit ``runs`` runs in ``budget_seconds``: the preset's
  ``num_iters`` when they fit, fewer (at least ``MIN_ITERS``) otherwise."""
  affordable = int(budget_seconds / max(runs * step_seconds, 1e-9))
  return int(max(MIN_ITERS, min(config.num_iters, affordable)))


def scaled_config(config: HumeConfig, num_iters: int) -> HumeConfig:
  """``config`` with ``num_iters`` and the annealing milestones at the same fractions of it."""
  frac = [m / config.num_iters for m in config.milestones]
  return dataclasses.replace(config, num_iters=num_iters,
                             milestones=tuple(max(1, int(round(f * num_iters))) for f in frac))


def time_step(phi1: np.ndarray, phi2: np.ndarray, config: HumeConfig, repeats: int = 3) -> tuple[float, float]:
  """``(compile seconds, seconds per outer iteration)`` of ``config`` on these shapes, measured."""
  import jax

  from hume_jax._outer import init_state, outer_step_jit
  state = init_state(jax.random.PRNGKey(0), config, phi1.shape[1], phi2.shape[1])
  step = lambda st, x1, x2: outer_step_jit(st, x1, x2, config=config, mesh=None)
  x1, x2 = jax.numpy.asarray(phi1), jax.numpy.asarray(phi2)
  t0 = time.perf_counter()
  state, m = step(state, x1, x2)
  jax.block_until_ready(m.loss)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(repeats):
    state, m = step(state, x1, x2)
  jax.block_until_ready(m.loss)
  return compile_s, (time.perf_counter() - t0) / repeats


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


class AutoResult(NamedTuple):
  """What ``fit_auto`` chose and why.

  Attributes:
    state: final ``TrainState`` of the chosen run.
    order: ``("a", "b")`` when space a is phi1, ``("b", "a")`` when swapped.
    conditioning: ``{"phi1": Conditioning, "phi2": Conditioning}`` of the chosen run's spaces.
    config: the chosen run's ``HumeConfig``.
    candidates: one dict per candidate: order, start, separability, class counts, seconds.
    plan: the plan printed before training (step time, iterations, estimate).
    members: every run (``Member``), the kept one at index ``reference``; ``vote_labels``
      labels samples with their vote.
    reference: index of the kept run in ``members``.
    vote: how the vote was used: its separability, class counts and whether it is the labeling
      (it is not when it leaves a class empty that the kept run fills).
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


def member_labels(members: list, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
  """Every run's labels of the samples ``phi_a [m, d_a]``, ``phi_b [m, d_b]`` (raw), in the
  kept run's numbering: ``int [N, m]``."""
  from hume_jax._fit import predict
  spaces = {"a": phi_a, "b": phi_b}
  return np.stack([r.to_reference[predict(r.encoder, apply_conditioning(r.conditioning, spaces[r.phi1]))]
                   for r in members])


def vote_labels(result: AutoResult, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
  """The labels of ``fit_auto``: the runs' majority vote (ties: the kept run), or the kept
  run's labels when the vote was found to leave a class empty on the training rows."""
  from hume_jax.ensemble import vote_matched
  preds = member_labels(result.members, phi_a, phi_b)
  if not result.vote["used"]:
    return preds[result.reference]
  return vote_matched(preds, result.reference, result.config.k)


def fit_auto(phi_a: np.ndarray, phi_b: np.ndarray, k: int, *, budget_seconds: float = 600.0, seed: int = 42,
             max_dim: int = MAX_DIM, progress: bool = True, say=print, config: HumeConfig = AUTO,
             num_iters: int | None = None) -> AutoResult:
  """HUME on a user's two representations with every choice made without labels.

  For each order of the spaces (``a`` as ``phi1`` and ``b`` as ``phi2``, then swapped) and
  each start of the task encoder (spherical k-means centroids of ``phi1``, and the official
  random orthogonal draw), HUME trains with ``config`` on the conditioned spaces
  (``fit_conditioning``), iterations cut to fit the budget from a measured step time. The
  run whose labeling has the highest ``separability`` in both spaces, among those with no
  empty class, is kept; the labels are the majority vote of all runs matched to it
  (``vote_labels``).

  Args:
    phi_a, phi_b: ``[n, d_a]``, ``[n, d_b]`` raw representations of the training split.
    k: number of classes.
    budget_seconds: time for the whole search (both orders, their k-means and criteria).
    seed: seed of k-means, of the encoder completion and of the runs.
    config: the runs' hyperparameters (``AUTO``; its ``k`` and ``seed`` are replaced).
    num_iters: iterations of each run, as given (default: ``config.num_iters``, cut to the budget).
  """
  import jax

  from hume_jax._fit import fit, predict
  from hume_jax._outer import init_state
  from hume_jax._task_encoder import task_encoder_from
  from hume_jax.data import check_fit_inputs
  from hume_jax.ensemble import vote_matched
  from hume_jax.metrics import hungarian_map

  check_fit_inputs(phi_a, phi_b, unit_phi1=False, names=("phi_a", "phi_b"))
  t_start = time.perf_counter()
  spaces = {"a": np.asarray(phi_a), "b": np.asarray(phi_b)}
  n = len(phi_a)
  as_phi2 = {s: fit_conditioning(x, unit_rows=False, max_dim=max_dim) for s, x in spaces.items()}
  as_phi1 = {s: c._replace(scale=1.0, unit_rows=True) for s, c in as_phi2.items()}  # same PCA, unit rows
  cond1 = {s: apply_conditioning(c, spaces[s]) for s, c in as_phi1.items()}
  cond2 = {s: apply_conditioning(c, spaces[s]) for s, c in as_phi2.items()}
  dims = {s: x.shape[1] for s, x in cond1.items()}
  # The task encoder has k orthonormal rows in phi1's space: a space with fewer than k
  # (conditioned) dimensions can only be phi2.
  orders = [(p1, p2) for p1, p2 in (("a", "b"), ("b", "a")) if dims[p1] >= k]
  if not orders:
    raise ValueError(f"phi_a, phi_b: expected at least one space with k = {k} or more dimensions to serve as phi1 "
                     f"(HUME's task encoder has k orthonormal rows), found {dims['a']} and {dims['b']} (after "
                     f"reduction to at most min(n, {max_dim}) principal components)")
  for space in ("a", "b"):
    if dims[space] < k:
      say(f"auto: {space} has {dims[space]} dimensions, fewer than k = {k}: only as phi2")
  starts = ("k-means", "random")
  runs = [(o, s) for o in orders for s in starts]
  # A short measured step, so the plan is this machine's and these shapes'.
  compile_s, step_s = time_step(cond1[orders[0][0]], cond2[orders[0][1]], config)
  spent = time.perf_counter() - t_start
  overhead = 0.1 * budget_seconds  # k-means, criteria, compiles
  iters = num_iters or plan_iterations(step_s, max(budget_seconds - spent - overhead, 0.0), len(runs), config)
  run_config = scaled_config(dataclasses.replace(config, k=k, seed=seed), iters)
  m, n_tr = run_config.subset_sizes(n)
  # Runs with the same shapes share one compiled step (outer_step_jit).
  compiles = len({(dims[p1], dims[p2]) for p1, p2 in orders})
  plan = {"step_seconds": step_s, "compile_seconds": compile_s, "num_iters": iters,
          "runs": len(runs), "estimate_seconds": spent + len(runs) * iters * step_s + compiles * compile_s,
          "budget_seconds": budget_seconds, "max_dim": max_dim,
          "dims": {s: int(c.components.shape[0]) for s, c in as_phi1.items()},
          "explained_variance": {s: c.explained for s, c in as_phi1.items()}}
  say(f"auto: each space centred and reduced to its {max_dim} leading principal components "
      f"(a: {plan['dims']['a']}, {100 * plan['explained_variance']['a']:.1f}% of the variance; "
      f"b: {plan['dims']['b']}, {100 * plan['explained_variance']['b']:.1f}%); phi1 L2-normalised, phi2 scaled "
      f"to unit top eigenvalue")
  say(f"auto: {len(runs)} runs ({', then '.join(o[0] + ' as phi1' for o in orders)}; each from spherical k-means "
      f"centroids of phi1 and from the official random start); {iters} iterations of "
      f"S={run_config.num_subsets} x {m} rows, "
      f"T={run_config.adaptation_steps}, inner_lr={run_config.inner_lr} (x 1/lambda_max), "
      f"outer_lr={run_config.outer_lr}; measured {step_s:.3f} s/iteration: about {plan['estimate_seconds']:.0f} s "
      f"in all (budget {budget_seconds:.0f} s)")
  candidates, states, preds = [], [], []
  for (phi1_name, phi2_name), start in runs:
    t0 = time.perf_counter()
    x1, x2 = cond1[phi1_name], cond2[phi2_name]
    state = init_state(jax.random.PRNGKey(seed), run_config, x1.shape[1], x2.shape[1])
    if start == "k-means":
      centers = spherical_kmeans(x1, k, seed)
      state = state._replace(encoder=task_encoder_from(jax.numpy.asarray(centers), jax.random.PRNGKey(seed + 1)))
    state, _ = fit(x1, x2, run_config, progress=progress, state=state, log_every=max(iters, 1))
    pred = predict(state.encoder, x1)
    score = separability([cond2["a"], cond2["b"]], pred)
    sizes = np.bincount(pred, minlength=k)
    entry = {"phi1": phi1_name, "phi2": phi2_name, "start": start, "separability": score,
             "nonempty_classes": int((sizes > 0).sum()), "smallest_class": int(sizes.min()),
             "seconds": time.perf_counter() - t0}
    say(f"auto: phi1 = {phi1_name}, phi2 = {phi2_name}, {start} start: separability {score:.4f} (label-free), "
        f"{entry['nonempty_classes']} of {k} classes non-empty, {entry['seconds']:.0f} s")
    candidates.append(entry)
    states.append(state)
    preds.append(pred)
  # A run that leaves classes empty is kept only when every run does.
  full = [i for i, c in enumerate(candidates) if c["nonempty_classes"] == k] or list(range(len(candidates)))
  best = max(full, key=lambda i: candidates[i]["separability"])
  order = runs[best][0]
  say(f"auto: kept phi1 = {order[0]}, phi2 = {order[1]}, {runs[best][1]} start (highest separability)")
  # The vote of all runs, each matched to the kept one on the training rows.
  ref = preds[best]
  members = [Member(o[0], as_phi1[o[0]], st.encoder, hungarian_map(p, ref, k).astype(np.int64))
             for ((o, _), st, p) in zip(runs, states, preds)]
  voted = vote_matched(np.stack([m.to_reference[p] for m, p in zip(members, preds)]), best, k)
  sizes = np.bincount(voted, minlength=k)
  vote = {"separability": separability([cond2["a"], cond2["b"]], voted), "nonempty_classes": int((sizes > 0).sum()),
          "smallest_class": int(sizes.min()), "agreement_with_kept_run": float((voted == ref).mean())}
  vote["used"] = vote["nonempty_classes"] >= candidates[best]["nonempty_classes"]
  say(f"auto: labels = majority vote of the {len(runs)} runs matched to the kept one "
      f"({100 * vote['agreement_with_kept_run']:.1f}% of samples as the kept run labels them; separability "
      f"{vote['separability']:.4f}, {vote['nonempty_classes']} of {k} classes non-empty)"
      if vote["used"] else "auto: the vote of the runs leaves a class empty: labels = the kept run's")
  return AutoResult(states[best], order, {"phi1": as_phi1[order[0]], "phi2": as_phi2[order[1]]}, run_config,
                    candidates, plan, members, best, vote)
