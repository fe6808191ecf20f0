"""HUME's training loop: one jitted outer step, run ``num_iters`` times, then predictions.

    state, history = fit(phi1, phi2, HumeConfig(k=10))
    labels = predict(state.encoder, phi1)

The jit boundary is here: ``outer_step_jit`` is compiled once per process for each config
(all but its ``seed`` and ``num_iters``: ``hume_jax.config``), execution, mesh, shapes and dtypes,
and shared by every caller (``fit``, the runs of ``hume_jax.search.auto``, the CLI's repeated fits).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hume_jax.config import HumeConfig, check_config
from hume_jax.core._outer import SUBSET_AXIS, StepMetrics, TrainState, init_state, outer_step
from hume_jax.core._plan import Execution, check_execution
from hume_jax.core._task_encoder import TaskEncoder, task_logits
from hume_jax.io.data import check_fit_inputs
from hume_jax.training._loop import run_loop
from hume_jax.training.hooks import Hooks, hooks_of


def release_compiled() -> None:
  """Drops every compiled program of this process (``jax.clear_caches``), for loops over K.

  Each K has its own shapes, so the programs one K compiled are never run again, while each
  holds its code in about a hundred memory maps: a search over 14 values of K grew a process by
  about 1,000 maps per K, and at the kernel's limit of 65,530 the next compile fails ("LLVM
  compilation error: Cannot allocate memory") and the process dies. After a release the next
  call compiles again (a few seconds).
  """
  jax.clear_caches()


_outer_step_jit = jax.jit(outer_step, static_argnames=("mesh", "execution"))


def outer_step_jit(
  state: TrainState,
  phi1: jax.Array,
  phi2: jax.Array,
  *,
  config: HumeConfig,
  mesh: jax.sharding.Mesh | None = None,
  execution: Execution = Execution(),
) -> tuple[TrainState, StepMetrics]:
  """``outer_step`` compiled once per process for each config, execution, mesh, shapes and dtypes:
  runs that differ only in ``seed`` or ``num_iters``, which the step never reads (the key and the
  iteration live in the state; ``config`` traces them), share one compile (fit_auto's starts and
  orders of the spaces, seeds run one after another, the CLI's repeated fits)."""
  return _outer_step_jit(state, phi1, phi2, config=config, mesh=mesh, execution=execution)


def check_devices(config: HumeConfig, execution: Execution = Execution()) -> None:
  """Under ``jax.distributed`` the subsets of a chunk are split over every device of every process."""
  chunk = execution.subset_chunk or config.num_subsets
  if jax.process_count() > 1 and chunk % jax.device_count():
    raise ValueError(
      f"num_subsets (or subset_chunk) = {chunk} must be a multiple of the "
      f"{jax.device_count()} devices of all processes, which the subsets are split over"
    )


def subset_devices(config: HumeConfig, execution: Execution = Execution()) -> list:
  """The devices the subsets are split over: all of them under ``jax.distributed``; on one
  host, as many as evenly divide the subsets of a chunk (e.g. 5 of 8 GPUs for 20 subsets)."""
  devices = jax.devices()
  if jax.process_count() > 1:
    return devices
  chunk = execution.subset_chunk or config.num_subsets
  return devices[: max(d for d in range(1, len(devices) + 1) if chunk % d == 0)]


def compute_dtype(phi: np.ndarray) -> np.dtype:
  """float32, or float64 when ``phi`` is float64 and ``jax_enable_x64`` is on."""
  if np.asarray(phi).dtype == np.float64 and jax.config.jax_enable_x64:
    return np.dtype(np.float64)
  return np.dtype(np.float32)


PREDICT_ROWS = 65_536


def predict(encoder: TaskEncoder, phi1: np.ndarray | jax.Array) -> np.ndarray:
  """Hard labels ``argmax(phi1 @ E^T)`` of shape ``[n]`` (phi1 L2-normalised like in training), in
  batches of ``PREDICT_ROWS`` rows so that memory stays ``PREDICT_ROWS x k`` at any n."""
  if len(phi1) <= PREDICT_ROWS:
    return np.asarray(jnp.argmax(task_logits(encoder, jnp.asarray(phi1)), axis=-1))
  return np.concatenate([predict(encoder, phi1[i : i + PREDICT_ROWS]) for i in range(0, len(phi1), PREDICT_ROWS)])


def _placed(phi1, phi2, state, config: HumeConfig, execution: Execution):
  """Inputs and state on the devices the subsets are split over: ``(phi1, phi2, state, mesh)``.
  With several devices (of every process under ``jax.distributed``) data and state are
  replicated and each process holds the full inputs."""
  dtype = compute_dtype(phi1)
  phi1_d, phi2_d = np.asarray(phi1, dtype), np.asarray(phi2, dtype)
  devices = subset_devices(config, execution)
  if len(devices) == 1:
    return jnp.asarray(phi1_d), jnp.asarray(phi2_d), state, None
  mesh = jax.sharding.Mesh(np.array(devices), (SUBSET_AXIS,))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  put = lambda x: jax.make_array_from_process_local_data(replicated, np.asarray(x))
  return put(phi1_d), put(phi2_d), jax.tree.map(put, state), mesh


def fit(
  phi1: np.ndarray,
  phi2: np.ndarray,
  config: HumeConfig,
  *,
  labels: np.ndarray | None = None,
  state: TrainState | None = None,
  execution: Execution = Execution(),
  hooks: Hooks | None = None,
  **fields,
) -> tuple[TrainState, list[dict]]:
  """Runs HUME: ``config.num_iters`` outer iterations from the seed's initialisation.

  Args:
    phi1: ``[n, d1]`` representation for the task encoder, already L2-normalised.
    phi2: ``[n, d2]`` representation for the inner classifier.
    config: hyperparameters; ``config.seed`` draws the initialisation and every subset.
    labels: optional ``[n]`` ground truth, only to report accuracy while training.
    state: start from this state (a checkpoint) instead of the seed's initialisation.
    execution: how each step is scheduled (``hume_jax.core._plan.Execution``: subset chunks, remat, row
      blocks, row masks); the same result.
    hooks: how the loop is watched and steered (``hume_jax.training.hooks.Hooks``): ``log_every`` (10),
      ``progress``, ``on_log``, ``checkpoint_every`` and ``on_checkpoint`` (also called at the end and on a
      stop or ``KeyboardInterrupt``), ``stop``, ``deadline``, ``on_estimate``.
    **fields: fields of ``hooks`` replaced (``fit(..., progress=False)``).

  Returns:
    ``(final state, log records)``.

  Raises:
    ValueError: on inputs or hyperparameters that cannot define a run (before any compute).
    FloatingPointError: on a non-finite loss (found at a log or checkpoint step).
  """
  check_fit_inputs(phi1, phi2, labels)
  n, d1 = phi1.shape
  check_config(config, n, d1)
  check_execution(execution, config)
  check_devices(config, execution)
  if state is None:
    state = init_state(jax.random.PRNGKey(config.seed), config, d1, phi2.shape[1], compute_dtype(phi1))
  phi1_d, phi2_d, state, mesh = _placed(phi1, phi2, state, config, execution)
  step = lambda st: outer_step_jit(st, phi1_d, phi2_d, config=config, mesh=mesh, execution=execution)
  metrics = lambda m: {f: float(v) for f, v in m._asdict().items()}
  finite = lambda st: bool(jnp.all(jnp.isfinite(st.encoder.raw)))
  predicted = lambda st: predict(st.encoder, phi1_d)
  return run_loop(
    step,
    state,
    config.num_iters,
    desc="HUME",
    metrics=metrics,
    predict=predicted,
    finite=finite,
    labels=labels,
    hooks=hooks_of(hooks, fields),
  )
