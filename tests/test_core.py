"""Task encoder, inner solver and objective against closed forms and independent references."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hume_jax import (
  Execution,
  HumeConfig,
  Linear,
  anneal_factor,
  cross_entropy_grad,
  draw_subsets,
  encoder_matrix,
  entropy,
  fit,
  init_linear,
  init_state,
  init_task_encoder,
  inner_sgd,
  outer_step,
  soft_cross_entropy,
)


def test_householder_product_matches_lapack():
  from hume_jax.core._task_encoder import householder_product

  a = jax.random.normal(jax.random.PRNGKey(0), (9, 4))
  tau = 2 / (1 + jnp.sum(jnp.tril(a, -1) ** 2, 0))
  ref = jax.lax.linalg.householder_product(jnp.tril(a, -1) + jnp.eye(9, 4), tau)
  np.testing.assert_allclose(householder_product(a, tau), ref, atol=1e-12)
  # and with arbitrary tau (not exact reflections)
  tau2 = jnp.array([0.3, 1.1, 1.7, 0.2])
  np.testing.assert_allclose(
    householder_product(a, tau2), jax.lax.linalg.householder_product(jnp.tril(a, -1) + jnp.eye(9, 4), tau2), atol=1e-12
  )


def test_encoder_rows_orthonormal_and_init_is_gram_schmidt():
  key = jax.random.PRNGKey(1)
  enc = init_task_encoder(key, 5, 20, jnp.float64)
  E0 = encoder_matrix(enc)
  np.testing.assert_allclose(E0, enc.base[:, :5].T, atol=1e-12)
  # base's first columns orthonormalise the nn.Linear-style draw U(-1/sqrt(d1), 1/sqrt(d1))
  w = jax.random.uniform(jax.random.split(key)[0], (5, 20), jnp.float64, -(20**-0.5), 20**-0.5)
  q, r = np.linalg.qr(np.asarray(w).T)
  np.testing.assert_allclose(E0, (q * np.sign(np.diag(r))).T, atol=1e-12)
  raw = enc.raw + jnp.tril(jax.random.normal(key, enc.raw.shape), -1)
  E = encoder_matrix(enc._replace(raw=raw))
  np.testing.assert_allclose(E @ E.T, np.eye(5), atol=1e-12)
  assert np.abs(E - E0).max() > 0.1
  with pytest.raises(ValueError, match="k <= d1"):
    init_task_encoder(key, 30, 20)


def test_linear_init_bounds():
  w = init_linear(jax.random.PRNGKey(0), 400, 10)
  assert w.W.shape == (400, 10) and w.b.shape == (10,)
  assert np.abs(w.W).max() <= 0.05 and np.abs(w.W).max() > 0.045  # U(-1/20, 1/20)
  assert np.abs(w.b).max() <= 0.05


def test_cross_entropy_grad_matches_autodiff():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(2), 3)
  phi2 = jax.random.normal(k1, (30, 7))
  y = jax.nn.softmax(jax.random.normal(k2, (30, 4)) * 3)
  w = init_linear(k3, 7, 4, jnp.float64)
  auto = jax.grad(lambda w: soft_cross_entropy(phi2 @ w.W + w.b[None, :], y))(w)
  manual = cross_entropy_grad(w, phi2, y)
  np.testing.assert_allclose(manual.W, auto.W, atol=1e-12)
  np.testing.assert_allclose(manual.b, auto.b, atol=1e-12)


def test_inner_sgd_is_plain_gradient_descent_and_differentiable():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(3), 3)
  phi2 = jax.random.normal(k1, (25, 6))
  y = jax.nn.softmax(jax.random.normal(k2, (25, 3)))
  w0 = init_linear(k3, 6, 3, jnp.float64)
  w = w0
  for _ in range(7):  # a Python loop with autodiff gradients: the independent reference
    g = jax.grad(lambda w: soft_cross_entropy(phi2 @ w.W + w.b[None, :], y))(w)
    w = Linear(w.W - 0.4 * g.W, w.b - 0.4 * g.b)
  out = inner_sgd(w0, phi2, y, 0.4, 7)
  np.testing.assert_allclose(out.W, w.W, atol=1e-12)
  # The hypergradient through the unroll matches a central difference along a direction.
  f = lambda y: soft_cross_entropy(phi2 @ inner_sgd(w0, phi2, y, 0.4, 7).W, y)
  d = jax.random.normal(k2, y.shape)
  eps = 1e-6
  fd = (f(y + eps * d) - f(y - eps * d)) / (2 * eps)
  np.testing.assert_allclose(jnp.vdot(jax.grad(f)(y), d), fd, rtol=1e-7)


def test_entropy():
  np.testing.assert_allclose(entropy(jnp.full(4, 0.25)), np.log(4))
  np.testing.assert_allclose(entropy(jnp.array([1.0, 0.0, 0.0])), 0.0)
  assert np.isfinite(jax.grad(lambda p: entropy(p))(jnp.array([0.5, 0.5, 0.0]))).all()


def test_draw_subsets_distinct_and_clipped():
  s = draw_subsets(jax.random.PRNGKey(0), 50, 4, 30)
  assert s.shape == (4, 30)
  assert all(len(np.unique(row)) == 30 for row in np.asarray(s))
  assert not np.array_equal(s[0], s[1])
  assert draw_subsets(jax.random.PRNGKey(0), 20, 2, 100).shape == (2, 20)  # clipped to n


def test_anneal_factor():
  cfg = HumeConfig()
  f = [float(anneal_factor(jnp.asarray(i), cfg)) for i in (0, 99, 100, 199, 200, 999)]
  np.testing.assert_allclose(f, [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  assert float(anneal_factor(jnp.asarray(500), HumeConfig(anneal=False))) == 1.0


def test_outer_step_compiles_once():
  """The step counter and annealing live in the state: iterations never recompile."""
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
    lambda event, _, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
  )
  cfg = HumeConfig(k=3, num_subsets=2, subset_size=40, adaptation_steps=3, milestones=(2, 4))
  rng = np.random.default_rng(0)
  phi1, phi2 = jnp.asarray(rng.normal(size=(60, 8)), jnp.float32), jnp.asarray(rng.normal(size=(60, 5)), jnp.float32)
  state = init_state(jax.random.PRNGKey(0), cfg, 8, 5)
  step = jax.jit(functools.partial(outer_step, config=cfg), donate_argnums=0)
  state, m = step(state, phi1, phi2)
  jax.block_until_ready(m)
  before = len(compiles)
  taus = []
  for _ in range(6):  # crosses both milestones
    state, m = step(state, phi1, phi2)
    taus.append(float(m.tau))
  jax.block_until_ready(m)
  assert before >= 1
  assert len(compiles) == before
  np.testing.assert_allclose(taus, [0.1, 0.01, 0.01, 0.001, 0.001, 0.001], rtol=1e-5)


def test_runs_that_differ_in_seed_or_length_share_one_compiled_step():
  """seed and num_iters are the config's traced fields (hume_jax.config): a second run with another seed and
  length compiles nothing, one with another tau compiles its own step, and each run still follows its seed."""
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
    lambda event, _, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
  )
  rng = np.random.default_rng(3)
  phi1 = rng.normal(size=(50, 6)).astype(np.float32)
  phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
  phi2 = rng.normal(size=(50, 7)).astype(np.float32)
  cfg = HumeConfig(k=3, num_subsets=2, subset_size=30, adaptation_steps=2, num_iters=2, tau=0.37)
  first, _ = fit(phi1, phi2, cfg, progress=False)
  before = len(compiles)
  other, _ = fit(phi1, phi2, dataclasses.replace(cfg, seed=7, num_iters=3), progress=False)
  assert len(compiles) == before and int(other.step) == 3
  assert not np.allclose(other.encoder.raw, first.encoder.raw)
  fit(phi1, phi2, dataclasses.replace(cfg, tau=0.38), progress=False)
  assert len(compiles) > before


@pytest.mark.parametrize("rand_init", [True, False])
def test_chunked_and_rematerialised_steps_give_the_same_update(rand_init):
  rng = np.random.default_rng(1)
  phi1 = jnp.asarray(rng.normal(size=(80, 8)))
  phi1 = phi1 / jnp.linalg.norm(phi1, axis=1, keepdims=True)
  phi2 = jnp.asarray(rng.normal(size=(80, 6)))
  base = HumeConfig(
    k=3, num_subsets=4, subset_size=50, adaptation_steps=4, inner_lr=0.3, outer_lr=0.05, rand_init=rand_init
  )
  state = init_state(jax.random.PRNGKey(0), base, 8, 6, jnp.float64)
  # rand_init only changes how the subsets' inner inits are split into chunks; remat, row
  # blocks and subsets as row masks act inside the inner loop and are checked once, with it on
  # (row masks with a shared inner init are covered by the loss-level test below).
  plans = [dict(subset_chunk=2), dict(subset_chunk=1, remat=True)]
  if rand_init:
    plans += [
      dict(),
      dict(subset_chunk=1, row_block=16),
      dict(row_block=7, remat=True),  # dict(): the CPU plan
      dict(shared_rows=1),
      dict(shared_rows=1, subset_chunk=2, remat=True),
    ]
  # The reference first: all four subsets at once, vmapped (the accelerators' plan). Every plan
  # is its own computation, compiled together in one program (one compile costs seconds).
  executions = [Execution(subset_chunk=4)] + [Execution(**plan) for plan in plans]
  step = lambda s, x1, x2: [outer_step(s, x1, x2, config=base, execution=e) for e in executions]
  (ref, m_ref), *outs = jax.jit(step)(state, phi1, phi2)
  for out, m in outs:
    np.testing.assert_allclose(out.encoder.raw, ref.encoder.raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.loss, m_ref.loss, rtol=1e-12)
    np.testing.assert_allclose(m.grad_norm, m_ref.grad_norm, rtol=1e-10)
  assert float(m_ref.grad_norm) > 1e-3


@pytest.mark.parametrize("m, shared_w0", [(60, False), (40, True)])
def test_subsets_as_row_masks_give_hume_loss_and_its_gradient(m, shared_w0):
  """hume_loss_shared_rows (all rows at once, subsets as masks, stacked classifiers) against
  hume_loss (each subset gathered), float64: subsets of all rows (m = n) and of some."""
  from hume_jax.core._objective import draw_subsets, hume_loss, hume_loss_shared_rows, init_inner
  from hume_jax.core._task_encoder import init_task_encoder

  rng = np.random.default_rng(0)
  phi1 = rng.normal(size=(60, 7))
  phi1 = jnp.asarray(phi1 / np.linalg.norm(phi1, axis=1, keepdims=True))
  phi2 = jnp.asarray(rng.normal(size=(60, 5)))
  encoder = init_task_encoder(jax.random.PRNGKey(1), 3, 7, jnp.float64)
  subsets = draw_subsets(jax.random.PRNGKey(2), 60, 4, m)
  w0 = (
    init_linear(jax.random.PRNGKey(3), 5, 3, jnp.float64)
    if shared_w0
    else init_inner(jax.random.PRNGKey(3), 4, 5, 3, jnp.float64)
  )
  kw = dict(n_train=int(m * 0.9), tau=0.3, inner_lr=0.5, steps=6, H_reg=2.0)
  results = [
    jax.jit(jax.value_and_grad(lambda raw: fn(encoder._replace(raw=raw), phi1, phi2, subsets, w0, **kw), has_aux=True))(
      encoder.raw
    )
    for fn in (hume_loss, hume_loss_shared_rows)
  ]
  ((l1, s1), g1), ((l2, s2), g2) = results
  np.testing.assert_allclose(l2, l1, rtol=1e-13)
  np.testing.assert_allclose(g2, g1, rtol=0, atol=1e-13)
  for a, b in zip(s1, s2):
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-13)
  assert float(jnp.abs(g1).max()) > 1e-2


def test_cpu_execution_plan(monkeypatch):
  """The CPU plan as measured (benchmarks/README.md): row masks for subsets covering most rows,
  otherwise one subset at a time; row blocks only on a single thread and past 16 MiB blocks."""
  from hume_jax.core import _plan
  from hume_jax.core._plan import CPU_ROW_BLOCK, execution_plan

  paper = HumeConfig(num_subsets=20, subset_size=10000)  # 10k-row subsets of 10k samples
  raw = HumeConfig(num_subsets=8, subset_size=2000)  # 1,800 training rows of 10k
  unmasked = (paper, Execution(shared_rows=0))  # 9,000 training rows
  given = (raw, Execution(row_block=64, subset_chunk=4))
  for threads, block in ((1, CPU_ROW_BLOCK), (2, 0)):
    monkeypatch.setattr(_plan, "cpu_threads", lambda: threads)
    assert execution_plan(paper, 10000, 768) == (10, 0, True)
    assert execution_plan(unmasked[0], 10000, 768, execution=unmasked[1]) == (1, block, False)  # 27.6 MB per block
    assert execution_plan(raw, 10000, 1280) == (1, 0, False)  # 9.2 MB: whole matrices
    assert execution_plan(raw, 10000, 256) == (1, 0, False)  # 1.8 MB: fits
    assert execution_plan(given[0], 10000, 1280, execution=given[1]) == (4, 64, False)


def _memory_of(problem: HumeConfig):
  """``step_memory_bytes`` and ``plan_memory`` of ``problem``, taking its ``Execution`` first."""
  from hume_jax.training import memory

  def step_memory_bytes(execution, *shape, **kw):
    return memory.step_memory_bytes(problem, *shape, execution=execution, **kw)

  def plan_memory(execution, *shape, **kw):
    return memory.plan_memory(problem, *shape, execution=execution, **kw)

  return step_memory_bytes, plan_memory


def test_memory_plan_escalates_until_it_fits():
  step_memory_bytes, plan_memory = _memory_of(HumeConfig(k=8, num_subsets=4, subset_size=2000, adaptation_steps=50))
  # All four subsets at once (the accelerators' plan; a CPU runs them one at a time by itself).
  cfg = Execution(subset_chunk=4)
  full = step_memory_bytes(cfg, 3000, 32, 64)
  remat = step_memory_bytes(dataclasses.replace(cfg, remat=True), 3000, 32, 64)
  assert remat < full
  assert plan_memory(cfg, 3000, 32, 64, budget=full)[0] == cfg
  assert plan_memory(cfg, 3000, 32, 64, budget=2**40) == (cfg, 0)  # far below: no compile
  plan, peak = plan_memory(cfg, 3000, 32, 64, budget=remat)
  assert plan.remat and plan.subset_chunk == 4 and peak <= remat
  plan, peak = plan_memory(cfg, 3000, 32, 64, budget=remat - 1)
  assert plan.remat and plan.subset_chunk in (1, 2) and peak < remat
  with pytest.raises(MemoryError, match="even with remat"):
    plan_memory(cfg, 3000, 32, 64, budget=1000)
  # The automatic CPU plan already runs one subset at a time: no larger chunk is offered.
  auto = dataclasses.replace(cfg, subset_chunk=0)
  one_remat = step_memory_bytes(dataclasses.replace(auto, remat=True), 3000, 32, 64)
  assert one_remat < remat
  with pytest.raises(MemoryError, match="even with remat"):
    plan_memory(auto, 3000, 32, 64, budget=one_remat - 1)


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize("row_block", [0, 16, 40, 64])  # 16: 3 blocks, the last padded; 64 > n
def test_inner_sgd_reverse_pass_matches_autodiff(remat, row_block):
  from hume_jax.core._inner import inner_sgd_autodiff

  k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(5), 4)
  phi2 = jax.random.normal(k1, (40, 7))
  y = jax.nn.softmax(jax.random.normal(k2, (40, 3)) * 2)
  w0 = init_linear(k3, 7, 3, jnp.float64)
  R = jax.random.normal(k4, (7, 3))
  for loss in (
    lambda w: jnp.sum(w.W * R) + jnp.sum(w.b**2),  # both outputs used
    lambda w: jnp.sum(w.W * R),
  ):  # b's cotangent is a symbolic zero
    fast = jax.grad(lambda y, w0: loss(inner_sgd(w0, phi2, y, 0.7, 9, remat, row_block)), argnums=(0, 1))(y, w0)
    ref = jax.grad(lambda y, w0: loss(inner_sgd_autodiff(w0, phi2, y, 0.7, 9)), argnums=(0, 1))(y, w0)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    w_fast, w_ref = inner_sgd(w0, phi2, y, 0.7, 9, remat, row_block), inner_sgd_autodiff(w0, phi2, y, 0.7, 9)
    np.testing.assert_allclose(w_fast.W, w_ref.W, rtol=1e-12)
    np.testing.assert_allclose(w_fast.b, w_ref.b, rtol=1e-12)
  with pytest.raises(NotImplementedError, match="phi2"):
    jax.grad(lambda p: jnp.sum(inner_sgd(w0, p, y, 0.7, 3).W))(phi2)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 1.0, 3.0, 1e4])
def test_clipping_is_pytorchs_clip_grad_norm(scale):
  torch = pytest.importorskip("torch")
  from hume_jax.core._outer import clip_grad_norm

  rng = np.random.default_rng(0)
  grads = [rng.normal(size=(7, 3)), rng.normal(size=(5,))]
  norm = np.sqrt(sum((g**2).sum() for g in grads))
  grads = [g * scale / norm for g in grads]  # global norm = scale
  tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
  for t, g in zip(tensors, grads):
    t.grad = torch.tensor(g)
  torch.nn.utils.clip_grad_norm_(tensors, 1.0)
  clipped, _ = clip_grad_norm(1.0).update([jnp.asarray(g) for g in grads], optax.EmptyState())
  for t, c in zip(tensors, clipped):
    np.testing.assert_allclose(np.asarray(c), t.grad.numpy(), rtol=1e-14, atol=0)


def test_memory_plan_covers_the_vmapped_seeds():
  step_memory_bytes, plan_memory = _memory_of(HumeConfig(k=8, num_subsets=4, subset_size=2000, adaptation_steps=50))
  cfg = Execution(subset_chunk=4)
  one = step_memory_bytes(cfg, 3000, 32, 64)
  five = step_memory_bytes(cfg, 3000, 32, 64, runs=5)
  five_remat = step_memory_bytes(dataclasses.replace(cfg, remat=True), 3000, 32, 64, runs=5)
  assert five > 3 * one and five > five_remat  # per-run activations scale with the runs vmapped together
  # A budget that fits one run but not five: planning one run (the old behaviour) keeps the
  # config as is, planning the compiled program does not.
  budget = max(one, five_remat)
  assert plan_memory(cfg, 3000, 32, 64, budget=budget)[0] == cfg
  plan, peak = plan_memory(cfg, 3000, 32, 64, budget=budget, runs=5)
  assert plan == dataclasses.replace(cfg, remat=True) and peak == five_remat


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize("row_block", [0, 8, 16, 40])  # 8 and 40 divide n = 40 evenly; 16 pads the last block
def test_inner_sgd_reverse_pass_in_float32_matches_float64_autodiff(remat, row_block):
  """Users run float32: the hand-written reverse pass in float32 against autodiff in float64
  (the oracle), at float32 tolerance relative to the gradient's scale."""
  from hume_jax.core._inner import inner_sgd_autodiff

  k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(6), 4)
  phi2 = jax.random.normal(k1, (40, 7))
  y = jax.nn.softmax(jax.random.normal(k2, (40, 3)) * 2)
  w0 = init_linear(k3, 7, 3, jnp.float64)
  R = jax.random.normal(k4, (7, 3))
  loss = lambda w: jnp.sum(w.W * R) + jnp.sum(w.b**2)
  f32 = lambda t: jax.tree.map(lambda a: a.astype(jnp.float32), t)
  fast = jax.grad(
    lambda y, w0: loss(inner_sgd(w0, phi2.astype(jnp.float32), y, 0.7, 9, remat, row_block)), argnums=(0, 1)
  )(y.astype(jnp.float32), f32(w0))
  ref = jax.grad(lambda y, w0: loss(inner_sgd_autodiff(w0, phi2, y, 0.7, 9)), argnums=(0, 1))(y, w0)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * float(jnp.max(jnp.abs(b))) + 1e-7)
