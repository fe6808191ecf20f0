"""Class-size priors: the prior's term of Eq. 7 against an independent NumPy form, finite
differences and the uniform prior's exact parity with the paper's entropy; priors from sizes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CFG

from hume_jax import HumeConfig, hungarian_accuracy
from hume_jax.config import check_config
from hume_jax.core._objective import draw_subsets, entropy, hume_loss, hume_loss_shared_rows, init_inner, size_term
from hume_jax.core._outer import init_state
from hume_jax.core._task_encoder import init_task_encoder, task_encoder_from
from hume_jax.search.conditioning import spherical_kmeans
from hume_jax.search.sizes import as_prior, exponential, from_partition, imbalance, short_classes
from hume_jax.training._fit import fit, predict


def numpy_size_term(p, prior):
  """``H(prior) - KL(p sorted largest first || prior)``, written out."""
  q = np.sort(np.asarray(p, np.float64))[::-1]
  prior = np.asarray(prior, np.float64)
  nz = q > 0
  return -np.sum(prior * np.log(prior)) - np.sum(q[nz] * np.log(q[nz] / prior[nz]))


def test_size_term_matches_numpy_and_finite_differences():
  p = jax.random.dirichlet(jax.random.PRNGKey(0), jnp.ones(6, jnp.float64))
  prior = jnp.asarray(exponential(6, 10.0))
  np.testing.assert_allclose(size_term(p, prior), numpy_size_term(p, prior), rtol=1e-12)
  g = jax.grad(size_term)(p, prior)
  eps = 1e-6
  for i in range(6):
    e = jnp.zeros(6).at[i].set(eps)
    fd = (size_term(p + e, prior) - size_term(p - e, prior)) / (2 * eps)
    np.testing.assert_allclose(g[i], fd, rtol=1e-6, atol=1e-9)


def test_size_term_is_largest_at_the_prior_in_any_order():
  prior = jnp.asarray(exponential(5, 10.0))
  at_prior = size_term(prior[jnp.array([3, 0, 4, 1, 2])], prior)  # the prior's sizes, classes in any order
  np.testing.assert_allclose(at_prior, entropy(prior), rtol=1e-12)
  others = jax.random.dirichlet(jax.random.PRNGKey(1), jnp.ones(5, jnp.float64), (200,))
  assert np.all(np.asarray(size_term(others, prior)) < float(at_prior))


def test_uniform_prior_is_the_papers_entropy_in_value_and_gradient():
  """The uniform prior's term equals H(p) exactly, so HUME's loss and hypergradient are unchanged."""
  rng = np.random.default_rng(0)
  n, d1, d2, k = 60, 8, 6, 4
  phi1 = rng.normal(size=(n, d1))
  phi1 /= np.linalg.norm(phi1, axis=1, keepdims=True)
  phi1, phi2 = jnp.asarray(phi1), jnp.asarray(rng.normal(size=(n, d2)))
  enc = init_task_encoder(jax.random.PRNGKey(0), k, d1, jnp.float64)
  subsets = draw_subsets(jax.random.PRNGKey(1), n, 3, 40)
  w0 = init_inner(jax.random.PRNGKey(2), 3, d2, k, jnp.float64)
  kw = dict(n_train=36, tau=0.1, inner_lr=0.05, steps=5, H_reg=10.0)
  uniform = jnp.full(k, 1.0 / k)
  for fn in (hume_loss, hume_loss_shared_rows):
    loss = lambda raw, prior, fn=fn: fn(enc._replace(raw=raw), phi1, phi2, subsets, w0, prior=prior, **kw)[0]
    np.testing.assert_allclose(loss(enc.raw, uniform), loss(enc.raw, None), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(loss)(enc.raw, uniform), jax.grad(loss)(enc.raw, None), rtol=1e-9, atol=1e-12)
    skewed = jnp.asarray(exponential(k, 10.0))
    assert abs(float(loss(enc.raw, skewed) - loss(enc.raw, None))) > 1e-3


def test_priors_from_sizes():
  assert as_prior([1, 3, 2]) == pytest.approx((0.5, 1 / 3, 1 / 6))
  p = exponential(10, 10.0)
  assert imbalance(p) == pytest.approx(10.0) and sum(p) == pytest.approx(1.0)
  assert list(p) == sorted(p, reverse=True)
  labels = np.array([0] * 90 + [1] * 10)  # class 2 empty: floored at FLOOR / k
  q = from_partition(labels, 3, floor=0.3)
  assert q[2] == pytest.approx(0.1 / (0.9 + 0.1 + 0.1)) and q[0] > q[1]
  with pytest.raises(ValueError, match="expected 3 positive numbers"):
    as_prior([1, 0, 2])
  with pytest.raises(ValueError, match="prior: expected 4 class sizes"):
    check_config(HumeConfig(k=4, prior=(0.5, 0.5)), 100, 8)
  with pytest.raises(ValueError, match="sorted largest first"):
    check_config(HumeConfig(k=2, prior=(0.25, 0.75)), 100, 8)


def long_tailed(sizes=(360, 120, 60, 30), seed=0):
  """Two linear views of classes of very unequal sizes."""
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(len(sizes)), sizes)
  centers = rng.normal(size=(len(sizes), 8)) * 2
  latent = centers[y] + 0.5 * rng.normal(size=(len(y), 8))
  phi1 = latent @ rng.normal(size=(8, 16)) + 0.1 * rng.normal(size=(len(y), 16))
  phi2 = latent @ rng.normal(size=(8, 12)) + 0.1 * rng.normal(size=(len(y), 12))
  return phi1 / np.linalg.norm(phi1, axis=1, keepdims=True), phi2, y


def test_the_true_prior_keeps_long_tailed_classes_that_the_entropy_splits():
  """From the auto preset's start (spherical k-means centroids, here exact), the paper's entropy
  splits the large class to even the sizes out; the true sizes as prior keep the labeling."""
  phi1, phi2, y = long_tailed()
  centers, start = spherical_kmeans(phi1, 4, 0)
  assert hungarian_accuracy(start, y) == 1.0
  acc = {}
  for name, prior in (("entropy", None), ("true sizes", as_prior(np.bincount(y)))):
    cfg = dataclasses.replace(CFG, num_iters=120, milestones=(80, 100), subset_size=570, prior=prior)
    state = init_state(jax.random.PRNGKey(0), cfg, 16, 12)
    state = state._replace(encoder=task_encoder_from(jnp.asarray(centers), jax.random.PRNGKey(1)))
    state, _ = fit(phi1, phi2, cfg, state=state, progress=False)
    acc[name] = hungarian_accuracy(predict(state.encoder, phi1), y)
  assert acc["true sizes"] > 0.95 and acc["entropy"] < 0.8, acc


def test_short_classes_are_the_found_classes_far_under_their_ranks_prior_size():
  found = [60, 360, 120, 30]  # 570 samples
  assert [c["class"] for c in short_classes(found)] == [3]  # 30 < 142.5 / 4 under equal sizes
  assert short_classes(found, as_prior([360, 120, 60, 30])) == []  # the prior's own sizes
  rows = short_classes([500, 40, 20, 10], as_prior([4, 3, 2, 1]))  # ranks 2-4 expect 171, 114, 57 of 570
  assert rows == [
    {"class": 3, "found": 10, "prior": 57.0},
    {"class": 2, "found": 20, "prior": 114.0},
    {"class": 1, "found": 40, "prior": 171.0},
  ]
  assert short_classes([500, 50, 20, 10], as_prior([4, 3, 2, 1]))[-1]["class"] == 2  # 50 >= 171 / 4


def test_a_prior_given_as_a_list_or_array_is_kept_as_a_hashable_tuple():
  from hume_jax.config import TurtleConfig

  listed = dataclasses.replace(CFG, prior=[0.4, 0.3, 0.2, 0.1])
  assert listed.prior == (0.4, 0.3, 0.2, 0.1) and hash(listed) == hash(dataclasses.replace(CFG, prior=listed.prior))
  assert TurtleConfig(prior=np.array([0.6, 0.4])).prior == (0.6, 0.4)
  with pytest.raises(ValueError, match="expected 4 class sizes"):
    check_config(dataclasses.replace(CFG, prior=[0.5, 0.5]), 100, 8)


def test_the_entropy_panel_tops_at_the_priors_entropy():
  from hume_jax import runs
  from hume_jax.train.report import entropy_max

  assert entropy_max(runs.HUME_METHOD, 4) == pytest.approx(np.log(4), abs=1e-12)
  assert entropy_max(runs.TURTLE_METHOD, 4) == pytest.approx(2 * np.log(4), abs=1e-12)
  prior = as_prior([5, 3, 1, 1])
  assert entropy_max(runs.HUME_METHOD, 4, prior) == pytest.approx(-np.sum(np.array(prior) * np.log(prior)), 1e-12)
