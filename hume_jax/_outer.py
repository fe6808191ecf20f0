"""One outer iteration of HUME: subsets, hypergradient, clipping, Adam, annealing.

``outer_step_jit`` is the step compiled once per process for each config and shapes; the
iteration number lives in the state, so annealing never recompiles.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hume_jax._inner import Linear, init_linear
from hume_jax._objective import draw_subsets, hume_loss, hume_loss_shared_rows, init_inner
from hume_jax._task_encoder import TaskEncoder, init_task_encoder
from hume_jax.config import HumeConfig


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
  return TrainState(encoder=encoder, opt_state=make_optimizer(config).init(encoder.raw),
                    w0=init_linear(k_w0, d2, config.k, dtype), key=k_run,
                    step=jnp.zeros((), jnp.int32))


class StepMetrics(NamedTuple):
  loss: jax.Array        # mean HUME loss over subsets (Eq. 7)
  test_error: jax.Array  # mean held-out CE of the inner classifiers
  entropy: jax.Array     # mean entropy of the label distribution
  grad_norm: jax.Array   # global norm of the hypergradient before clipping
  tau: jax.Array         # temperature used at this iteration
  lr: jax.Array          # outer learning rate used at this iteration


SUBSET_AXIS = "subsets"


def outer_step(state: TrainState, phi1: jax.Array, phi2: jax.Array, *,
               config: HumeConfig, mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, StepMetrics]:
  """One outer iteration.

  Args:
    state: the run's state.
    phi1: ``[n, d1]`` L2-normalised representation for the task encoder.
    phi2: ``[n, d2]`` representation for the inner classifier.
    config: hyperparameters (static).
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
  w0 = (init_inner(k_init, config.num_subsets, d2, config.k, phi2.dtype)
        if config.rand_init else state.w0)
  chunk, row_block, shared = execution_plan(config, n, d2, phi2.dtype.itemsize, mesh)

  def shard(x, axis):  # split axis `axis` (the subsets) over the mesh
    if mesh is None:
      return x
    spec = jax.sharding.PartitionSpec(*([None] * axis + [SUBSET_AXIS]))
    return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(mesh, spec))

  def loss_fn(raw, subsets, w0):
    encoder = state.encoder._replace(raw=raw)
    kw = dict(n_train=n_train, tau=tau, inner_lr=config.inner_lr, steps=config.adaptation_steps,
              H_reg=config.H_reg, remat=config.remat)
    if shared:
      return hume_loss_shared_rows(encoder, phi1, phi2, subsets, w0, **kw)
    return hume_loss(encoder, phi1, phi2, subsets, w0, row_block=row_block, **kw)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if chunk >= config.num_subsets:
    w0 = jax.tree.map(lambda x: shard(x, 0), w0) if config.rand_init else w0
    (loss, stats), grad = grad_fn(state.encoder.raw, shard(subsets, 0), w0)
  else:
    # Gradient accumulation over chunks of subsets: only one chunk's residuals are alive at
    # a time. The mean over equal chunks of per-chunk means is the mean over all subsets.
    num_chunks = config.num_subsets // chunk
    split = lambda x: shard(x.reshape((num_chunks, chunk) + x.shape[1:]), 1)
    xs = (split(subsets), jax.tree.map(split, w0) if config.rand_init else None)

    def accumulate(acc, x):
      w0_chunk = x[1] if config.rand_init else w0
      (l, st), g = grad_fn(state.encoder.raw, x[0], w0_chunk)
      return (acc[0] + l, acc[1] + g), st

    zeros = (jnp.zeros((), phi1.dtype), jnp.zeros_like(state.encoder.raw))
    (loss, grad), stats = jax.lax.scan(accumulate, zeros, xs)
    loss, grad = loss / num_chunks, grad / num_chunks
    stats = jax.tree.map(lambda x: x.reshape((config.num_subsets,) + x.shape[2:]), stats)
  updates, opt_state = make_optimizer(config).update(grad, state.opt_state, state.encoder.raw)
  raw = state.encoder.raw - lr * updates
  metrics = StepMetrics(loss=loss, test_error=jnp.mean(stats.test_error),
                        entropy=jnp.mean(stats.entropy), grad_norm=optax.tree.norm(grad),
                        tau=tau, lr=lr)
  new_state = state._replace(encoder=state.encoder._replace(raw=raw), opt_state=opt_state,
                             step=state.step + 1)
  return new_state, metrics


def step_config(config: HumeConfig) -> HumeConfig:
  """``config`` with the fields the step never reads (``seed``, ``num_iters``) at fixed values."""
  return dataclasses.replace(config, seed=0, num_iters=1)


_outer_step_jit = jax.jit(outer_step, static_argnames=("config", "mesh"))


def outer_step_jit(state: TrainState, phi1: jax.Array, phi2: jax.Array, *,
                   config: HumeConfig, mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, StepMetrics]:
  """``outer_step`` compiled once per process for each step-relevant config, mesh, shapes and
  dtypes: runs that differ only in ``seed`` or ``num_iters``, which the step never reads (the
  key and the iteration live in the state), share one compile (fit_auto's starts and orders
  of the spaces, seeds run one after another, the CLI's repeated fits)."""
  return _outer_step_jit(state, phi1, phi2, config=step_config(config), mesh=mesh)


CPU_ROW_BLOCK = 128  # rows of phi2 per block on a CPU: 128 x d2 floats stay in L2 (measured best)
CPU_BLOCKED_ABOVE = 4 * 2**20  # bytes of one subset's inner block beyond which one CPU thread walks row blocks
CPU_SHARED_COVERAGE = 0.8  # on a CPU, subsets of at least this share of the rows run as row masks
CPU_SHARED_WIDTH = 100  # ... with this many stacked classifier rows (subsets x k) per product


def cpu_threads() -> int:
  """CPU cores this process may run on (XLA's CPU thread pool is sized to them)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # no affinity masks on this platform
    return os.cpu_count() or 1


def execution_plan(config: HumeConfig, n: int, d2: int, itemsize: int = 4, mesh=None) -> tuple[int, int, bool]:
  """``(subsets per chunk, rows per block, shared rows)`` for this backend and size; none of
  them changes the result.

  On accelerators all subsets run at once (vmapped, batched) with whole-matrix products.
  On a CPU, measured in ``benchmarks/README.md``:

  - when each subset covers most of the ``n`` rows (``m >= 0.8 n``, e.g. the official
    subsets of 10,000 rows on 10,000 samples), the subsets run in chunks as row masks over
    all rows (``hume_loss_shared_rows``), their ``k``-row classifiers stacked into products
    about ``CPU_SHARED_WIDTH`` rows wide, which run near the machine's matmul rate while
    ``k = 10``-row products reach half of it;
  - otherwise the subsets run one at a time: a ``vmap`` makes every inner product a batched
    ``dot_general``, which XLA's CPU backend runs slower than the same products one by one
    (one core: 0.19 against 0.30 CPU s per outer iteration of the default run; equal on
    two). With a single CPU thread, once one subset's inner block ``[n_train, d2]``
    outgrows ``CPU_BLOCKED_ABOVE`` bytes (about an L2 cache), each inner step also walks
    ``phi2`` in L2-sized row blocks (paper-sized subsets without row masks, T 30: 8.6
    against 16.1 s per outer iteration). With more threads the whole-matrix products are
    split over them and row blocks, each too small to split, are twice as slow (two
    threads: 6.9 against 12.6 s there; 0.95 against 1.90 s at raw 1024/1280-d inputs with
    the cpu preset).

  ``config.subset_chunk`` / ``config.row_block`` / ``config.shared_rows`` override the
  choice; with a device mesh the subsets stay together so that they can be split over its
  devices.
  """
  m, n_train = config.subset_sizes(n)
  cpu = jax.default_backend() == "cpu" and mesh is None
  S = config.num_subsets
  if config.shared_rows >= 0:
    shared = bool(config.shared_rows)
  else:
    shared = cpu and S > 1 and m >= CPU_SHARED_COVERAGE * n and config.k < CPU_SHARED_WIDTH
  if shared:
    wide = [c for c in range(1, S + 1) if S % c == 0 and c * config.k >= CPU_SHARED_WIDTH]
    chunk = config.subset_chunk or (min(wide) if wide and cpu else S)
    return chunk, 0, True
  blocked = cpu and cpu_threads() == 1 and n_train * d2 * itemsize > CPU_BLOCKED_ABOVE
  chunk = config.subset_chunk or (1 if cpu else S)
  row_block = config.row_block if config.row_block >= 0 else (CPU_ROW_BLOCK if blocked else 0)
  return chunk, row_block, False
