"""How one outer step is run, apart from what it computes (``hume_jax.config.HumeConfig``): what a
caller asks for (``Execution``) and how this backend schedules it (``Plan``: subsets per chunk, row
blocks, row masks).

None of these choices changes the result (up to summation order); they are measured choices of
speed and memory, kept apart from the maths of ``_outer.py``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import jax

from hume_jax.config import HumeConfig


@dataclasses.dataclass(frozen=True)
class Execution:
  """How a HUME run is executed: none of it changes the result (up to summation order), so a
  checkpoint resumes under any of them. Not HUME hyperparameters.

  Attributes:
    subset_chunk: compute the hypergradient over this many subsets at a time and sum (0: automatic,
      see ``execution_plan``: all at once on accelerators, one at a time on a CPU). Less memory.
    remat: recompute the inner steps' activations in the backward pass instead of storing them.
      Less memory.
    row_block: rows of ``phi2`` per block in each inner step (see ``inner_sgd``); 0: whole-matrix
      products; -1: automatic (``execution_plan``: 128 on a single CPU thread when a subset's inner
      block outgrows L2, else 0).
    shared_rows: 1 to compute the subsets of a chunk over all rows at once, as row masks, with their
      classifiers stacked into wide products (``hume_loss_shared_rows``); 0 not; -1: automatic
      (``execution_plan``: on a CPU when each subset covers most rows).
  """

  subset_chunk: int = 0
  remat: bool = False
  row_block: int = -1
  shared_rows: int = -1


def check_execution(execution: Execution, config: HumeConfig) -> None:
  """Rejects an ``Execution`` that cannot run ``config``, before any compute; messages name the field."""
  chunk = execution.subset_chunk
  if chunk < 0 or (chunk and config.num_subsets % chunk):
    raise ValueError(f"subset_chunk: expected 0 or a divisor of num_subsets = {config.num_subsets}, got {chunk}")
  if execution.row_block < -1:
    raise ValueError(
      f"row_block: expected -1 (automatic), 0 (whole matrices) or a number of rows, got {execution.row_block}"
    )


class Plan(NamedTuple):
  """How ``outer_step`` computes one iteration.

  Attributes:
    chunk: subsets whose hypergradient is computed at a time (``num_subsets``: all at once).
    row_block: rows of ``phi2`` per block of each inner step (0: whole matrices).
    shared: the subsets of a chunk run over all rows as row masks (``hume_loss_shared_rows``).
  """

  chunk: int
  row_block: int
  shared: bool


CPU_ROW_BLOCK = 128  # rows of phi2 per block on a CPU: 128 x d2 floats stay in L2 (measured best)
CPU_BLOCKED_ABOVE = 16 * 2**20  # bytes of one subset's inner block beyond which one CPU thread walks row blocks
CPU_SHARED_COVERAGE = 0.8  # on a CPU, subsets of at least this share of the rows run as row masks
CPU_SHARED_WIDTH = 100  # ... with this many stacked classifier rows (subsets x k) per product


def cpu_threads() -> int:
  """CPU cores this process may run on (XLA's CPU thread pool is sized to them)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # no affinity masks on this platform
    return os.cpu_count() or 1


def execution_plan(
  config: HumeConfig, n: int, d2: int, itemsize: int = 4, mesh=None, execution: Execution = Execution()
) -> Plan:
  """The ``Plan`` of ``execution`` for this backend and size; none of its choices changes the result.

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
    outgrows ``CPU_BLOCKED_ABOVE`` bytes, each inner step also walks ``phi2`` in L2-sized
    row blocks: paper-sized subsets without row masks (27.6 MB blocks, T 30) took 8.6
    against 16.1 s per outer iteration on one machine, 5.2 against 5.8 on another, while at
    raw 1024/1280-d inputs with the cpu preset (9.2 MB blocks) whole matrices were as fast or
    faster on both (1.71 against 1.85 s; 0.93 against 1.12 s). With more threads the
    whole-matrix products are split over them and row blocks, each too small to split, are
    twice as slow (two threads: 6.9 against 12.6 s at paper size; 0.95 against 1.90 s raw).

  ``execution.subset_chunk`` / ``execution.row_block`` / ``execution.shared_rows`` override the
  choice; with a device mesh the subsets stay together so that they can be split over its
  devices.
  """
  m, n_train = config.subset_sizes(n)
  cpu = jax.default_backend() == "cpu" and mesh is None
  S = config.num_subsets
  if execution.shared_rows >= 0:
    shared = bool(execution.shared_rows)
  else:
    shared = cpu and S > 1 and m >= CPU_SHARED_COVERAGE * n and config.k < CPU_SHARED_WIDTH
  if shared:
    wide = [c for c in range(1, S + 1) if S % c == 0 and c * config.k >= CPU_SHARED_WIDTH]
    chunk = execution.subset_chunk or (min(wide) if wide and cpu else S)
    return Plan(chunk, 0, True)
  blocked = cpu and cpu_threads() == 1 and n_train * d2 * itemsize > CPU_BLOCKED_ABOVE
  chunk = execution.subset_chunk or (1 if cpu else S)
  row_block = execution.row_block if execution.row_block >= 0 else (CPU_ROW_BLOCK if blocked else 0)
  return Plan(chunk, row_block, False)
