"""The JAX objective, hypergradient and outer loop against an independent PyTorch one (float64)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_reference as torch_hume  # noqa: E402, I001  (benchmarks/ is on pytest's pythonpath)

from hume_jax import HumeConfig, TaskEncoder, draw_subsets, encoder_matrix, hume_loss  # noqa: E402
from hume_jax import init_inner, init_state, outer_step  # noqa: E402

N, D1, D2, K = 120, 12, 16, 4
S, M = 3, 60
N_TRAIN = int(M * 0.9)


def _data(seed=0):
  rng = np.random.default_rng(seed)
  phi1 = rng.normal(size=(N, D1))
  phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
  phi2 = rng.normal(size=(N, D2))
  return phi1, phi2


def _torch_encoder(seed=0):
  torch.manual_seed(seed)
  enc = torch_hume.make_task_encoder(D1, K).double()
  # Move away from the initial point so that the Householder part is not trivial.
  with torch.no_grad():
    # Only the strictly lower part of original^T is a parameter; its diagonal holds signs.
    noise = torch.tril(torch.randn(D1, K, dtype=torch.float64), -1).T
    enc.parametrizations.weight.original.add_(0.3 * noise)
  return enc


def _to_jax(enc) -> TaskEncoder:
  p = enc.parametrizations.weight
  return TaskEncoder(raw=jnp.asarray(p.original.detach().numpy().T), base=jnp.asarray(p[0].base.numpy()))


def _inits(key):
  w0 = init_inner(key, S, D2, K, jnp.float64)
  torch_inits = [(torch.from_numpy(np.array(w0.W[s]).T.copy()), torch.from_numpy(np.array(w0.b[s]))) for s in range(S)]
  return w0, torch_inits


def test_encoder_matrix_matches_torch_orthogonal():
  enc = _torch_encoder()
  E = np.asarray(encoder_matrix(_to_jax(enc)))
  np.testing.assert_allclose(E, enc.weight.detach().numpy(), rtol=0, atol=1e-12)
  np.testing.assert_allclose(E @ E.T, np.eye(K), atol=1e-6)  # base was drawn in float32


@pytest.mark.parametrize("steps", [1, 5, 50])
@pytest.mark.parametrize("tau", [0.1, 0.01])  # 0.01: tau after the first annealing milestone
def test_loss_and_hypergradient_match_torch(steps, tau):
  phi1, phi2 = _data()
  enc = _torch_encoder()
  key_sub, key_init = jax.random.split(jax.random.PRNGKey(steps))
  subsets = draw_subsets(key_sub, N, S, M)
  w0, torch_inits = _inits(key_init)
  kw = dict(tau=tau, inner_lr=0.5, steps=steps, H_reg=10.0)

  loss_t = torch_hume.hume_loss(
    enc, torch.from_numpy(phi1), torch.from_numpy(phi2), torch.from_numpy(np.array(subsets)), N_TRAIN, torch_inits, **kw
  )
  loss_t.backward()
  grad_t = enc.parametrizations.weight.original.grad.numpy().T

  params = _to_jax(enc)

  def loss_fn(raw):
    return hume_loss(
      params._replace(raw=raw), jnp.asarray(phi1), jnp.asarray(phi2), subsets, w0, n_train=N_TRAIN, **kw
    )[0]

  loss_j, grad_j = jax.value_and_grad(loss_fn)(params.raw)
  np.testing.assert_allclose(float(loss_j), loss_t.item(), rtol=1e-12)  # float64 rounding, not a tolerance
  assert np.linalg.norm(grad_t) > 1e-3  # the check below is not vacuous
  # The gradient's scale compared directly (Adam would hide a constant factor), then its direction.
  assert np.linalg.norm(grad_j) / np.linalg.norm(grad_t) == pytest.approx(1, abs=1e-10)
  rel = np.linalg.norm(np.asarray(grad_j) - grad_t) / np.linalg.norm(grad_t)
  assert rel <= 1e-10, rel


@pytest.mark.parametrize("rand_init", [True, False])
def test_outer_iterations_match_torch(rand_init):
  """Six outer iterations crossing two annealing milestones give the same encoder."""
  phi1, phi2 = _data(1)
  cfg = HumeConfig(
    k=K,
    num_subsets=S,
    subset_size=M,
    adaptation_steps=5,
    inner_lr=0.5,
    outer_lr=0.05,
    milestones=(2, 4),
    rand_init=rand_init,
    seed=3,
  )
  state = init_state(jax.random.PRNGKey(cfg.seed), cfg, D1, D2, jnp.float64)
  enc = torch_hume.make_task_encoder(D1, K).double()
  p = enc.parametrizations.weight
  with torch.no_grad():  # start both from the JAX draw
    p.original.copy_(torch.from_numpy(np.array(state.encoder.raw).T))
    p[0].base.copy_(torch.from_numpy(np.array(state.encoder.base)))

  step = jax.jit(functools.partial(outer_step, config=cfg))
  batches = []
  for i in range(6):
    # Same draws as outer_step makes internally.
    k_sub, k_init = jax.random.split(jax.random.fold_in(state.key, i))
    subsets = draw_subsets(k_sub, N, S, M)
    if rand_init:
      _, inits = _inits(k_init)
    else:
      inits = [(torch.from_numpy(np.array(state.w0.W).T.copy()), torch.from_numpy(np.array(state.w0.b)))] * S
    batches.append((torch.from_numpy(np.array(subsets)), inits))
  for _ in range(6):
    state, _ = step(state, jnp.asarray(phi1), jnp.asarray(phi2))

  torch_hume.train(
    enc,
    torch.from_numpy(phi1),
    torch.from_numpy(phi2),
    batches,
    N_TRAIN,
    outer_lr=cfg.outer_lr,
    tau=cfg.tau,
    inner_lr=cfg.inner_lr,
    steps=cfg.adaptation_steps,
    H_reg=cfg.H_reg,
    milestones=cfg.milestones,
  )
  E_t = enc.weight.detach().numpy()
  E_j = np.asarray(encoder_matrix(state.encoder))
  E_0 = np.asarray(state.encoder.base[:, :K].T)
  assert np.abs(E_t - E_0).max() > 1e-3  # the encoder did move
  np.testing.assert_allclose(E_j, E_t, rtol=0, atol=1e-10)  # the same clipping formula: float64 rounding only
