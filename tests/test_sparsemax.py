import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from hume_jax import sparsemax


def test_closed_form():
  # z = (2, 1, -1): support {0} alone since 1 + 2*1 = 3 <= 2 + 1 -> [1, 0, 0]
  np.testing.assert_allclose(sparsemax(jnp.array([2.0, 1.0, -1.0])), [1.0, 0.0, 0.0])
  # z = (0.5, 0.3, 0.1): threshold t = (0.5 + 0.3 + 0.1 - 1) / 3 = -1/30 -> z - t
  np.testing.assert_allclose(
    sparsemax(jnp.array([0.5, 0.3, 0.1])), [0.5 + 1 / 30, 0.3 + 1 / 30, 0.1 + 1 / 30], atol=1e-12
  )
  # two-way tie in the support: t = (1 + 1 - 1) / 2 = 0.5
  np.testing.assert_allclose(sparsemax(jnp.array([1.0, 1.0, -3.0])), [0.5, 0.5, 0.0])


def test_matches_simplex_projection():
  z = jax.random.normal(jax.random.PRNGKey(0), (50, 7)) * 3
  ref = jax.vmap(optax.projections.projection_simplex)(z)
  np.testing.assert_allclose(sparsemax(z), ref, atol=1e-12)
  p = sparsemax(z)
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
  assert (p >= 0).all() and (p == 0).any()


def test_jacobian_closed_form():
  z = jnp.array([0.9, 0.7, 0.2, -2.0])
  p = sparsemax(z)
  s = (p > 0).astype(z.dtype)
  expected = jnp.diag(s) - jnp.outer(s, s) / s.sum()  # Martins & Astudillo Eq. 12
  np.testing.assert_allclose(jax.jacobian(sparsemax)(z), expected, atol=1e-12)
  np.testing.assert_allclose(jax.jacrev(sparsemax)(z), expected, atol=1e-12)


def test_finite_differences():
  z = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
  check_grads(sparsemax, (z,), order=1, modes=("fwd", "rev"), eps=1e-6)
  f = lambda z: jnp.sum(jnp.sin(jnp.arange(5.0))[None, :] * sparsemax(z / 0.3)) ** 2
  check_grads(f, (z,), order=2, modes=("rev",), eps=1e-6)


def test_vmap_and_batch_agree():
  z = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 6))
  batched = sparsemax(z)
  np.testing.assert_allclose(jax.vmap(jax.vmap(sparsemax))(z), batched, atol=1e-12)
  g = jax.vmap(jax.grad(lambda v: sparsemax(v)[0]))(z[0])
  g_loop = jnp.stack([jax.grad(lambda v: sparsemax(v)[0])(v) for v in z[0]])
  np.testing.assert_allclose(g, g_loop, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_kept(dtype):
  assert sparsemax(jnp.ones((2, 3), dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 10, 32])
def test_pairwise_sort_is_the_sort(k, dtype):
  # up to PAIRWISE_MAX_K classes the rows are sorted by pairwise comparisons: bit for bit what
  # XLA's sort gives, so the labels do not depend on which one ran; ties in and out of the support
  from hume_jax.core._sparsemax import PAIRWISE_MAX_K, _sorted_pairwise

  assert k <= PAIRWISE_MAX_K
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(k), (600, k), dtype)) * 3
  z[::4, -1] = z[::4, 0]
  z[1::4, : min(3, k)] = 5.0
  z[2::4, :] = -1.0
  z = jnp.asarray(z)
  np.testing.assert_array_equal(_sorted_pairwise(z), -jnp.sort(-z, axis=-1))
  np.testing.assert_allclose(sparsemax(z), jax.vmap(optax.projections.projection_simplex)(z), atol=1e-6)


def test_many_classes_take_the_sort():
  z = jax.random.normal(jax.random.PRNGKey(3), (50, 40)) * 3
  np.testing.assert_allclose(sparsemax(z), jax.vmap(optax.projections.projection_simplex)(z), atol=1e-12)
