"""Train HUME from the command line.

    python -m hume_jax.train                      # the default: Fashion-MNIST, CPU preset
    python -m hume_jax.train --phi1 mocov2_train.npy --phi2 dinov2_train.npy \\
        --phi1-val mocov2_test.npy --phi2-val dinov2_test.npy --labels-val y_test.npy --k 10

Writes to ``--out``: ``task_encoder.npz``, ``labels_train.npy`` (and ``labels_val.npy``),
``metrics.json``, ``config.json`` and ``log.jsonl``. Results appear only once the run has
finished (the folder is written as ``OUT.partial`` and renamed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

from hume_jax import data as hd
from hume_jax import metrics as hm
from hume_jax.auto import MAX_DIM, condition_splits
from hume_jax.config import PRESETS, HumeConfig

# Flags that set HumeConfig fields: (field, type, help). Underscore spellings of the
# official code (--inner_lr, --H_reg, ...) are accepted too.
_CONFIG_FLAGS = [
    ("k", int, "number of classes of the labeling"),
    ("inner_lr", float, "learning rate of the inner SGD that fits the linear classifier on phi2 (Eq. 5)"),
    ("outer_lr", float, "Adam learning rate of the task encoder"),
    ("tau", float, "temperature of the task encoder's sparsemax (Eq. 3)"),
    ("H_reg", float, "weight of the entropy of the mean labeling (Eq. 7)"),
    ("num_iters", int, "outer iterations"),
    ("adaptation_steps", int, "T: inner SGD steps, unrolled and differentiated through"),
    ("num_subsets", int, "S: (train, test) subsets whose losses are averaged per outer iteration"),
    ("subset_size", int, "rows per subset (clipped to the number of samples)"),
    ("train_fraction", float, "share of each subset that trains the inner classifier; the rest is held out"),
    ("seed", int, "seed of the initialisation and of every subset"),
    ("subset_chunk", int, "memory: compute the hypergradient over this many subsets at a time "
     "(a divisor of --num-subsets; 0 = automatic: all at once on a GPU, one at a time on a CPU); same result"),
    ("row_block", int, "speed: rows of phi2 per block of each inner step (0 = whole matrices; -1 = automatic: "
     "128 on a single CPU thread when a subset outgrows its L2 cache, else 0); same result up to rounding"),
]


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m hume_jax.train", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  io = p.add_argument_group("data (FILE is .npy, .npz with one array or a features array "
                            "(python -m extract_torch), or FILE.npz:KEY)")
  io.add_argument("--phi1", metavar="FILE", help="[n, d1] representation for the task encoder (the "
                  "paper's self-supervised model). Without --phi1/--phi2 the shipped default runs: "
                  "Fashion-MNIST in Open-NSFW (phi1) and EfficientNet-Lite0 (phi2) features")
  io.add_argument("--phi2", metavar="FILE", help="[n, d2] representation for the inner linear classifier "
                  "(the paper's large pretrained model)")
  io.add_argument("--labels", metavar="FILE", help="optional [n] labels of the training split (integers, or "
                  "class names as strings, numbered in sorted order), only for reporting")
  io.add_argument("--phi1-val", "--phi1_val", metavar="FILE", help="inductive setting: [m, d1] split "
                  "to predict with the trained task encoder (the CV score is computed on it)")
  io.add_argument("--phi2-val", "--phi2_val", metavar="FILE", help="[m, d2] the same split in phi2")
  io.add_argument("--labels-val", "--labels_val", metavar="FILE", help="optional [m] labels of that split")
  io.add_argument("--images", metavar="FILE", help="optional uint8 images [m, h, w] or [m, h, w, 3] of the "
                  "evaluated split (val if given, else train), in the same order: the output gets a grid of "
                  "example images per found class (automatic for the shipped dataset when the "
                  "Fashion-MNIST files are installed)")
  io.add_argument("--setting", choices=("inductive", "transductive"), default="inductive",
                  help="with a val split: 'inductive' (default) trains on the train split and predicts the "
                  "val split; 'transductive' trains on train and val together and predicts both")
  io.add_argument("--no-normalize-phi1", dest="normalize_phi1", action="store_false",
                  help="do not L2-normalise the rows of phi1 (HUME expects them normalised)")
  io.add_argument("--out", metavar="DIR", help="output folder (default: runs/<name>-<date>-<time>)")
  io.add_argument("--overwrite", action="store_true", help="replace the results in an existing --out "
                  "(or an interrupted run in OUT.partial)")
  io.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT.partial from "
                  "its last checkpoint (same data and settings; --num-iters may grow)")
  io.add_argument("--checkpoint-every", type=int, default=50, metavar="N",
                  help="iterations between checkpoints in OUT.partial/checkpoint.npz (default 50)")

  hp = p.add_argument_group("hyperparameters (defaults: the preset's; 'official' = the official code's)")
  hp.add_argument("--preset", choices=sorted(PRESETS), default=None,
                  help="'auto' (default with your data): each space centred and reduced to 128 principal "
                  "components, phi2 scaled to unit top eigenvalue, four runs (each space as phi1, from spherical "
                  "k-means centroids and from the official random start), the most separable run kept and the "
                  "labels its majority vote with the other three, iterations cut to --budget; 'official' (the "
                  "paper's settings, exactly), 'imagenet' (official ImageNet-1000 settings), 'cpu' (default for "
                  "the shipped dataset: fewer subsets and steps, chosen by the label-free CV score)")
  hp.add_argument("--budget", type=float, default=600.0, metavar="SECONDS",
                  help="with --preset auto: time for the whole search, both orders included (default 600; the "
                  "plan and its estimate are printed before training)")
  for field, typ, help_ in _CONFIG_FLAGS:
    flags = [f"--{field.replace('_', '-')}"] + ([f"--{field}"] if "_" in field else [])
    if field == "k":
      hp.add_argument("--k", type=_k_value, default=None, help="number of classes of the labeling, or 'auto': "
                      "train --k-seeds runs for every K in --k-range and keep the K whose runs agree most "
                      "(stability, label-free; scores per K in metrics.json and k_selection.png)")
      continue
    hp.add_argument(*flags, dest=field, type=typ, default=None, help=help_)
  hp.add_argument("--k-range", type=_k_range, default=(2, 20), metavar="LO:HI",
                  help="with --k auto: the K tried, LO to HI inclusive (default 2:20)")
  hp.add_argument("--k-seeds", type=int, default=3, metavar="N",
                  help="with --k auto: runs per K whose agreement (stability) chooses K (default 3)")
  hp.add_argument("--anneal", dest="anneal", action=argparse.BooleanOptionalAction,
                  default=None, help="divide the outer lr and tau by 10 at iterations 100 and 200")
  hp.add_argument("--rand-init", "--rand_init", dest="rand_init", action=argparse.BooleanOptionalAction,
                  default=None, help="fresh random inner init per subset (cold start); with "
                  "--no-rand-init one init drawn once per run")

  hp.add_argument("--remat", action=argparse.BooleanOptionalAction, default=None,
                  help="memory: recompute the inner steps in the backward pass instead of storing them; same result")

  tt = p.add_argument_group("TURTLE mode (--method turtle; --k, --inner-lr, --outer-lr, --num-iters and --seed "
                            "apply too, with TURTLE's defaults 10, 1e-3, 1e-3, 6000, 42)")
  tt.add_argument("--method", choices=("hume", "turtle"), default="hume",
                  help="'hume' (default) or 'turtle': HUME's successor on the same inputs, phi1 and phi2 as "
                  "two symmetric spaces, used as given (not normalised)")
  tt.add_argument("--inner-steps", type=int, default=None, help="TURTLE: inner Adam steps per iteration (default 10)")
  tt.add_argument("--batch-size", type=int, default=None, help="TURTLE: samples per iteration (default 10000)")
  tt.add_argument("--gamma", type=float, default=None, help="TURTLE: weight of the per-space entropy (default 10)")
  tt.add_argument("--warm-start", action="store_true", help="TURTLE: keep the inner heads and their Adam "
                  "state across iterations")

  ens = p.add_argument_group("evaluation protocol")
  ens.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train N runs (seeds SEED..SEED+N-1; HUME: vmapped in one program, TURTLE: one after "
                   "the other); report the run with the best CV score and the majority vote of all runs matched "
                   "to it (official protocol: 100). No checkpoints in this mode")
  ens.add_argument("--seed-chunk", type=int, default=None, metavar="C",
                   help="with --seeds: train C runs at a time (default: all), to bound memory")

  run = p.add_argument_group("reporting and hardware")
  run.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() first (run the same command on every "
                   "host, each with the same input files); the subsets are split over the devices of all "
                   "hosts and only process 0 writes --out")
  run.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: address of process 0 "
                   "(default: detected from the cluster, e.g. SLURM)")
  run.add_argument("--num-processes", type=int, help="with --distributed: number of processes (default: detected)")
  run.add_argument("--process-id", type=int, help="with --distributed: this process's index (default: detected)")
  run.add_argument("--log-every", type=int, default=10, help="iterations between log lines (default 10)")
  run.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=None,
                   help="also report k-means on each representation and a supervised linear probe "
                   "(needs labels; default: on whenever labels are given; --no-baselines to skip)")
  run.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="write PNGs to --out: confusion matrix (with labels), 2-D map of phi2 coloured by the "
                   "found labels, training curves (needs matplotlib; default on)")
  run.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def _k_value(text: str) -> int | str:
  if text == "auto":
    return text
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def _k_range(text: str) -> tuple[int, int]:
  try:
    lo, hi = (int(x) for x in text.split(":"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected LO:HI, e.g. 2:20, got {text!r}") from None
  if not 2 <= lo <= hi:
    raise argparse.ArgumentTypeError(f"expected 2 <= LO <= HI, got {text!r}")
  return lo, hi


# Flags of one method only; each is refused with the other, so that no flag of one method can
# change the other's configuration (e.g. TURTLE's --gamma is not HUME's annealing factor).
HUME_ONLY = ("tau", "H_reg", "adaptation_steps", "num_subsets", "subset_size", "train_fraction", "subset_chunk",
             "row_block", "anneal", "rand_init", "remat", "preset", "seed_chunk")
TURTLE_ONLY = ("inner_steps", "batch_size", "gamma", "warm_start")
SHARED = ("k", "inner_lr", "outer_lr", "num_iters", "seed")


def _flag(name: str) -> str:
  return "--" + name.replace("_", "-")


def check_method_flags(args: argparse.Namespace) -> None:
  """Refuses a flag that belongs to the other method (``--gamma`` with HUME, ``--tau`` with TURTLE)."""
  other = TURTLE_ONLY if args.method == "hume" else HUME_ONLY
  given = [_flag(a) for a in other if getattr(args, a, None) not in (None, False)]
  if given:
    owner = "TURTLE (--method turtle)" if args.method == "hume" else "HUME (--method hume)"
    raise ValueError(f"{', '.join(given)}: only for {owner}; this run is --method {args.method}")


def resolve_config(args: argparse.Namespace, default_preset: str) -> tuple[HumeConfig, str]:
  """HUME's configuration: the preset, then the HUME flags given (never a TURTLE flag)."""
  preset = args.preset or default_preset
  names = [field for field, _, _ in _CONFIG_FLAGS] + ["anneal", "rand_init", "remat"]
  overrides = {a: getattr(args, a) for a in names if getattr(args, a, None) not in (None, "auto")}
  return dataclasses.replace(PRESETS[preset], **overrides), preset


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict | None, str, list[str] | None]:
  """Returns ``(train, val or None, dataset name, class names or None)``, each split a dict of
  phi1/phi2/labels; labels given as class names are numbered in sorted order of the names."""
  if args.phi1 is None and args.phi2 is None:
    if any(getattr(args, a) for a in ("labels", "phi1_val", "phi2_val", "labels_val")):
      raise ValueError("--labels/--phi1-val/--phi2-val/--labels-val need --phi1 and --phi2")
    train, test, _ = hd.load_default()
    return train._asdict(), test._asdict(), "fashion_mnist", list(hd.FASHION_MNIST_CLASSES)
  if args.phi1 is None or args.phi2 is None:
    raise ValueError("give both --phi1 and --phi2 (or neither, for the shipped default dataset)")
  train = {"phi1": hd.check_features(hd.load_array(args.phi1, "--phi1"), "--phi1"),
           "phi2": hd.check_features(hd.load_array(args.phi2, "--phi2"), "--phi2"),
           "labels": hd.check_labels(hd.load_array(args.labels, "--labels", "labels"), "--labels") if args.labels else None}
  hd.check_same_rows({"--phi1": train["phi1"], "--phi2": train["phi2"], "--labels": train["labels"]})
  val = None
  if args.phi1_val or args.phi2_val or args.labels_val:
    if not (args.phi1_val and args.phi2_val):
      raise ValueError("the inductive setting needs both --phi1-val and --phi2-val")
    val = {"phi1": hd.check_features(hd.load_array(args.phi1_val, "--phi1-val"), "--phi1-val"),
           "phi2": hd.check_features(hd.load_array(args.phi2_val, "--phi2-val"), "--phi2-val"),
           "labels": (hd.check_labels(hd.load_array(args.labels_val, "--labels-val", "labels"), "--labels-val")
                      if args.labels_val else None)}
    hd.check_same_rows({"--phi1-val": val["phi1"], "--phi2-val": val["phi2"], "--labels-val": val["labels"]})
    for name in ("phi1", "phi2"):
      if val[name].shape[1] != train[name].shape[1]:
        raise ValueError(f"--{name}-val: expected {train[name].shape[1]} columns like --{name}, "
                         f"found {val[name].shape[1]}")
  (train["labels"], val_labels), class_names = hd.encode_label_names(train["labels"], val and val["labels"])
  if val is not None:
    val["labels"] = val_labels
  name = os.path.splitext(os.path.basename(args.phi1.split(":")[0]))[0]
  return train, val, name, class_names


def _versions() -> dict[str, str]:
  import jax
  import optax
  import sklearn
  return {"python": platform.python_version(), "jax": jax.__version__, "optax": optax.__version__,
          "numpy": np.__version__, "scikit-learn": sklearn.__version__,
          "device": str(jax.devices()[0].device_kind)}


def _table(rows: dict[str, dict[str, float]]) -> str:
  width = max(len(r) for r in rows) + 2
  lines = [f"{'method':<{width}}{'ACC':>8}{'NMI':>8}{'ARI':>8}"]
  lines += [f"{name:<{width}}" + "".join(f"{100 * m[key]:>8.1f}" for key in ("acc", "nmi", "ari"))
            for name, m in rows.items()]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
  args = build_parser().parse_args(argv)
  if args.distributed:
    import tempfile

    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # for CPU devices; GPUs use NCCL
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    if jax.process_index() != 0:  # same computation, replicated results: only process 0 keeps them
      args.out, args.overwrite, args.resume = tempfile.mkdtemp(prefix="hume-process-"), True, False
      args.quiet, args.plots, args.baselines = True, False, False
  try:
    check_method_flags(args)
    train, val, name, class_names = load_inputs(args)
    config, preset = resolve_config(args, "cpu" if name == "fashion_mnist" else "auto")
    from hume_jax._fit import check_config
    auto = preset == "auto" and args.method == "hume"
    if args.method == "hume":
      n, d1 = train["phi1"].shape
      if auto and args.seeds == 1 and args.k != "auto":  # the search may take either space as phi1
        d1 = max(d1, train["phi2"].shape[1])
      check_config(config, n, min(d1, n, MAX_DIM) if auto else d1)
    if auto and (args.seeds > 1 or args.k == "auto"):
      # Seeds and --k auto run on the conditioned spaces, in the given order, from random inits.
      train, val = condition_splits(train, val)
    elif args.normalize_phi1 and not auto and args.method == "hume":
      train["phi1"] = hd.l2_normalize(train["phi1"], "--phi1" if name != "fashion_mnist" else "phi1")
      if val is not None:
        val["phi1"] = hd.l2_normalize(val["phi1"], "--phi1-val")
  except (ValueError, KeyError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e.args[0] if e.args else e}")
  if config.subset_size > len(train["phi1"]):
    print(f"note: subset size {config.subset_size} > n = {len(train['phi1'])}: each subset is all "
          f"{len(train['phi1'])} rows (as the official code clips it)")

  if args.k == "auto" and (args.method != "hume" or args.resume):
    raise SystemExit("error: --k auto works with --method hume and without --resume")
  if args.seeds < 1:
    raise SystemExit(f"error: --seeds: expected a positive number of runs, got {args.seeds}")
  if args.seeds > 1 and args.resume:
    raise SystemExit("error: --resume continues a single run; --seeds runs have no checkpoints")
  single_auto = auto and args.seeds == 1 and args.k != "auto"
  if single_auto and args.resume:
    raise SystemExit("error: --resume continues a run of an explicit preset (--preset cpu, official or imagenet); "
                     "a --preset auto run fits its --budget and keeps no checkpoint")
  if args.resume and not args.out:
    raise SystemExit("error: --resume needs the --out of the run to continue")
  out = (args.out or os.path.join("runs", f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}")).rstrip("/")
  partial = out + ".partial"
  checkpoint_path = os.path.join(partial, "checkpoint.npz")
  if os.path.isdir(out) and os.listdir(out) and not args.overwrite:
    raise SystemExit(f"error: --out {out} already holds files ({', '.join(sorted(os.listdir(out))[:5])}); "
                     "choose another folder or pass --overwrite")
  if args.resume and not os.path.exists(checkpoint_path):
    raise SystemExit(f"error: --resume: no checkpoint {checkpoint_path} to continue from")
  if not args.resume and os.path.exists(checkpoint_path) and not args.overwrite:
    raise SystemExit(f"error: {partial} holds an interrupted run; pass --resume to continue it or "
                     "--overwrite to start again")
  labeled_train = train  # baselines (the supervised probe) never see val labels
  if args.setting == "transductive" and val is not None:
    both = {key: np.concatenate([train[key], val[key]]) for key in ("phi1", "phi2")}
    both["labels"] = (np.concatenate([train["labels"], val["labels"]])
                      if train["labels"] is not None and val["labels"] is not None else None)
    print(f"transductive: training on train + val ({len(both['phi1'])} samples)")
    train = both
  evaluation = val if val is not None else train
  labels_known = evaluation["labels"] is not None
  images = _load_images(args, name, len(evaluation["phi1"]))

  # Imported here so that --help and input errors come back without initialising JAX.
  import jax

  versions = _versions()
  print(f"{args.method.upper()} on {name}: train n={len(train['phi1'])}, d1={train['phi1'].shape[1]}, "
        f"d2={train['phi2'].shape[1]}" + (f"; val n={len(val['phi1'])}" if val is not None else "")
        + f"; device {jax.devices()[0].platform} ({versions['device']})")
  if args.method == "turtle":
    from hume_jax.turtle import TurtleConfig, check_turtle_config
    given = {"k": args.k, "inner_lr": args.inner_lr, "outer_lr": args.outer_lr, "num_iters": args.num_iters,
             "seed": args.seed, "inner_steps": args.inner_steps, "batch_size": args.batch_size,
             "gamma": args.gamma}
    config = dataclasses.replace(TurtleConfig(warm_start=args.warm_start),
                                 **{key: v for key, v in given.items() if v is not None})
    try:
      check_turtle_config(config, len(train["phi1"]))
    except ValueError as e:
      raise SystemExit(f"error: {e}") from None
    print("TURTLE: " + ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)))
  elif single_auto:
    print(f"preset 'auto' (label-free conditioning, k-means start and order of the spaces; --preset official for "
          f"the paper's settings): k={config.k}, budget {args.budget:.0f} s")
  else:
    print(f"preset '{preset}'" + (" (smaller than the official settings so that it runs on a CPU in "
                                  "minutes; pass --preset official for the paper's)" if preset == "cpu" else "")
          + ": " + ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)))

  if args.method == "hume" and args.remat is None and args.subset_chunk is None and not single_auto:
    from hume_jax.memory import device_memory_bytes, plan_memory
    budget = device_memory_bytes()
    try:
      # Plan the program that is compiled: --seeds vmaps a chunk of runs; --k auto vmaps --k-seeds
      # runs per K, the largest at the top of --k-range.
      runs = (args.seed_chunk or args.seeds) if args.seeds > 1 else (args.k_seeds if args.k == "auto" else 1)
      largest = dataclasses.replace(config, k=args.k_range[1]) if args.k == "auto" else config
      planned, peak = plan_memory(largest, len(train["phi1"]), train["phi1"].shape[1], train["phi2"].shape[1],
                                  budget, runs=runs)
      planned = dataclasses.replace(planned, k=config.k)
    except MemoryError as e:
      raise SystemExit(f"error: {e}")
    if planned != config:
      print(f"memory: one outer step would not fit in {budget / 2**30:.1f} GiB; using --remat"
            + (f" --subset-chunk {planned.subset_chunk}" if planned.subset_chunk else "")
            + f" ({peak / 2**30:.1f} GiB, same result)")
      config = planned

  k_selection = None
  if args.k == "auto":
    k_selection = _select_k(args, config, train, evaluation)
    config = dataclasses.replace(config, k=k_selection["chosen_k"])
  if args.method == "turtle" and args.seeds > 1:
    preds, results, encoder = _train_turtle_seeds(args, config, train, val, evaluation)
  elif args.method == "turtle":
    preds, results, encoder = _train_turtle(args, config, train, val, evaluation, out, partial, checkpoint_path,
                                            argv)
  elif single_auto:
    preds, results, encoder, config = _train_auto(args, config, train, val)
  elif args.seeds > 1:
    preds, results, encoder = _train_seeds(args, config, train, val, evaluation)
  else:
    preds, results, encoder = _train_one(args, config, train, val, evaluation, out, partial, checkpoint_path, argv)
  eval_split = results["cv_split"]
  if k_selection is not None:
    results["k_selection"] = k_selection

  for split, pred in preds.items():
    sizes = hm.cluster_sizes(pred, config.k)
    entry = {"n": int(len(pred)), "cluster_sizes": sizes, "nonempty_classes": sum(s > 0 for s in sizes),
             "smallest_class": min(sizes)}
    y = (val if split.startswith("val") else train)["labels"]
    if y is not None:
      entry.update(hm.evaluate(pred, y))
    results["splits"][split] = entry
  run_baselines = args.baselines if args.baselines is not None else True  # cheap reference points, with labels
  table = None
  if labels_known:
    table = {label: results["splits"][split] for label, split in results.pop("_table_rows")}
    if run_baselines:
      if labeled_train["labels"] is None:
        print("note: no --labels for the training split: baselines skipped")
      else:
        from hume_jax.baselines import run_baselines as baselines
        print("computing baselines (k-means, linear probe) ...")
        results["baselines"] = baselines(labeled_train, evaluation, config.k, seed=config.seed)
        table.update(results["baselines"])
  results.pop("_table_rows", None)

  os.makedirs(partial, exist_ok=True)
  np.savez(os.path.join(partial, "task_encoder.npz"), **encoder)
  for split, pred in preds.items():
    np.save(os.path.join(partial, f"labels_{split}.npy"), pred.astype(np.int64))
  with open(os.path.join(partial, "metrics.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(partial, "config.json"), "w") as f:
    json.dump({args.method: dataclasses.asdict(config), "preset": preset if args.method == "hume" else None, "dataset": name, "seeds": args.seeds,
               "inputs": {a: getattr(args, a) for a in ("phi1", "phi2", "labels", "phi1_val", "phi2_val",
                                                        "labels_val")},
               "class_names": class_names, "normalize_phi1": args.normalize_phi1, "command": _command(argv),
               "versions": versions}, f, indent=2)
  if args.plots:
    _write_plots(partial, preds, train, val, eval_split, k_selection, images,
                 class_names=class_names)
  if os.path.isdir(out):
    shutil.rmtree(out)
  os.replace(partial, out)

  print(f"\nCV score ({eval_split}): {results['cv_score']:.4f}   (label-free; higher = labeling more "
        "linearly separable in phi2)")
  sizes = results["splits"][eval_split]
  print(f"cluster sizes ({eval_split}): {sizes['cluster_sizes']}; {sizes['nonempty_classes']} of {config.k} "
        f"classes non-empty, the smallest has {sizes['smallest_class']} samples")
  for split, entry in results["splits"].items():
    if entry["nonempty_classes"] < config.k:
      print(f"warning: only {entry['nonempty_classes']} of the {config.k} requested classes are non-empty on the "
            f"{split} split")
  if table:
    print(f"\n{eval_split} split, {len(evaluation['phi1'])} samples, in %:\n" + _table(table))
  print(f"\ntrained in {results['train_seconds']:.1f} s; results in {out}/")
  return results


def _command(argv: list[str] | None) -> str:
  """The command line that reproduces this run, pasteable in a shell."""
  import shlex
  return shlex.join(["python", "-m", "hume_jax.train"] + list(sys.argv[1:] if argv is None else argv))


def _load_images(args, name: str, n: int) -> np.ndarray | None:
  """The images of the evaluated split for the example grid, or None."""
  if args.images:
    images = hd.load_array(args.images, "--images")
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
      raise SystemExit(f"error: --images: expected uint8 [m, h, w] or [m, h, w, 3], found {images.dtype} "
                       f"{images.shape}")
    if len(images) != n:
      raise SystemExit(f"error: --images: expected {n} images (one per row of the evaluated split), found "
                       f"{len(images)}")
    return images
  if name == "fashion_mnist" and args.plots:
    images = hd.load_default_images()  # the shipped split is the first 10,000 test images
    return None if images is None else images[:n]
  return None


def _write_plots(folder, preds, train, val, eval_split, k_selection=None, images=None, class_names=None):
  import importlib.util
  if importlib.util.find_spec("matplotlib") is None:
    print("note: matplotlib is not installed: no plots (pip install matplotlib)")
    return
  from hume_jax import plots
  for split in (eval_split, f"{eval_split}_vote"):
    if split not in preds:
      continue
    data = val if split.startswith("val") else train
    plots.embedding_map(data["phi2"], preds[split], os.path.join(folder, f"map_{split}.png"))
    if data["labels"] is not None:
      plots.confusion_matrix(preds[split], data["labels"], os.path.join(folder, f"confusion_{split}.png"),
                             class_names=class_names)
    if images is not None:
      plots.cluster_examples(images, preds[split], os.path.join(folder, f"examples_{split}.png"))
  if k_selection is not None:
    plots.k_selection(k_selection["scores"], k_selection["chosen_k"], os.path.join(folder, "k_selection.png"))
  log_path = os.path.join(folder, "log.jsonl")
  if os.path.exists(log_path):
    log = [json.loads(line) for line in open(log_path) if line.strip()]
    if log:
      plots.training_curves(log, os.path.join(folder, "curves.png"))


def _checkpointed(args, config, template, data_id, out, partial, checkpoint_path, argv, run):
  """A run with checkpoints, shared by HUME and TURTLE: resumes from ``checkpoint_path`` (with
  ``--resume``; its log kept up to the checkpoint's iteration), writes ``log.jsonl`` in
  ``partial`` and says how to continue after Ctrl-C. ``run(state, on_log, on_checkpoint)``
  trains from ``state`` and returns the final state. Returns ``(final state, seconds)``."""
  from hume_jax.checkpoint import load_checkpoint, save_checkpoint

  state = template
  history_kept: list[str] = []
  if args.resume:
    try:
      state = load_checkpoint(checkpoint_path, template, config, data_id)
    except ValueError as e:
      raise SystemExit(f"error: {e}")
    done = int(state.step)
    log_path = os.path.join(partial, "log.jsonl")
    if os.path.exists(log_path):
      history_kept = [line for line in open(log_path) if line.strip() and json.loads(line)["iteration"] <= done]
    print(f"resuming from iteration {done} ({checkpoint_path})")
  else:
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
  log_file = open(os.path.join(partial, "log.jsonl"), "w")
  log_file.writelines(history_kept)
  log_file.flush()

  def on_log(record: dict) -> None:
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()

  resume_cmd = " ".join(["python -m hume_jax.train"] + [a for a in (argv if argv is not None else sys.argv[1:])
                                                          if a not in ("--resume", "--overwrite")]
                        + ([] if args.out else ["--out", out]) + ["--resume"])
  t0 = time.perf_counter()
  try:
    state = run(state, on_log, lambda st: save_checkpoint(checkpoint_path, st, config, data_id))
  except KeyboardInterrupt:
    raise SystemExit(f"\ninterrupted; checkpoint in {checkpoint_path}. Continue with:\n  {resume_cmd}") from None
  except FloatingPointError as e:
    kept = f"last good checkpoint: {checkpoint_path}" if os.path.exists(checkpoint_path) else "no checkpoint yet"
    raise SystemExit(f"error: {e}\n{kept}; log: {os.path.join(partial, 'log.jsonl')}") from None
  finally:
    log_file.close()
  return state, time.perf_counter() - t0


def _one_run_results(method, label, train, val, evaluation, seconds):
  """Predictions of one trained run on each split (``label(split)``: its hard labels) and its
  results: the CV score on the evaluation split."""
  preds = {"train": label(train)}
  if val is not None:
    preds["val"] = label(val)
  eval_split = "val" if val is not None else "train"
  print("computing the CV score (10-fold logistic regression on phi2 of the found labels) ...")
  results = {"cv_score": hm.cv_score(evaluation["phi2"], preds[eval_split]), "cv_split": eval_split,
             "train_seconds": seconds, "splits": {}, "_table_rows": [(method, eval_split)]}
  return preds, results


def _train_one(args, config, train, val, evaluation, out, partial, checkpoint_path, argv):
  """One HUME run with checkpoints; returns (predictions per split, results, encoder)."""
  import jax

  from hume_jax._fit import fit, predict
  from hume_jax._outer import init_state
  from hume_jax.checkpoint import data_fingerprint

  template = init_state(jax.random.PRNGKey(config.seed), config, train["phi1"].shape[1], train["phi2"].shape[1])

  def run(state, on_log, on_checkpoint):
    return fit(train["phi1"], train["phi2"], config, labels=train["labels"], log_every=args.log_every,
               progress=not args.quiet, on_log=on_log, state=state, checkpoint_every=args.checkpoint_every,
               on_checkpoint=on_checkpoint)[0]

  state, seconds = _checkpointed(args, config, template, data_fingerprint(train["phi1"], train["phi2"]), out,
                                 partial, checkpoint_path, argv, run)
  preds, results = _one_run_results("HUME", lambda split: predict(state.encoder, split["phi1"]), train, val,
                                    evaluation, seconds)
  return preds, results, _encoder_arrays(state.encoder)


def _train_auto(args, config, train, val):
  """``--preset auto``: ``hume_jax.auto.fit_auto`` on the raw spaces; the chosen order becomes
  phi1/phi2 of ``train`` and ``val`` (in place) for everything reported after."""
  from hume_jax._task_encoder import encoder_matrix
  from hume_jax.auto import fit_auto, vote_labels

  t0 = time.perf_counter()
  try:
    res = fit_auto(train["phi1"], train["phi2"], config.k, budget_seconds=args.budget, seed=config.seed,
                   progress=not args.quiet, config=config, num_iters=args.num_iters)
  except KeyboardInterrupt:
    raise SystemExit("\ninterrupted; a --preset auto run keeps no checkpoint (it fits --budget): run it again") from None
  except FloatingPointError as e:
    raise SystemExit(f"error: {e}") from None
  seconds = time.perf_counter() - t0
  # The vote reads the raw spaces in the given order, so it is computed before they are swapped.
  voted = {id(split): vote_labels(res, split["phi1"], split["phi2"]) for split in (train, val) if split is not None}
  if res.order == ("b", "a"):
    for split in (train, val):
      if split is not None:
        split["phi1"], split["phi2"] = split["phi2"], split["phi1"]
  preds, results = _one_run_results("HUME (auto)", lambda split: voted[id(split)], train, val,
                                    val if val is not None else train, seconds)
  flags = {"a": "--phi1", "b": "--phi2"}
  results["auto"] = {"phi1": flags[res.order[0]], "phi2": flags[res.order[1]],
                     "criterion": "separability: chance-corrected 5-fold CV score (kappa) of the labeling in "
                                  "each conditioned space, averaged (label-free)",
                     "candidates": [{**c, "phi1": flags[c["phi1"]], "phi2": flags[c["phi2"]]} for c in res.candidates],
                     "labels": ("majority vote of the runs, matched to the kept run" if res.vote["used"]
                                else "the kept run (the vote left a class empty)"),
                     "vote": res.vote, "plan": res.plan}
  # The kept run as before (E and its conditioning: argmax(condition(x) @ E.T)), then every run
  # (run{i}_*) with its map to the kept run's numbering, from which vote_labels rebuilds the vote.
  encoder = _encoder_arrays(res.state.encoder)
  for role, c in res.conditioning.items():
    encoder.update({f"{role}_mean": c.mean, f"{role}_components": c.components, f"{role}_scale": np.asarray(c.scale)})
  for i, r in enumerate(res.members):
    c = r.conditioning
    encoder.update({f"run{i}_E": np.asarray(encoder_matrix(r.encoder)), f"run{i}_reads": np.asarray(flags[r.phi1]),
                    f"run{i}_mean": c.mean, f"run{i}_components": c.components,
                    f"run{i}_to_kept": r.to_reference})
  encoder["kept_run"] = np.asarray(res.reference)
  encoder["labels_are_vote"] = np.asarray(res.vote["used"])
  return preds, results, encoder, res.config


def _train_seeds(args, config, train, val, evaluation):
  """``--seeds N`` HUME runs vmapped in one program; the best-CV run and the majority vote."""
  from hume_jax.ensemble import fit_seeds, predict_seeds

  seeds = [config.seed + i for i in range(args.seeds)]
  t0 = time.perf_counter()
  try:
    states = fit_seeds(train["phi1"], train["phi2"], config, seeds, chunk=args.seed_chunk,
                       progress=not args.quiet)
  except FloatingPointError as e:
    raise SystemExit(f"error: {e}") from None
  seconds = time.perf_counter() - t0
  all_preds = {"train": predict_seeds(states, train["phi1"])}
  if val is not None:
    all_preds["val"] = predict_seeds(states, val["phi1"])
  preds, results = _seed_results("HUME", seeds, all_preds, config.k, val, evaluation, seconds)
  return preds, results, _encoder_arrays(states.encoder)


def _train_turtle_seeds(args, config, train, val, evaluation):
  """``--seeds N`` TURTLE runs, one after the other; the best-CV run and the majority vote."""
  from hume_jax.turtle import fit_turtle, predict_turtle

  seeds = [config.seed + i for i in range(args.seeds)]
  phis = [train["phi1"], train["phi2"]]
  t0 = time.perf_counter()
  encoders, all_preds = [], {"train": []}
  if val is not None:
    all_preds["val"] = []
  for i, seed in enumerate(seeds):
    print(f"TURTLE run {i + 1} of {len(seeds)} (seed {seed})")
    try:
      state, _ = fit_turtle(phis, dataclasses.replace(config, seed=seed), progress=not args.quiet,
                            log_every=args.log_every, labels=train["labels"])
    except (FloatingPointError, ValueError) as e:
      raise SystemExit(f"error: {e}") from None
    encoders.append(state.encoder)
    all_preds["train"].append(predict_turtle(state.encoder, phis))
    if val is not None:
      all_preds["val"].append(predict_turtle(state.encoder, [val["phi1"], val["phi2"]]))
  seconds = time.perf_counter() - t0
  all_preds = {split: np.stack(p) for split, p in all_preds.items()}
  preds, results = _seed_results("TURTLE", seeds, all_preds, config.k, val, evaluation, seconds)
  best = seeds.index(results["best_seed"])
  return preds, results, _head_arrays(encoders[best])


def _seed_results(method, seeds, all_preds, k, val, evaluation, seconds):
  """Predictions and results of several seeds: each run's CV score (and metrics with labels),
  the best-CV run and the majority vote aligned to it."""
  from hume_jax.ensemble import majority_vote

  eval_split = "val" if val is not None else "train"
  print(f"computing the CV score of each of the {len(seeds)} runs ...")
  cvs = [hm.cv_score(evaluation["phi2"], p) for p in all_preds[eval_split]]
  best = int(np.argmax(cvs))
  per_seed = []
  for i, s in enumerate(seeds):
    entry = {"seed": s, "cv_score": cvs[i]}
    if evaluation["labels"] is not None:
      entry.update(hm.evaluate(all_preds[eval_split][i], evaluation["labels"]))
    per_seed.append(entry)
  preds = {}
  for split, p in all_preds.items():
    preds[split] = p[best]
    preds[f"{split}_vote"] = majority_vote(p, best, k)
  results = {"cv_score": cvs[best], "cv_split": eval_split, "best_seed": seeds[best],
             "train_seconds": seconds, "seeds": per_seed, "splits": {},
             "_table_rows": [(f"{method} best-CV run (seed {seeds[best]})", eval_split),
                             (f"{method} majority vote ({len(seeds)} runs)", f"{eval_split}_vote")]}
  if evaluation["labels"] is not None:
    results["over_seeds"] = {m: {"mean": float(np.mean([e[m] for e in per_seed])),
                                 "std": float(np.std([e[m] for e in per_seed]))} for m in ("acc", "nmi", "ari")}
    print("over seeds: " + ", ".join(f"{m.upper()} {100 * v['mean']:.1f} +- {100 * v['std']:.1f}"
                                     for m, v in results["over_seeds"].items()))
  return preds, results


def _select_k(args, config, train, evaluation) -> dict:
  """--k auto: for each K in --k-range, --k-seeds runs (vmapped); the chosen K is the one
  whose runs agree most (stability: mean pairwise ARI of their labelings, label-free)."""
  from hume_jax._fit import check_config
  from hume_jax.ensemble import fit_seeds, predict_seeds
  lo, hi = args.k_range
  seeds = [config.seed + i for i in range(args.k_seeds)]
  scores = []
  for k in range(lo, hi + 1):
    cfg = dataclasses.replace(config, k=k)
    try:
      check_config(cfg, len(train["phi1"]), train["phi1"].shape[1])
    except ValueError as e:
      print(f"K={k}: skipped ({e})")
      continue
    preds = predict_seeds(fit_seeds(train["phi1"], train["phi2"], cfg, seeds, progress=False), evaluation["phi1"])
    entry = {"k": k, "stability": hm.stability(preds), "cv_score": hm.cv_score(evaluation["phi2"], preds[0]),
             "kappa": hm.cv_kappa(evaluation["phi2"], preds[0])}
    if evaluation["labels"] is not None:
      entry["acc"] = hm.hungarian_accuracy(preds[0], evaluation["labels"])
    scores.append(entry)
    print(f"K={k}: stability {entry['stability']:.4f}, CV {entry['cv_score']:.4f}, chance-corrected CV "
          f"{entry['kappa']:.4f}" + (f", ACC {entry['acc']:.4f} (not used)" if "acc" in entry else ""), flush=True)
  if not scores:
    raise SystemExit("error: --k-range holds no K that this data allows")
  chosen = max(scores, key=lambda e: e["stability"])["k"]
  print(f"--k auto: chose K={chosen}")
  return {"criterion": f"stability: mean pairwise ARI of {len(seeds)} runs (label-free)", "chosen_k": chosen,
          "scores": scores}


def _encoder_arrays(encoder) -> dict[str, np.ndarray]:
  """``raw``, ``base`` and ``E`` of one task encoder, or of stacked ones (``[N, ...]``)."""
  import jax

  from hume_jax._task_encoder import encoder_matrix
  E = jax.vmap(encoder_matrix)(encoder) if encoder.raw.ndim == 3 else encoder_matrix(encoder)
  return {"raw": np.asarray(encoder.raw), "base": np.asarray(encoder.base), "E": np.asarray(E)}


def _train_turtle(args, config, train, val, evaluation, out, partial, checkpoint_path, argv):
  """TURTLE on the two spaces (phi1, phi2), with checkpoints; returns (predictions, results, head arrays)."""
  import jax

  from hume_jax._fit import compute_dtype
  from hume_jax.checkpoint import data_fingerprint
  from hume_jax.turtle import fit_turtle, init_turtle, predict_turtle

  phis = [train["phi1"], train["phi2"]]
  template = init_turtle(jax.random.PRNGKey(config.seed), config, tuple(x.shape[1] for x in phis),
                         compute_dtype(phis[0]))

  def run(state, on_log, on_checkpoint):
    try:
      return fit_turtle(phis, config, progress=not args.quiet, log_every=args.log_every, labels=train["labels"],
                        on_log=on_log, state=state, checkpoint_every=args.checkpoint_every,
                        on_checkpoint=on_checkpoint)[0]
    except ValueError as e:
      raise SystemExit(f"error: {e}") from None

  state, seconds = _checkpointed(args, config, template, data_fingerprint(*phis), out, partial, checkpoint_path,
                                 argv, run)
  preds, results = _one_run_results(
      "TURTLE", lambda split: predict_turtle(state.encoder, [split["phi1"], split["phi2"]]), train, val, evaluation,
      seconds)
  return preds, results, _head_arrays(state.encoder)


def _head_arrays(encoder) -> dict[str, np.ndarray]:
  """``v1, g1, b1, v2, ...``: the TURTLE heads of each space."""
  arrays = {}
  for m, head in enumerate(encoder, start=1):
    arrays.update({f"v{m}": np.asarray(head.v), f"g{m}": np.asarray(head.g), f"b{m}": np.asarray(head.b)})
  return arrays


if __name__ == "__main__":
  main()
