"""The first rows of a random permutation: ``jax.random.permutation(key, n)[:m]`` bit for bit,
at about a third of its cost on CPUs.

``jax.random.permutation`` shuffles by sorting: each of its rounds draws 32 random bits per
element and sorts the elements by them with a stable key-value sort. XLA's CPU backend sorts
a single array of integer keys about 6x faster than keys with values (or float keys), which
go through its general comparator-driven sort (``benchmarks/LOG.md``). A stable argsort of
``bits`` is rebuilt here from two plain sorts: with ``r_e = #{j : bits_j < bits_e}``, sorting
``r_e n + e`` orders the elements by their bits and equal bits by index, which is exactly the
stable order, and ``(r_e n + e) mod n = e`` reads the element back. ``r_e n + e < n^2`` fits in
32 bits up to ``n = 65,535``; above that the draw is ``jax.random.permutation`` itself.

Past that size a few rows of many (``sample_rows``: ``m`` of ``n >= 16 m`` rows) are drawn without
sorting all ``n``: rows drawn uniformly with replacement, each repeat skipped, which is sampling without
replacement, at a cost that does not grow with ``n``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

MAX_N = 65535  # n^2 < 2^32: the composite key r n + e fits in a uint32


def stable_argsort(bits: jax.Array) -> jax.Array:
  """``int32 [n]``: the order that sorts ``bits`` (``uint32 [n]``, ``n <= MAX_N``) increasingly,
  equal bits by index (a stable sort's, ``lax.sort_key_val(bits, arange(n))[1]``)."""
  n = bits.shape[-1]
  below = jnp.searchsorted(jnp.sort(bits), bits, side="left")  # r_e = #{j : bits_j < bits_e}
  composite = below.astype(jnp.uint32) * jnp.uint32(n) + jnp.arange(n, dtype=jnp.uint32)
  return (jnp.sort(composite) % jnp.uint32(n)).astype(jnp.int32)


def permutation_prefix(key: jax.Array, n: int, m: int) -> jax.Array:
  """``jax.random.permutation(key, n)[:m]``, bit for bit (``[m]``, its integer dtype).

  The same rounds as ``jax.random.permutation`` (``ceil(3 log n / log(2^32 - 1))`` of them,
  each with a fresh split of the key and 32 random bits per element), each sort replaced by
  ``stable_argsort``; the last round orders only the ``m`` rows kept.
  """
  if n > MAX_N:
    return jax.random.permutation(key, n)[:m]
  rounds = int(math.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
  x = jnp.arange(n)  # the dtype jax.random.permutation gives (int64 under jax_enable_x64)
  with jax.named_scope("permutation_prefix"):  # names its ops in XLA's profile (profile_step.py)
    for r in range(rounds):
      key, subkey = jax.random.split(key)
      order = stable_argsort(jax.random.bits(subkey, (n,), jnp.uint32))
      x = x[order[:m] if r == rounds - 1 else order]
  return x[:m]


def distinct_draws(key: jax.Array, n: int, m: int) -> jax.Array:
  """``int32 [m]``: ``m`` distinct rows of ``[0, n)`` in a uniformly random order, in
  ``O(m log m)`` whatever ``n``: ``4 m`` rows drawn uniformly with replacement, the first ``m``
  distinct ones kept in draw order (skipping repeats draws without replacement). For ``n >= 16 m``
  each draw repeats an earlier one with probability at most 1/4, so fewer than ``m`` distinct rows
  among ``4 m`` draws has probability at most ``exp(-2 m)`` (Hoeffding)."""
  r = 4 * m
  draws = jax.random.randint(key, (r,), 0, n, dtype=jnp.int32)
  order = jnp.argsort(draws, stable=True)  # equal rows by draw order: the first of each run is the earliest
  ranked = draws[order]
  first = jnp.concatenate([jnp.ones(1, bool), ranked[1:] != ranked[:-1]])
  first_in_draw_order = jnp.zeros(r, bool).at[order].set(first)
  return draws[jnp.nonzero(first_in_draw_order, size=m, fill_value=0)[0]]


def sample_rows(key: jax.Array, n: int, m: int) -> jax.Array:
  """``m`` distinct rows of ``[0, n)`` in random order: ``permutation_prefix`` (``jax.random.permutation(key,
  n)[:m]`` bit for bit) up to ``MAX_N`` rows or for ``m`` over ``n / 16`` (or under 32); past them
  ``distinct_draws``, whose cost does not grow with ``n``."""
  if sorted_rows(n, m) == n:
    return permutation_prefix(key, n, m)
  return distinct_draws(key, n, m)


def sorted_rows(n: int, m: int) -> int:
  """How many keys ``sample_rows`` sorts to draw ``m`` of ``n`` rows: all ``n``, or ``4 m`` past ``MAX_N``
  rows when ``m <= n / 16`` and ``m >= 32`` (the cost model's rows per draw, ``hume_jax.search.budget``)."""
  return n if n <= MAX_N or 16 * m > n or m < 32 else 4 * m
