"""The command line's checks of its flags: each method's own flags, and flags that the chosen
method, preset or protocol would ignore, refused with the reason (before any work)."""

from __future__ import annotations

import argparse
from typing import NamedTuple

from hume_jax import runs
from hume_jax.core._plan import Execution

# Flags of one method only; each is refused with the other, so that no flag of one method can
# change the other's configuration (e.g. TURTLE's --gamma is not HUME's annealing factor).
HUME_ONLY = (
  "tau",
  "H_reg",
  "adaptation_steps",
  "num_subsets",
  "subset_size",
  "train_fraction",
  "subset_chunk",
  "row_block",
  "anneal",
  "rand_init",
  "remat",
  "preset",
  "seed_chunk",
)
TURTLE_ONLY = ("inner_steps", "batch_size", "gamma", "warm_start")


def _flag(name: str) -> str:
  return "--" + name.replace("_", "-")


def check_method_flags(args: argparse.Namespace) -> None:
  """Refuses a flag that belongs to the other method (``--gamma`` with HUME, ``--tau`` with TURTLE), and
  class sizes for a K still to be chosen."""
  other = TURTLE_ONLY if args.method == "hume" else HUME_ONLY
  given = [_flag(a) for a in other if getattr(args, a, None) not in (None, False)]
  if given:
    owner = "TURTLE (--method turtle)" if args.method == "hume" else "HUME (--method hume)"
    raise ValueError(f"{', '.join(given)}: only for {owner}; this run is --method {args.method}")
  if args.class_sizes is not None and args.k == "auto":  # before the sizes are checked against a k
    raise ValueError("--class-sizes does not apply with --k auto: the sizes are those of one k (give --k)")


class Mode(NamedTuple):
  """What a command line asks for: the method, HUME's preset, and the protocol."""

  method: runs.Method
  preset: str | None
  auto: bool  # HUME with --preset auto
  seeds: int
  k_auto: bool
  execution: Execution = Execution()  # how HUME's steps run (--subset-chunk, --row-block, --remat; the memory plan)

  @property
  def single_auto(self) -> bool:
    return self.auto and self.seeds == 1 and not self.k_auto

  @property
  def auto_k(self) -> bool:
    """``--k auto`` on raw features: a ``--preset auto`` search for every K (``hume_jax.search.kauto``)."""
    return self.auto and self.seeds == 1 and self.k_auto

  @property
  def budgeted(self) -> bool:
    return self.single_auto or self.auto_k

  @property
  def k_search(self) -> str | None:
    """How K is chosen first (a key of ``hume_jax.train.resume.K_SEARCHES``), or None for a given K."""
    return "auto" if self.auto_k else ("seeds" if self.k_auto else None)

  @property
  def protocol(self) -> str:
    """How the (chosen) K is trained: a key of ``hume_jax.train.resume.PROTOCOLS``."""
    return "auto" if self.budgeted else ("seeds" if self.seeds > 1 else "one")


def check_flags_apply(args: argparse.Namespace, mode: Mode, has_val: bool) -> None:
  """Refuses a flag that the chosen method, preset or protocol would ignore, with the reason."""
  rules = [
    ("budget", not mode.budgeted, "applies to --preset auto (the default on your files) with one seed"),
    (
      "budget",
      mode.budgeted and args.num_iters is not None,
      "does not apply with --num-iters: the iterations of each run are given",
    ),
    ("k_range", not mode.k_auto, "applies with --k auto"),
    (
      "k_seeds",
      not mode.k_auto or mode.auto_k,
      "applies with --k auto and an explicit preset (with --preset auto each K's runs are its search's: two to four)",
    ),
    ("seed_chunk", mode.seeds == 1, "applies with --seeds N"),
    ("checkpoint_every", mode.single_auto, "does not apply to --preset auto, which keeps each finished run"),
    ("checkpoint_every", mode.auto_k, "does not apply to --k auto with --preset auto, which keeps each finished K"),
    ("log_every", mode.budgeted, "does not apply to --preset auto, whose runs report when they end"),
    (
      "normalize_phi1",
      mode.auto or mode.method is runs.TURTLE_METHOD,
      "does not apply: --preset auto conditions both spaces and TURTLE uses them as given",
    ),
    ("setting", args.setting is not None and not has_val, "needs a val split (--phi1-val, --phi2-val)"),
    (
      "class_sizes",
      args.class_sizes == "k-means" and not mode.single_auto,
      "k-means applies to --preset auto with one seed and a given k (give the sizes otherwise)",
    ),
    ("images", not args.plots, "draws example images, which --no-plots turns off"),
    ("coordinator", not args.distributed, "applies with --distributed"),
    ("num_processes", not args.distributed, "applies with --distributed"),
    ("process_id", not args.distributed, "applies with --distributed"),
  ]
  for name, ignored, reason in rules:
    given = (not args.normalize_phi1) if name == "normalize_phi1" else getattr(args, name) is not None
    if ignored and given:
      raise ValueError(f"{'--no-normalize-phi1' if name == 'normalize_phi1' else _flag(name)} {reason}")
