"""The command line's flags: the argparse table, their ranges, which method or protocol each
belongs to, and the configuration they give."""

from __future__ import annotations

import argparse
import dataclasses

from hume_jax.config import PRESETS, TurtleConfig
from hume_jax.core._plan import Execution
from hume_jax.search.budget import DEFAULT_BUDGET
from hume_jax.search.sizes import as_prior

DESCRIPTION = """Train HUME from the command line.

    python -m hume_jax.train                      # the default: Fashion-MNIST, CPU preset
    python -m hume_jax.train --phi1 mocov2_train.npy --phi2 dinov2_train.npy \\
        --phi1-val mocov2_test.npy --phi2-val dinov2_test.npy --labels-val y_test.npy --k 10

Writes to --out: task_encoder.npz, labels_train.npy (and labels_val.npy), metrics.json,
config.json and, for single runs, log.jsonl. Results appear only once the run has finished (the
folder is written as OUT.partial and renamed). SIGTERM or Ctrl-C finishes the iteration in
flight, keeps a checkpoint and prints the command that continues.
"""

# Flags that set HumeConfig fields, and Execution's (EXECUTION: how the steps run, never the result):
# (field, type, help). Underscore spellings of the official code (--inner_lr, --H_reg, ...) are accepted too.
EXECUTION = ("subset_chunk", "row_block", "remat")
_CONFIG_FLAGS = [
  ("k", int, "number of classes of the labeling"),
  (
    "inner_lr",
    float,
    "learning rate of the inner SGD that fits the linear classifier on phi2 (Eq. 5); under "
    "--preset auto in units of 1 / lambda_max of the scaled phi2 (0.9: 0.9 of the largest stable step is 2)",
  ),
  ("outer_lr", float, "Adam learning rate of the task encoder"),
  ("tau", float, "temperature of the task encoder's sparsemax (Eq. 3)"),
  ("H_reg", float, "weight of the entropy of the mean labeling (Eq. 7)"),
  ("num_iters", int, "outer iterations (under --preset auto: of each run, instead of fitting --budget)"),
  ("adaptation_steps", int, "T: inner SGD steps, unrolled and differentiated through"),
  ("num_subsets", int, "S: (train, test) subsets whose losses are averaged per outer iteration"),
  ("subset_size", int, "rows per subset (clipped to the number of samples)"),
  ("train_fraction", float, "share of each subset that trains the inner classifier; the rest is held out"),
  ("seed", int, "seed of the initialisation and of every subset"),
  (
    "subset_chunk",
    int,
    "memory: compute the hypergradient over this many subsets at a time "
    "(a divisor of --num-subsets; 0 = automatic: all at once on a GPU, one at a time on a CPU); same result",
  ),
  (
    "row_block",
    int,
    "speed: rows of phi2 per block of each inner step (0 = whole matrices; -1 = automatic: "
    "128 on a single CPU thread when a subset outgrows its L2 cache, else 0); same result up to rounding",
  ),
]


def _number(kind, low: float, what: str):
  """An argparse type: ``kind`` (int or float) of at least ``low`` (exclusive for floats)."""

  def parse(text: str):
    try:
      value = kind(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low or (kind is float and value <= low):
      raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value

  return parse


_COUNT = _number(int, 1, "a positive integer")
_SECONDS = _number(float, 0.0, "a positive number of seconds")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="python -m hume_jax.train", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  io = p.add_argument_group(
    "data (FILE is .npy, .npz with one array or a features array (python -m extract_torch), or FILE.npz:KEY)"
  )
  io.add_argument(
    "--phi1",
    metavar="FILE",
    help="[n, d1] representation for the task encoder (the "
    "paper's self-supervised model). Without --phi1/--phi2 the shipped default runs: "
    "Fashion-MNIST in Open-NSFW (phi1) and EfficientNet-Lite0 (phi2) features",
  )
  io.add_argument(
    "--phi2",
    metavar="FILE",
    help="[n, d2] representation for the inner linear classifier (the paper's large pretrained model)",
  )
  io.add_argument(
    "--labels",
    metavar="FILE",
    help="optional [n] labels of the training split (integers, or "
    "class names as strings, numbered in sorted order), only for reporting; the class names of "
    "an extraction file (python -m extract_torch) label the figures",
  )
  io.add_argument(
    "--phi1-val",
    "--phi1_val",
    metavar="FILE",
    help="inductive setting: [m, d1] split to predict with the trained task encoder (the CV score is computed on it)",
  )
  io.add_argument("--phi2-val", "--phi2_val", metavar="FILE", help="[m, d2] the same split in phi2")
  io.add_argument("--labels-val", "--labels_val", metavar="FILE", help="optional [m] labels of that split")
  io.add_argument(
    "--images",
    metavar="FILE",
    help="optional uint8 images [m, h, w] or [m, h, w, 3] of the "
    "evaluated split (val if given, else train), in the same order: the output gets a grid of "
    "example images per found class (automatic for the shipped dataset when the "
    "Fashion-MNIST files are installed)",
  )
  io.add_argument(
    "--setting",
    choices=("inductive", "transductive"),
    default=None,
    help="with a val split: 'inductive' (default) trains on the train split and predicts the "
    "val split; 'transductive' trains on train and val together and predicts both",
  )
  io.add_argument(
    "--no-normalize-phi1",
    dest="normalize_phi1",
    action="store_false",
    help="do not L2-normalise the rows of phi1 (HUME expects them normalised; not with "
    "--preset auto, which conditions both spaces, nor TURTLE, which uses them as given)",
  )
  io.add_argument("--out", metavar="DIR", help="output folder (default: runs/<name>-<date>-<time>)")
  io.add_argument(
    "--overwrite",
    action="store_true",
    help="replace the results in an existing --out (or an interrupted run in OUT.partial)",
  )
  io.add_argument(
    "--resume",
    action="store_true",
    help="continue the interrupted run in OUT.partial from "
    "its last checkpoint (same data and settings; --num-iters may grow); multi-run protocols "
    "(--seeds, --preset auto, --k auto) keep their finished runs",
  )
  io.add_argument(
    "--checkpoint-every",
    type=_COUNT,
    default=None,
    metavar="N",
    help="iterations between checkpoints in OUT.partial (default 50); a stop (SIGTERM, Ctrl-C) "
    "always checkpoints the iteration it finishes",
  )

  hp = p.add_argument_group("hyperparameters (defaults: the preset's; 'official' = the official code's)")
  hp.add_argument(
    "--preset",
    choices=sorted(PRESETS),
    default=None,
    help="'auto' (default with your data): each space centred and reduced to 128 principal "
    "components, phi2 scaled to unit top eigenvalue, four runs (each space as phi1, from spherical "
    "k-means centroids and from the official random start), the most separable run kept and the "
    "labels its majority vote with the other three, iterations cut to --budget; 'official' (the "
    "paper's settings, exactly), 'imagenet' (official ImageNet-1000 settings), 'cpu' (default for "
    "the shipped dataset: fewer subsets and steps, chosen by the label-free CV score)",
  )
  hp.add_argument(
    "--budget",
    type=_SECONDS,
    default=None,
    metavar="SECONDS",
    help=f"with --preset auto: time for the whole run, the search (both orders) and the stages after it (CV score, "
    f"premise check, baselines) (default {DEFAULT_BUDGET:.0f}); the runs and iterations come from a fixed cost model "
    "of this platform (the same plan whatever the load), printed before training with what was cut to fit; the "
    "clock only cuts a search running past twice the budget",
  )
  for field, typ, help_ in _CONFIG_FLAGS:
    flags = [f"--{field.replace('_', '-')}"] + ([f"--{field}"] if "_" in field else [])
    if field == "k":
      hp.add_argument(
        "--k",
        type=_k_value,
        default=None,
        help="number of classes of the labeling (default 10), or 'auto': for every K in --k-range train "
        "runs and keep the K whose runs agree most (stability, label-free; scores per K in metrics.json and "
        "k_selection.png). With --preset auto (the default on your own files) two auto runs per K, each space "
        "as phi1, within --budget; with other presets --k-seeds runs per K",
      )
      continue
    hp.add_argument(*flags, dest=field, type=typ, default=None, help=help_)
  hp.add_argument(
    "--k-range",
    type=_k_range,
    default=None,
    metavar="LO:HI",
    help="with --k auto: the K tried, LO to HI inclusive (default 2:20)",
  )
  hp.add_argument(
    "--k-seeds",
    type=_number(int, 2, "an integer >= 2"),
    default=None,
    metavar="N",
    help="with --k auto and a preset other than auto: runs per K whose agreement (stability) chooses K (default 3)",
  )
  hp.add_argument(
    "--class-sizes",
    type=_class_sizes,
    default=None,
    metavar="SIZES",
    help="the class sizes the labeling is drawn towards, instead of equal sizes (HUME's H_reg term, TURTLE's "
    "gamma term become H(prior) - KL(sizes by rank || prior)): k comma-separated counts or shares in any order, "
    "e.g. 500,120,40; or 'k-means' (--preset auto, single search): each run takes the sizes of its phi1's "
    "k-means start, label-free",
  )
  hp.add_argument(
    "--anneal",
    dest="anneal",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="divide the outer lr and tau by 10 at iterations 100 and 200",
  )
  hp.add_argument(
    "--rand-init",
    "--rand_init",
    dest="rand_init",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="fresh random inner init per subset (cold start); with --no-rand-init one init drawn once per run",
  )
  hp.add_argument(
    "--remat",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="memory: recompute the inner steps in the backward pass instead of storing them; same result",
  )

  tt = p.add_argument_group(
    "TURTLE mode (--method turtle; --k, --inner-lr, --outer-lr, --num-iters and --seed "
    "apply too, with TURTLE's defaults 10, 1e-3, 1e-3, 6000, 42)"
  )
  tt.add_argument(
    "--method",
    choices=("hume", "turtle"),
    default="hume",
    help="'hume' (default) or 'turtle': HUME's successor on the same inputs, phi1 and phi2 as "
    "two symmetric spaces, used as given (not normalised)",
  )
  tt.add_argument("--inner-steps", type=int, default=None, help="TURTLE: inner Adam steps per iteration (default 10)")
  tt.add_argument("--batch-size", type=int, default=None, help="TURTLE: samples per iteration (default 10000)")
  tt.add_argument("--gamma", type=float, default=None, help="TURTLE: weight of the per-space entropy (default 10)")
  tt.add_argument(
    "--warm-start", action="store_true", help="TURTLE: keep the inner heads and their Adam state across iterations"
  )

  ens = p.add_argument_group("evaluation protocol")
  ens.add_argument(
    "--seeds",
    type=_COUNT,
    default=1,
    metavar="N",
    help="train N runs (seeds SEED..SEED+N-1; HUME: vmapped in one program, TURTLE: one after "
    "the other); report the run with the best CV score and the majority vote of all runs matched "
    "to it (official protocol: 100)",
  )
  ens.add_argument(
    "--seed-chunk",
    type=_COUNT,
    default=None,
    metavar="C",
    help="with --seeds (HUME): train C runs at a time (default: all), to bound memory",
  )

  run = p.add_argument_group("reporting and hardware")
  run.add_argument(
    "--distributed",
    action="store_true",
    help="multi-host: call jax.distributed.initialize() first (run the same command on every "
    "host, each with the same input files); the subsets are split over the devices of all "
    "hosts and only process 0 writes --out",
  )
  run.add_argument(
    "--coordinator",
    metavar="HOST:PORT",
    help="with --distributed: address of process 0 (default: detected from the cluster, e.g. SLURM)",
  )
  run.add_argument("--num-processes", type=_COUNT, help="with --distributed: number of processes (default: detected)")
  run.add_argument(
    "--process-id",
    type=_number(int, 0, "an integer >= 0"),
    help="with --distributed: this process's index (default: detected)",
  )
  run.add_argument("--log-every", type=_COUNT, default=None, help="iterations between log lines (default 10)")
  run.add_argument(
    "--baselines",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="also report k-means on each representation and a supervised linear probe "
    "(needs labels; default: on whenever labels are given; --no-baselines to skip)",
  )
  run.add_argument(
    "--plots",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="write PNGs to --out: confusion matrix (with labels), 2-D map of phi2 coloured by the "
    "found labels, training curves (needs matplotlib; default on)",
  )
  run.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def _k_value(text: str) -> int | str:
  if text == "auto":
    return text
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _class_sizes(text: str) -> tuple[float, ...] | str:
  if text == "k-means":
    return text
  try:
    return as_prior([float(x) for x in text.split(",")])
  except ValueError:
    raise argparse.ArgumentTypeError(
      f"expected comma-separated positive class sizes (e.g. 500,120,40) or 'k-means', got {text!r}"
    ) from None


def _k_range(text: str) -> tuple[int, int]:
  try:
    lo, hi = (int(x) for x in text.split(":"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected LO:HI, e.g. 2:20, got {text!r}") from None
  if not 2 <= lo <= hi:
    raise argparse.ArgumentTypeError(f"expected 2 <= LO <= HI, got {text!r}")
  return lo, hi


def resolve_config(args: argparse.Namespace, default_preset: str) -> tuple:
  """HUME's configuration: the preset, then the HUME flags given (never a TURTLE flag)."""
  preset = args.preset or default_preset
  names = [field for field, _, _ in _CONFIG_FLAGS if field not in EXECUTION] + ["anneal", "rand_init"]
  overrides = {a: getattr(args, a) for a in names if getattr(args, a, None) not in (None, "auto")}
  if isinstance(args.class_sizes, tuple):
    overrides["prior"] = args.class_sizes
  return dataclasses.replace(PRESETS[preset], **overrides), preset


def resolve_execution(args: argparse.Namespace) -> Execution:
  """How HUME's steps run (``--subset-chunk``, ``--row-block``, ``--remat``; none changes the result)."""
  return Execution(**{a: getattr(args, a) for a in EXECUTION if getattr(args, a, None) is not None})


def turtle_config(args: argparse.Namespace) -> TurtleConfig:
  """TURTLE's configuration: its official defaults, then the TURTLE and shared flags given."""
  given = {
    a: getattr(args, a)
    for a in ("k", "inner_lr", "outer_lr", "num_iters", "seed", "inner_steps", "batch_size", "gamma")
  }
  given["prior"] = args.class_sizes if isinstance(args.class_sizes, tuple) else None  # "k-means": refused later
  return dataclasses.replace(
    TurtleConfig(warm_start=args.warm_start), **{a: v for a, v in given.items() if v is not None and v != "auto"}
  )
