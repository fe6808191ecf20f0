"""The training loop: jit one outer step, run it ``num_iters`` times, log, predict.

    state, history = fit(phi1, phi2, HumeConfig(k=10))
    labels = predict(state.encoder, phi1)
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hume_jax.data import check_fit_inputs
from hume_jax._loop import run_loop
from hume_jax._outer import SUBSET_AXIS, TrainState, init_state, outer_step_jit
from hume_jax._task_encoder import TaskEncoder, task_logits
from hume_jax.config import HumeConfig


def check_config(config: HumeConfig, n: int, d1: int) -> None:
  """Rejects hyperparameters that cannot define a run, before any compute."""
  if config.k < 2:
    raise ValueError(f"k: expected at least 2 classes, got {config.k}")
  if config.k > n:
    raise ValueError(f"k: expected at most the number of samples ({n}), got {config.k}")
  if config.k > d1:
    raise ValueError(f"k: the task encoder has orthonormal rows, so k must be <= d1 = {d1}; got {config.k}")
  if not 0 < config.train_fraction < 1:
    raise ValueError(f"train_fraction: expected a value in (0, 1), got {config.train_fraction}")
  for name in ("inner_lr", "outer_lr", "tau", "num_iters", "adaptation_steps", "num_subsets", "subset_size"):
    if not getattr(config, name) > 0:
      raise ValueError(f"{name}: expected a positive value, got {getattr(config, name)}")
  if config.H_reg < 0:
    raise ValueError(f"H_reg: expected a value >= 0, got {config.H_reg}")
  if config.subset_chunk < 0 or (config.subset_chunk and config.num_subsets % config.subset_chunk):
    raise ValueError(f"subset_chunk: expected 0 or a divisor of num_subsets = {config.num_subsets}, "
                     f"got {config.subset_chunk}")
  if config.row_block < -1:
    raise ValueError(f"row_block: expected -1 (automatic), 0 (whole matrices) or a number of rows, "
                     f"got {config.row_block}")
  m, n_train = config.subset_sizes(n)
  chunk = config.subset_chunk or config.num_subsets
  if jax.process_count() > 1 and chunk % jax.device_count():
    raise ValueError(f"num_subsets (or subset_chunk) = {chunk} must be a multiple of the "
                     f"{jax.device_count()} devices of all processes, which the subsets are split over")
  if n_train < 1 or n_train >= m:
    raise ValueError(f"train_fraction {config.train_fraction} of a subset of {m} rows leaves "
                     f"{n_train} for inner training and {m - n_train} held out; both must be >= 1")


def subset_devices(config: HumeConfig) -> list:
  """The devices the subsets are split over: all of them under ``jax.distributed``; on one
  host, as many as evenly divide the subsets of a chunk (e.g. 5 of 8 GPUs for 20 subsets)."""
  devices = jax.devices()
  if jax.process_count() > 1:
    return devices
  chunk = config.subset_chunk or config.num_subsets
  return devices[:max(d for d in range(1, len(devices) + 1) if chunk % d == 0)]


def compute_dtype(phi: np.ndarray) -> np.dtype:
  """float32, or float64 when ``phi`` is float64 and ``jax_enable_x64`` is on."""
  if np.asarray(phi).dtype == np.float64 and jax.config.jax_enable_x64:
    return np.dtype(np.float64)
  return np.dtype(np.float32)


def predict(encoder: TaskEncoder, phi1: np.ndarray | jax.Array) -> np.ndarray:
  """Hard labels ``argmax(phi1 @ E^T)`` of shape ``[n]`` (phi1 L2-normalised like in training)."""
  return np.asarray(jnp.argmax(task_logits(encoder, jnp.asarray(phi1)), axis=-1))


def fit(phi1: np.ndarray, phi2: np.ndarray, config: HumeConfig, *,
        labels: np.ndarray | None = None, log_every: int = 10, progress: bool = True,
        on_log: Callable[[dict], None] | None = None,
        state: TrainState | None = None, checkpoint_every: int = 0,
        on_checkpoint: Callable[[TrainState], None] | None = None) -> tuple[TrainState, list[dict]]:
  """Runs HUME: ``config.num_iters`` outer iterations from the seed's initialisation.

  Args:
    phi1: ``[n, d1]`` representation for the task encoder, already L2-normalised.
    phi2: ``[n, d2]`` representation for the inner classifier.
    config: hyperparameters; ``config.seed`` draws the initialisation and every subset.
    labels: optional ``[n]`` ground truth, only to report accuracy while training.
    log_every: iterations between logs (the only host syncs of the loop).
    progress: show a progress bar.
    on_log: called with each log record (a dict).
    state: start from this state (a checkpoint) instead of the seed's initialisation.
    checkpoint_every: iterations between calls of ``on_checkpoint`` (0: only at the end).
    on_checkpoint: called with a state whose loss was checked finite, every
      ``checkpoint_every`` iterations, at the end, and on ``KeyboardInterrupt`` (before
      re-raising it).

  Returns:
    ``(final state, log records)``.

  Raises:
    ValueError: on inputs or hyperparameters that cannot define a run (before any compute).
    FloatingPointError: on a non-finite loss (found at a log or checkpoint step).
  """
  check_fit_inputs(phi1, phi2, labels)
  n, d1 = phi1.shape
  check_config(config, n, d1)
  dtype = compute_dtype(phi1)
  if state is None:
    state = init_state(jax.random.PRNGKey(config.seed), config, d1, phi2.shape[1], dtype)
  mesh = None
  phi1_d, phi2_d = np.asarray(phi1, dtype), np.asarray(phi2, dtype)
  devices = subset_devices(config)
  if len(devices) > 1:
    # Subsets split over the devices (of every process under jax.distributed); data and
    # state replicated. Each process holds the full inputs.
    mesh = jax.sharding.Mesh(np.array(devices), (SUBSET_AXIS,))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    put = lambda x: jax.make_array_from_process_local_data(replicated, np.asarray(x))
    phi1_d, phi2_d = put(phi1_d), put(phi2_d)
    state = jax.tree.map(put, state)
  else:
    phi1_d, phi2_d = jnp.asarray(phi1_d), jnp.asarray(phi2_d)
  step = lambda st: outer_step_jit(st, phi1_d, phi2_d, config=config, mesh=mesh)
  return run_loop(step, state, config.num_iters, desc="HUME",
                  metrics=lambda m: {f: float(v) for f, v in m._asdict().items()},
                  predict=lambda st: predict(st.encoder, phi1_d),
                  finite=lambda st: bool(jnp.all(jnp.isfinite(st.encoder.raw))), labels=labels,
                  log_every=log_every, progress=progress, on_log=on_log, checkpoint_every=checkpoint_every,
                  on_checkpoint=on_checkpoint)
