"""The subset draws equal ``jax.random.permutation``'s bit for bit (the labels of a seed do not
depend on how the draw is computed), and the stable argsort behind them is numpy's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hume_jax._objective import draw_subsets
from hume_jax._shuffle import MAX_N, permutation_prefix, stable_argsort


@pytest.mark.parametrize("n, m", [(1, 1), (2, 2), (7, 3), (1625, 1000), (1626, 1626), (5000, 2000), (MAX_N, 50)])
def test_equals_jax_permutation(n, m):
  # 1625 -> 1626 is where jax.random.permutation goes from one sort round to two
  for i in range(3):
    key = jax.random.fold_in(jax.random.PRNGKey(n), i)
    want = jax.random.permutation(key, n)[:m]
    got = jax.jit(permutation_prefix, static_argnums=(1, 2))(key, n, m)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_above_max_n_is_jax_permutation():
  key = jax.random.PRNGKey(1)
  np.testing.assert_array_equal(permutation_prefix(key, MAX_N + 1, 10), jax.random.permutation(key, MAX_N + 1)[:10])


@pytest.mark.parametrize("values", [2, 17, 2**32 - 1])
def test_stable_argsort_with_ties(values):
  # few distinct values: long runs of equal bits, which the stable order breaks by index
  bits = np.random.default_rng(values).integers(0, values, size=3000, dtype=np.uint32)
  np.testing.assert_array_equal(stable_argsort(jnp.asarray(bits)), np.argsort(bits, kind="stable"))


def test_draw_subsets_is_the_permutations_prefix():
  key = jax.random.PRNGKey(5)
  want = jnp.stack([jax.random.permutation(k, 300)[:120] for k in jax.random.split(key, 4)])
  np.testing.assert_array_equal(draw_subsets(key, 300, 4, 120), want)
