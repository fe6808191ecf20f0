"""HUME's evaluation protocol: many seeds as one program, the best by CV score, a majority vote.

The official protocol trains 100 seeds; the run with the best label-free CV score is the
reference, every other run is Hungarian-matched to it, and the final labels are a
per-sample majority vote.
"""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np

from hume_jax import metrics as hm
from hume_jax._fit import check_config, compute_dtype
from hume_jax.data import check_fit_inputs
from hume_jax._outer import TrainState, init_state, outer_step, step_config
from hume_jax._task_encoder import task_logits
from hume_jax.config import HumeConfig


def init_states(seeds: list[int], config: HumeConfig, d1: int, d2: int, dtype=jnp.float32) -> TrainState:
  """One ``TrainState`` per seed, stacked along a leading ``[N]`` axis."""
  states = [init_state(jax.random.PRNGKey(s), config, d1, d2, dtype) for s in seeds]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


@functools.partial(jax.jit, static_argnames="config")
def seeds_step(states: TrainState, phi1: jax.Array, phi2: jax.Array, *, config: HumeConfig):
  """``outer_step`` of every run, vmapped over the stacked states (inputs shared); one compile
  per process for each config, number of runs and shapes."""
  return jax.vmap(functools.partial(outer_step, config=config), in_axes=(0, None, None))(states, phi1, phi2)


def fit_seeds(phi1: np.ndarray, phi2: np.ndarray, config: HumeConfig, seeds: list[int], *,
              chunk: int | None = None, progress: bool = True) -> TrainState:
  """Trains one HUME run per seed, ``chunk`` seeds at a time vmapped in one jitted step.

  Each run is exactly the run ``fit`` makes with ``dataclasses.replace(config, seed=s)``.

  Args:
    phi1: ``[n, d1]`` L2-normalised; phi2: ``[n, d2]``.
    config: hyperparameters (its ``seed`` is ignored: ``seeds`` are used).
    seeds: one run per seed.
    chunk: seeds trained together (default: all); bounds memory. With several local
      devices, each chunk's seeds are split over as many of them as divide it.

  Returns:
    the final states stacked along a leading ``[len(seeds)]`` axis.
  """
  from tqdm.auto import tqdm

  check_fit_inputs(phi1, phi2)
  n, d1 = phi1.shape
  check_config(config, n, d1)
  chunk = chunk or len(seeds)
  dtype = compute_dtype(phi1)
  phi1_d, phi2_d = jnp.asarray(phi1, dtype), jnp.asarray(phi2, dtype)
  step_cfg = step_config(config)  # the seeds and num_iters do not change the compiled step
  # The runs are independent: split each chunk's seeds over the local devices that divide it
  # (the data replicated); XLA partitions the vmapped step along the seed axis.
  devices = jax.local_devices()
  n_dev = max(d for d in range(1, len(devices) + 1) if chunk % d == 0 and len(seeds) % chunk % d == 0)
  mesh = jax.sharding.Mesh(np.array(devices[:n_dev]), ("seeds",)) if n_dev > 1 else None
  if mesh is not None:
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    phi1_d, phi2_d = jax.device_put(phi1_d, replicated), jax.device_put(phi2_d, replicated)
  finals = []
  with tqdm(total=len(seeds) * config.num_iters, desc=f"HUME x{len(seeds)} seeds", unit="it",
            disable=not progress, dynamic_ncols=True) as bar:
    for start in range(0, len(seeds), chunk):
      part = seeds[start:start + chunk]
      state = init_states(part, config, d1, phi2.shape[1], dtype)
      if mesh is not None:
        state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds")))
      for it in range(config.num_iters):
        state, m = seeds_step(state, phi1_d, phi2_d, config=step_cfg)
        bar.update(len(part))
        if (it + 1) % 50 == 0 or it + 1 == config.num_iters:
          losses = np.asarray(m.loss)
          if not np.isfinite(losses).all():
            bad = [s for s, l in zip(part, losses) if not np.isfinite(l)]
            raise FloatingPointError(f"non-finite HUME loss at iteration {it + 1} for seeds {bad}")
          bar.set_postfix(loss=f"{losses.mean():.4f}")
      finals.append(state)
  return jax.tree.map(lambda *xs: jnp.concatenate(xs), *finals)


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
  numbering; ties go to the reference's label."""
  n = matched.shape[1]
  votes = np.zeros((k, n), np.int64)
  for row in matched:
    votes[row, np.arange(n)] += 1
  ref = matched[reference]
  return np.where(votes[ref, np.arange(n)] == votes.max(0), ref, votes.argmax(0))
