"""HUME's evaluation protocol: many seeds as one program, the best by CV score, a majority vote;
and the choice of K when it is unknown.

The official protocol trains 100 seeds; the run with the best label-free CV score is the
reference, every other run is Hungarian-matched to it, and the final labels are a
per-sample majority vote.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hume_jax.config import HumeConfig, check_config
from hume_jax.core._outer import TrainState, init_state, outer_step
from hume_jax.core._plan import Execution, check_execution
from hume_jax.core._task_encoder import task_logits
from hume_jax.evaluation import metrics as hm
from hume_jax.io.data import check_fit_inputs
from hume_jax.training._fit import compute_dtype, release_compiled
from hume_jax.training._loop import run_loop
from hume_jax.training.hooks import Hooks, hooks_of


def init_states(seeds: list[int], config: HumeConfig, d1: int, d2: int, dtype=jnp.float32) -> TrainState:
  """One ``TrainState`` per seed, stacked along a leading ``[N]`` axis."""
  states = [init_state(jax.random.PRNGKey(s), config, d1, d2, dtype) for s in seeds]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


@functools.partial(jax.jit, static_argnames="execution")
def seeds_step(
  states: TrainState, phi1: jax.Array, phi2: jax.Array, *, config: HumeConfig, execution: Execution = Execution()
):
  """``outer_step`` of every run, vmapped over the stacked states (inputs shared); one compile
  per process for each config (but its ``seed`` and ``num_iters``), execution, number of runs and shapes."""
  step = functools.partial(outer_step, config=config, execution=execution)
  return jax.vmap(step, in_axes=(0, None, None))(states, phi1, phi2)


def _seed_mesh(chunk: int, runs: int):
  """The runs are independent: each chunk's seeds are split over the local devices that divide
  it (and the last, shorter chunk); XLA partitions the vmapped step along the seed axis."""
  devices = jax.local_devices()
  n_dev = max(d for d in range(1, len(devices) + 1) if chunk % d == 0 and runs % chunk % d == 0)
  return jax.sharding.Mesh(np.array(devices[:n_dev]), ("seeds",)) if n_dev > 1 else None


def fit_seeds(
  phi1: np.ndarray,
  phi2: np.ndarray,
  config: HumeConfig,
  seeds: list[int],
  *,
  chunk: int | None = None,
  execution: Execution = Execution(),
  hooks: Hooks | None = None,
  **fields,
) -> TrainState:
  """Trains one HUME run per seed, ``chunk`` seeds at a time vmapped in one jitted step.

  Each run is exactly the run ``fit`` makes with ``dataclasses.replace(config, seed=s)``.

  Args:
    phi1: ``[n, d1]`` L2-normalised; phi2: ``[n, d2]``.
    config: hyperparameters (its ``seed`` is ignored: ``seeds`` are used).
    seeds: one run per seed.
    chunk: seeds trained together (default: all); bounds memory. With several local
      devices, each chunk's seeds are split over as many of them as divide it.
    execution: how each step is scheduled (``hume_jax.core._plan.Execution``); the same result.
    hooks: ``hume_jax.training.hooks.Hooks``: each chunk's loop's (``progress``, ``log_every`` (50,
      between finite checks), ``stop``, ``checkpoint_every``, ``on_estimate``) and, to resume, the
      parts': ``resume_part(index, template)`` gives a chunk's stacked states saved before (finished
      or stopped: their ``step`` says), or None; ``on_part(index, states, finished)`` is called at
      the loop's checkpoints, on a stop and at a chunk's end.
    **fields: fields of ``hooks`` replaced (``progress=False``).

  Returns:
    the final states stacked along a leading ``[len(seeds)]`` axis.
  """
  check_fit_inputs(phi1, phi2)
  n, d1 = phi1.shape
  check_config(config, n, d1)
  check_execution(execution, config)
  hooks = hooks_of(hooks, fields)
  resume_part, on_part = hooks.resume_part, hooks.on_part
  chunk = chunk or len(seeds)
  dtype = compute_dtype(phi1)
  phi1_d, phi2_d = jnp.asarray(phi1, dtype), jnp.asarray(phi2, dtype)
  mesh = _seed_mesh(chunk, len(seeds))
  if mesh is not None:
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    phi1_d, phi2_d = jax.device_put(phi1_d, replicated), jax.device_put(phi2_d, replicated)
  finals = []
  for c, start in enumerate(range(0, len(seeds), chunk)):
    part = seeds[start : start + chunk]
    state = init_states(part, config, d1, phi2.shape[1], dtype)
    saved = None if resume_part is None else resume_part(c, state)
    state = state if saved is None else saved
    if mesh is not None:
      state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))
    save = None if on_part is None else functools.partial(_save_part, on_part, c, config.num_iters)
    finals.append(_fit_chunk(state, phi1_d, phi2_d, config, execution, part, hooks._replace(on_checkpoint=save)))
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *finals)


def _save_part(on_part, index: int, num_iters: int, states: TrainState) -> None:
  on_part(index, states, int(np.asarray(states.step).reshape(-1)[0]) == num_iters)


def _fit_chunk(
  states: TrainState, phi1, phi2, config: HumeConfig, execution: Execution, seeds: list[int], hooks: Hooks
) -> TrainState:
  """One chunk of seeds through the shared loop; the step compiled once for every chunk (the
  seeds and ``num_iters`` do not change it)."""

  def metrics(m):
    losses = np.asarray(m.loss)
    bad = [s for s, loss in zip(seeds, losses) if not np.isfinite(loss)]
    return {"loss": float(losses.mean()), "detail": f" for seeds {bad}" if bad else ""}

  step = lambda st: seeds_step(st, phi1, phi2, config=config, execution=execution)
  finite = lambda st: bool(jnp.all(jnp.isfinite(st.encoder.raw)))
  states, _ = run_loop(
    step,
    states,
    config.num_iters,
    desc=f"HUME x{len(seeds)} seeds",
    metrics=metrics,
    predict=lambda st: None,
    finite=finite,
    hooks=hooks,
    log_every=50,
  )
  return states


def predict_seeds(states: TrainState, phi1: np.ndarray) -> np.ndarray:
  """Hard labels of every run: ``int [N, n]``."""
  logits = jax.vmap(lambda enc: task_logits(enc, jnp.asarray(phi1)))(states.encoder)
  return np.asarray(jnp.argmax(logits, axis=-1))


def majority_vote(preds: np.ndarray, reference: int, k: int) -> np.ndarray:
  """Per-sample majority vote of ``preds [N, n]`` after matching every run to run ``reference``.

  Each run's cluster ids are permuted (Hungarian matching) to agree best with the
  reference's; ties go to the reference's label.
  """
  ref = preds[reference]
  return vote_matched(np.stack([hm.hungarian_map(p, ref, k)[p] for p in preds]), reference, k)


def vote_matched(matched: np.ndarray, reference: int, k: int) -> np.ndarray:
  """Per-sample majority vote of labelings ``matched [N, n]`` already in run ``reference``'s
  numbering; ties go to the reference's label, else to the smallest label among the most voted.

  Memory stays ``N x n``: each run's label is scored by how many runs agree with it (no ``[k, n]``
  table, 10 GB at ImageNet's k = 1000 and 1.28M rows)."""
  matched = np.asarray(matched)
  agree = np.zeros(matched.shape, np.int32)  # agree[i, j]: runs that give sample j run i's label
  for row in matched:
    agree += matched == row[None, :]
  most = agree.max(0)
  smallest = np.where(agree == most[None, :], matched, k).min(0)
  ref = matched[reference]
  return np.where(agree[reference] == most, ref, smallest)


class SeedProtocol(NamedTuple):
  """The official protocol's outcome over ``N`` runs.

  Attributes:
    cv_scores: ``[N]`` label-free CV score of each run on the evaluation split.
    best: index of the run with the best CV score (the reference).
    preds: ``{split: [n]}`` the best run's labels and ``{split + "_vote": [n]}`` the majority
      vote of all runs matched to it, for every split given.
  """

  cv_scores: list[float]
  best: int
  preds: dict[str, np.ndarray]


def best_and_vote(all_preds: dict[str, np.ndarray], phi2_eval: np.ndarray, eval_split: str, k: int) -> SeedProtocol:
  """The best run by CV score on ``eval_split`` (``phi2_eval``: that split in phi2) and the
  majority vote aligned to it, of ``all_preds[split] [N, n]``."""
  cvs = [hm.cv_score(phi2_eval, p) for p in all_preds[eval_split]]
  best = int(np.argmax(cvs))
  preds = {}
  for split, p in all_preds.items():
    preds[split] = p[best]
    preds[f"{split}_vote"] = majority_vote(p, best, k)
  return SeedProtocol(cvs, best, preds)


class KSelection(NamedTuple):
  """``select_k``'s outcome: the chosen K, the criterion in words and one score dict per K tried."""

  chosen_k: int
  criterion: str
  scores: list[dict]
  warning: str | None = None


def select_k(
  phi1: np.ndarray,
  phi2: np.ndarray,
  config: HumeConfig,
  k_range: tuple[int, int],
  seeds: list[int],
  *,
  phi1_eval: np.ndarray | None = None,
  phi2_eval: np.ndarray | None = None,
  labels_eval: np.ndarray | None = None,
  done: dict[int, dict] | None = None,
  execution: Execution = Execution(),
  hooks: Hooks | None = None,
  **fields,
) -> KSelection:
  """For each K in ``k_range`` (inclusive), ``len(seeds)`` runs (vmapped); the chosen K is the
  one whose runs agree most on the evaluation split (stability: mean pairwise ARI of their
  labelings, label-free). ``labels_eval`` only adds each K's accuracy to the report. ``done``
  holds the score entries of K already tried (resuming); ``execution`` schedules the steps; ``hooks``
  (``hume_jax.training.hooks.Hooks``, or its ``**fields``): ``say`` the messages, ``stop`` each K's runs,
  ``on_k(k, entry)`` called as each K finishes. After each K the process's compiled JAX programs are
  released (``_fit.release_compiled``)."""
  hooks = hooks_of(hooks, fields)
  say = hooks.say
  phi1_eval, phi2_eval = (phi1 if phi1_eval is None else phi1_eval), (phi2 if phi2_eval is None else phi2_eval)
  scores = []
  for k in range(k_range[0], k_range[1] + 1):
    if done and k in done:
      scores.append(done[k])
      say(f"K={k}: kept from before")
      continue
    cfg = dataclasses.replace(config, k=k)
    try:
      check_config(cfg, len(phi1), phi1.shape[1])
    except ValueError as e:
      say(f"K={k}: skipped ({e})")
      continue
    states = fit_seeds(phi1, phi2, cfg, seeds, execution=execution, progress=False, stop=hooks.stop)
    preds = predict_seeds(states, phi1_eval)
    release_compiled()  # this K's programs are not run again
    entry = {
      "k": k,
      "stability": hm.stability(preds),
      "cv_score": hm.cv_score(phi2_eval, preds[0]),
      "kappa": hm.cv_kappa(phi2_eval, preds[0]),
    }
    if labels_eval is not None:
      entry["acc"] = hm.hungarian_accuracy(preds[0], labels_eval)
    scores.append(entry)
    if hooks.on_k is not None:
      hooks.on_k(k, entry)
    say(
      f"K={k}: stability {entry['stability']:.4f}, CV {entry['cv_score']:.4f}, chance-corrected CV "
      f"{entry['kappa']:.4f}" + (f", ACC {entry['acc']:.4f} (not used)" if "acc" in entry else "")
    )
  if not scores:
    raise ValueError(f"k_range {k_range[0]}:{k_range[1]}: holds no K that this data allows")
  chosen = max(scores, key=lambda e: e["stability"])["k"]
  say(f"K auto: chose K={chosen}")
  return KSelection(chosen, f"stability: mean pairwise ARI of {len(seeds)} runs (label-free)", scores)


def vote_runs(matched: np.ndarray, best: int, kept: dict, judged: list, k: int, say=print) -> tuple[np.ndarray, dict]:
  """The vote of ``hume_jax.search.auto``'s runs: ``matched [N, n]`` their labels of the training rows in
  the kept run's numbering, ``best`` the kept run, ``kept`` its report entry, ``judged`` the
  conditioned spaces of the criterion. Returns the voted labels and the vote's report: its
  separability, class counts, agreement with the kept run and whether it is used (not when it
  leaves a class empty that the kept run fills)."""
  voted = vote_matched(matched, best, k)
  sizes = np.bincount(voted, minlength=k)
  single = len(matched) == 1  # the vote of one run is that run: nothing to judge
  per_space = list(kept["separability_per_space"].values()) if single else hm.separability_per_space(judged, voted)
  vote = {
    "separability": float(np.mean(per_space)),
    "separability_per_space": dict(zip("ab", per_space)),
    "nonempty_classes": int((sizes > 0).sum()),
    "smallest_class": int(sizes.min()),
    "agreement_with_kept_run": float((voted == matched[best]).mean()),
  }
  vote["used"] = vote["nonempty_classes"] >= kept["nonempty_classes"]
  if single:
    say("auto: labels = the one run's (the budget left time for no other)")
  else:
    say(
      f"auto: labels = majority vote of the {len(matched)} runs matched to the kept one "
      f"({100 * vote['agreement_with_kept_run']:.1f}% of samples as the kept run labels them; separability "
      f"{vote['separability']:.4f}, {vote['nonempty_classes']} of {k} classes non-empty)"
      if vote["used"]
      else "auto: the vote of the runs leaves a class empty: labels = the kept run's"
    )
  return voted, vote
