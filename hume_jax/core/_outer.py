"""One outer iteration of HUME: subsets, hypergradient, clipping, Adam, annealing.

``outer_step`` is pure; the caller owns ``jax.jit`` (``hume_jax.training._fit.outer_step_jit``). The
iteration number lives in the state, so annealing never recompiles.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hume_jax.config import HumeConfig
from hume_jax.core._inner import Linear, init_linear
from hume_jax.core._objective import draw_subsets, hume_loss, hume_loss_shared_rows, init_inner
from hume_jax.core._plan import Execution, execution_plan
from hume_jax.core._task_encoder import TaskEncoder, init_task_encoder


class TrainState(NamedTuple):
  """State of one HUME run.

  Attributes:
    encoder: task encoder (``raw [d1, k]`` trained, ``base [d1, d1]`` fixed).
    opt_state: optimiser state of ``encoder.raw``.
    w0: fixed inner init ``W [d2, k]``, ``b [k]`` (used when ``rand_init`` is off).
    key: ``[2]`` key of the run; iteration ``i`` uses ``fold_in(key, i)``.
    step: ``int32 []`` number of outer iterations done.
  """

  encoder: TaskEncoder
  opt_state: optax.OptState
  w0: Linear
  key: jax.Array
  step: jax.Array


def clip_grad_norm(max_norm: float, eps: float = 1e-6) -> optax.GradientTransformation:
  """PyTorch's ``clip_grad_norm_``, which the official code calls: every gradient is scaled by
  ``min(1, max_norm / (||g|| + eps))``, ``||g||`` the global norm.

  ``optax.clip_by_global_norm`` divides by ``||g||`` without ``eps`` and leaves gradients
  with ``||g|| <= max_norm`` alone; the two differ by about ``eps / ||g||`` relative, which
  moves the trajectory by ~1e-8 from the second iteration on.
  """

  def update(updates, state, params=None):
    del params
    norm = optax.tree.norm(updates)
    scale = jnp.minimum(1.0, max_norm / (norm + eps))
    return jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: HumeConfig) -> optax.GradientTransformation:
  """Clip by global norm (the official formula), then Adam's direction; the (annealed) step
  size is applied apart."""
  return optax.chain(clip_grad_norm(config.clip_norm), optax.scale_by_adam(eps=1e-8))


def anneal_factor(step: jax.Array, config: HumeConfig) -> jax.Array:
  """``gamma ** (number of milestones <= step)``; 1 without annealing.

  Multiplies both the outer learning rate and ``tau`` (official ``MultiStepLR`` with the
  temperature divided by 10 whenever the learning rate changes).
  """
  if not config.anneal or not config.milestones:
    return jnp.ones(())
  passed = jnp.sum(step >= jnp.asarray(config.milestones))
  return jnp.asarray(config.gamma) ** passed


def init_state(key: jax.Array, config: HumeConfig, d1: int, d2: int, dtype=jnp.float32) -> TrainState:
  """Draws the task encoder and the fixed inner init of a run from ``key``."""
  k_enc, k_w0, k_run = jax.random.split(key, 3)
  encoder = init_task_encoder(k_enc, config.k, d1, dtype)
  return TrainState(
    encoder=encoder,
    opt_state=make_optimizer(config).init(encoder.raw),
    w0=init_linear(k_w0, d2, config.k, dtype),
    key=k_run,
    step=jnp.zeros((), jnp.int32),
  )


class StepMetrics(NamedTuple):
  loss: jax.Array  # mean HUME loss over subsets (Eq. 7)
  test_error: jax.Array  # mean held-out CE of the inner classifiers
  entropy: jax.Array  # mean entropy of the label distribution
  grad_norm: jax.Array  # global norm of the hypergradient before clipping
  tau: jax.Array  # temperature used at this iteration
  lr: jax.Array  # outer learning rate used at this iteration


SUBSET_AXIS = "subsets"


def outer_step(
  state: TrainState,
  phi1: jax.Array,
  phi2: jax.Array,
  *,
  config: HumeConfig,
  mesh: jax.sharding.Mesh | None = None,
  execution: Execution = Execution(),
) -> tuple[TrainState, StepMetrics]:
  """One outer iteration.

  Args:
    state: the run's state.
    phi1: ``[n, d1]`` L2-normalised representation for the task encoder.
    phi2: ``[n, d2]`` representation for the inner classifier.
    config: hyperparameters (static but for ``seed`` and ``num_iters``, which the step never reads:
      the key and the iteration live in the state).
    execution: how the step is scheduled (``hume_jax.core._plan.Execution``; static); same result.
    mesh: optional device mesh with axis ``"subsets"``: the S subsets (independent) are
      split over its devices, the data and state replicated; XLA sums the hypergradient
      across devices. ``None``: one device.

  Returns:
    ``(new state, metrics of this iteration)``.
  """
  n, d2 = phi2.shape
  m, n_train = config.subset_sizes(n)
  factor = anneal_factor(state.step, config)
  tau = (config.tau * factor).astype(phi1.dtype)
  lr = (config.outer_lr * factor).astype(state.encoder.raw.dtype)
  k_sub, k_init = jax.random.split(jax.random.fold_in(state.key, state.step))
  subsets = draw_subsets(k_sub, n, config.num_subsets, m)
  w0 = init_inner(k_init, config.num_subsets, d2, config.k, phi2.dtype) if config.rand_init else state.w0
  plan = execution_plan(config, n, d2, phi2.dtype.itemsize, mesh, execution)

  shard = _sharding(mesh)
  loss_fn = _loss_fn(state.encoder, phi1, phi2, config, plan, execution.remat, tau, n_train)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if plan.chunk >= config.num_subsets:
    w0 = jax.tree.map(lambda x: shard(x, 0), w0) if config.rand_init else w0
    (loss, stats), grad = grad_fn(state.encoder.raw, shard(subsets, 0), w0)
  else:
    loss, stats, grad = _accumulated_value_and_grad(
      grad_fn, state.encoder.raw, subsets, w0, plan.chunk, config, shard, phi1.dtype
    )
  updates, opt_state = make_optimizer(config).update(grad, state.opt_state, state.encoder.raw)
  raw = state.encoder.raw - lr * updates
  metrics = StepMetrics(loss, jnp.mean(stats.test_error), jnp.mean(stats.entropy), optax.tree.norm(grad), tau, lr)
  new_state = state._replace(encoder=state.encoder._replace(raw=raw), opt_state=opt_state, step=state.step + 1)
  return new_state, metrics


def _sharding(mesh):
  """``shard(x, axis)``: axis ``axis`` of ``x`` (the subsets) split over the mesh (identity without one)."""

  def shard(x, axis):
    if mesh is None:
      return x
    spec = jax.sharding.PartitionSpec(*([None] * axis + [SUBSET_AXIS]))
    return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(mesh, spec))

  return shard


def _loss_fn(encoder, phi1, phi2, config: HumeConfig, plan, remat: bool, tau, n_train: int):
  """``(raw, subsets, w0) -> (mean loss over the subsets (Eq. 7), SubsetStats)`` in the plan's form."""
  prior = None if config.prior is None else jnp.asarray(config.prior, phi1.dtype)
  kw = dict(n_train=n_train, tau=tau, inner_lr=config.inner_lr, steps=config.adaptation_steps, H_reg=config.H_reg)
  kw.update(prior=prior)

  def loss_fn(raw, subsets, w0):
    if plan.shared:
      return hume_loss_shared_rows(encoder._replace(raw=raw), phi1, phi2, subsets, w0, remat=remat, **kw)
    return hume_loss(encoder._replace(raw=raw), phi1, phi2, subsets, w0, row_block=plan.row_block, remat=remat, **kw)

  return loss_fn


def _accumulated_value_and_grad(grad_fn, raw, subsets, w0, chunk, config: HumeConfig, shard, loss_dtype):
  """``grad_fn`` (value, stats and gradient of the mean loss over subsets) accumulated over
  chunks of ``chunk`` subsets: only one chunk's residuals are alive at a time. The mean over
  equal chunks of per-chunk means is the mean over all subsets."""
  num_chunks = config.num_subsets // chunk
  split = lambda x: shard(x.reshape((num_chunks, chunk) + x.shape[1:]), 1)
  xs = (split(subsets), jax.tree.map(split, w0) if config.rand_init else None)

  def accumulate(acc, x):
    w0_chunk = x[1] if config.rand_init else w0
    (chunk_loss, st), g = grad_fn(raw, x[0], w0_chunk)
    return (acc[0] + chunk_loss, acc[1] + g), st

  zeros = (jnp.zeros((), loss_dtype), jnp.zeros_like(raw))
  (loss, grad), stats = jax.lax.scan(accumulate, zeros, xs)
  stats = jax.tree.map(lambda x: x.reshape((config.num_subsets,) + x.shape[2:]), stats)
  return loss / num_chunks, stats, grad / num_chunks
