"""The command line's inputs: the files its flags name, read and checked, and the splits as
trained on (conditioned, normalised, transductive)."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from hume_jax import runs
from hume_jax.config import check_config, check_turtle_config
from hume_jax.core._plan import check_execution
from hume_jax.io import data as hd
from hume_jax.search.conditioning import condition_splits, kept_dims
from hume_jax.train.checks import Mode
from hume_jax.train.flags import resolve_config, resolve_execution, turtle_config


def _extraction_class_names(spec: str | None) -> list[str] | None:
  """The class names an extraction file (``python -m extract_torch``) records in its meta."""
  path = hd._split_key(spec)[0] if spec else ""
  if not path.endswith(".npz") or not os.path.isfile(path):
    return None
  with np.load(path, allow_pickle=False) as f:
    if "meta" not in f.files:
      return None
    names = json.loads(str(f["meta"])).get("class_names")
  return list(names) if names else None


def _read_split(args, suffix: str) -> dict:
  """``--phi1{suffix}``, ``--phi2{suffix}``, ``--labels{suffix}`` read and checked."""
  flag = lambda name: f"--{name}{suffix.replace('_', '-')}"
  files = {name: getattr(args, name + suffix) for name in ("phi1", "phi2", "labels")}
  split = {name: hd.check_features(hd.load_array(files[name], flag(name)), flag(name)) for name in ("phi1", "phi2")}
  split["labels"] = (
    hd.check_labels(hd.load_array(files["labels"], flag("labels"), "labels"), flag("labels"))
    if files["labels"]
    else None
  )
  hd.check_same_rows({flag(name): split[name] for name in ("phi1", "phi2", "labels")})
  hd.check_enough_rows(split["phi1"], f"{flag('phi1')} {files['phi1']}")
  return split


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
  train, val = _read_split(args, ""), None
  if args.phi1_val or args.phi2_val or args.labels_val:
    if not (args.phi1_val and args.phi2_val):
      raise ValueError("the inductive setting needs both --phi1-val and --phi2-val")
    val = _read_split(args, "_val")
    for name in ("phi1", "phi2"):
      if val[name].shape[1] != train[name].shape[1]:
        raise ValueError(
          f"--{name}-val: expected {train[name].shape[1]} columns like --{name}, found {val[name].shape[1]}"
        )
  (train["labels"], val_labels), class_names = hd.encode_label_names(train["labels"], val and val["labels"])
  if val is not None:
    val["labels"] = val_labels
  if class_names is None and train["labels"] is not None:
    class_names = _extraction_class_names(args.labels)
  name = os.path.splitext(os.path.basename(args.phi1.split(":")[0]))[0]
  return train, val, name, class_names


def configure(args: argparse.Namespace, train: dict, name: str) -> tuple[Mode, object]:
  """The mode and config of a command line, checked against the data (before any work)."""
  if args.method == "turtle":
    if args.k == "auto":
      raise ValueError("--k auto works with --method hume")
    config = turtle_config(args)
    check_turtle_config(config, len(train["phi1"]))
    return Mode(runs.TURTLE_METHOD, None, False, args.seeds, False), config
  config, preset = resolve_config(args, "cpu" if name == "fashion_mnist" else "auto")
  mode = Mode(runs.HUME_METHOD, preset, preset == "auto", args.seeds, args.k == "auto", resolve_execution(args))
  n, d1 = train["phi1"].shape
  if mode.budgeted:  # the search may take either space as phi1
    d1 = max(d1, train["phi2"].shape[1])
  check_config(config, n, min(d1, n, kept_dims(config.k)) if mode.auto else d1)
  check_execution(mode.execution, config)
  return mode, config


def splits(args, mode: Mode, train: dict, val: dict | None, name: str):
  """The splits as trained on: conditioned (seeds / K auto under --preset auto), phi1
  L2-normalised (explicit presets) and, transductive, train + val. Returns ``(train, val,
  the labeled training split of the baselines)``."""
  if mode.auto and not mode.budgeted:  # seeds: the conditioned spaces, in the given order, from random inits
    train, val = condition_splits(train, val, kept_dims(int(args.k)))
  elif args.normalize_phi1 and mode.method is runs.HUME_METHOD and not mode.auto:
    try:
      train["phi1"] = hd.l2_normalize(train["phi1"], "--phi1" if name != "fashion_mnist" else "phi1")
      if val is not None:
        val["phi1"] = hd.l2_normalize(val["phi1"], "--phi1-val")
    except ValueError as e:
      raise ValueError(f"{e} or pass --no-normalize-phi1") from None
  labeled = train  # the supervised probe never sees val labels
  if args.setting == "transductive":
    both = {key: np.concatenate([train[key], val[key]]) for key in ("phi1", "phi2")}
    both["labels"] = (
      np.concatenate([train["labels"], val["labels"]])
      if train["labels"] is not None and val["labels"] is not None
      else None
    )
    print(f"transductive: training on train + val ({len(both['phi1'])} samples)")
    train = both
  return train, val, labeled


def load_images(args, name: str, n: int) -> np.ndarray | None:
  """The images of the evaluated split for the example grid, or None."""
  if args.images:
    images = hd.load_array(args.images, "--images")
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
      raise ValueError(f"--images: expected uint8 [m, h, w] or [m, h, w, 3], found {images.dtype} {images.shape}")
    if len(images) != n:
      raise ValueError(f"--images: expected {n} images (one per row of the evaluated split), found {len(images)}")
    return images
  if name == "fashion_mnist" and args.plots:
    images = hd.load_default_images()  # the shipped split is the first 10,000 test images
    return None if images is None else images[:n]
  return None
