"""The subset draws equal ``jax.random.permutation``'s bit for bit (the labels of a seed do not
depend on how the draw is computed), and the stable argsort behind them is numpy's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hume_jax.core._objective import draw_subsets
from hume_jax.core._shuffle import MAX_N, distinct_draws, permutation_prefix, sample_rows, stable_argsort


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


def test_distinct_draws_are_sequential_draws_skipping_repeats():
  """Against a plain loop over the same draws: keep a row unless drawn before, until m are kept."""
  n, m = 50, 12  # small n: many repeats to skip
  for i in range(5):
    key = jax.random.PRNGKey(i)
    draws = np.asarray(jax.random.randint(key, (4 * m,), 0, n, dtype=jnp.int32))
    kept = []
    for row in draws:
      if row not in kept and len(kept) < m:
        kept.append(int(row))
    np.testing.assert_array_equal(distinct_draws(key, n, m), kept)


def test_sample_rows_past_max_n_is_uniform_without_replacement():
  n, m, reps = 200_000, 2_000, 100
  assert n > MAX_N and 16 * m <= n
  keys = jax.random.split(jax.random.PRNGKey(0), reps)
  rows = np.asarray(jax.jit(jax.vmap(lambda k: sample_rows(k, n, m)))(keys))
  assert all(len(np.unique(r)) == m for r in rows) and rows.min() >= 0 and rows.max() < n
  counts = np.bincount(rows.ravel() * 20 // n, minlength=20)  # 20 bins of rows, 10,000 draws each expected
  assert np.abs(counts / (reps * m / 20) - 1).max() < 0.05
  first, second = rows[:, : m // 2].mean(), rows[:, m // 2 :].mean()  # order carries no row order
  assert abs(first - second) / n < 0.01
  np.testing.assert_array_equal(sample_rows(keys[0], MAX_N, 100), permutation_prefix(keys[0], MAX_N, 100))
