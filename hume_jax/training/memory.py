"""How much memory one compiled outer step needs, and a plan that fits a budget.

Uses XLA's own memory analysis of the compiled step (compiling needs no data, only shapes).
The plan trades compute for memory in two exact ways: ``remat`` (recompute each inner
step's activations in the backward pass) and ``subset_chunk`` (accumulate the
hypergradient over chunks of subsets).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp

from hume_jax.config import HumeConfig
from hume_jax.core._outer import init_state, outer_step
from hume_jax.core._plan import Execution, execution_plan


def rough_step_bytes(config: HumeConfig, n: int, d1: int, d2: int, itemsize: int = 4, runs: int = 1) -> int:
  """A generous closed-form bound on one step's memory, to skip compiling when far from a limit.

  Inputs ``n (d1 + d2)`` (shared by the runs), and per run gathered subsets ``S m (d1 + d2)``
  and per inner step a few ``[n_tr, k]`` activations stored for the backward pass
  (``S T n_tr k``), times 4.
  """
  m, n_tr = config.subset_sizes(n)
  per_step = config.num_subsets * config.adaptation_steps * n_tr * config.k
  per_run = config.num_subsets * m * (d1 + d2) + 4 * per_step + d1 * d1
  return 4 * itemsize * (n * (d1 + d2) + runs * per_run)


def step_memory_bytes(
  config: HumeConfig, n: int, d1: int, d2: int, dtype=jnp.float32, runs: int = 1, execution: Execution = Execution()
) -> int:
  """Peak bytes of one compiled outer step of ``execution`` on the default device (arguments + outputs +
  temporaries - aliased), for ``phi1 [n, d1]`` and ``phi2 [n, d2]``; with ``runs > 1``, of the
  step ``fit_seeds`` compiles: ``runs`` states vmapped over shared inputs."""
  # One cache key however the arguments are spelled (a compile takes seconds).
  return _step_memory_bytes(config, execution, int(n), int(d1), int(d2), jnp.dtype(dtype), int(runs))


@functools.lru_cache(maxsize=64)
def _step_memory_bytes(
  config: HumeConfig, execution: Execution, n: int, d1: int, d2: int, dtype: jnp.dtype, runs: int
) -> int:
  state = jax.eval_shape(lambda: init_state(jax.random.PRNGKey(0), config, d1, d2, dtype))
  step = functools.partial(outer_step, config=config, execution=execution)
  if runs > 1:
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct((runs,) + s.shape, s.dtype), state)
    step = jax.vmap(step, in_axes=(0, None, None))
  args = (state, jax.ShapeDtypeStruct((n, d1), dtype), jax.ShapeDtypeStruct((n, d2), dtype))
  compiled = jax.jit(step).lower(*args).compile()
  mem = compiled.memory_analysis()
  if mem is None:  # backend without the analysis
    return 0
  return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes)


def device_memory_bytes() -> int:
  """Memory of the default device: its allocator limit on accelerators, 80% of RAM on CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def plan_memory(
  config: HumeConfig,
  n: int,
  d1: int,
  d2: int,
  budget: int | None = None,
  dtype=jnp.float32,
  runs: int = 1,
  execution: Execution = Execution(),
) -> tuple[Execution, int]:
  """The least costly of ``execution`` (as given), remat, remat + ever smaller subset chunks that fits.

  ``runs``: runs compiled into one program (``--seeds`` chunk, or ``--k auto``'s runs per K);
  pass the largest ``k`` the program will have.

  Returns:
    ``(execution with remat / subset_chunk set, its peak bytes or 0 when it is so far below
    the budget that it was not compiled)``.

  Raises:
    MemoryError: when even one subset at a time with remat does not fit.
  """
  budget = device_memory_bytes() if budget is None else budget
  if rough_step_bytes(config, n, d1, d2, jnp.dtype(dtype).itemsize, runs) < budget // 4:
    return execution, 0  # far below the limit: not worth a compile
  multiple = jax.device_count() if jax.process_count() > 1 else 1
  planned_chunk = execution_plan(config, n, d2, execution=execution).chunk  # e.g. one at a time on a CPU
  chunks = [c for c in range(planned_chunk - 1, 0, -1) if config.num_subsets % c == 0 and c % multiple == 0]
  candidates = [execution, dataclasses.replace(execution, remat=True)]
  candidates += [dataclasses.replace(execution, remat=True, subset_chunk=c) for c in chunks]
  peak = 0
  for candidate in candidates:
    peak = step_memory_bytes(config, n, d1, d2, dtype, runs, candidate)
    if peak <= budget:
      return candidate, peak
  raise MemoryError(
    f"one outer step needs {peak / 2**30:.1f} GiB even with remat and one subset at a "
    f"time (subset_chunk 1); the device has {budget / 2**30:.1f} GiB. Use a smaller subset_size or "
    "adaptation_steps"
  )
