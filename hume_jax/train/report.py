"""What the command line prints and draws: the plan before training, an estimate of long work,
the results table and the figures."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np

from hume_jax import runs

ESTIMATE_ABOVE = 120.0  # seconds of work left above which a run says how long it will take


def banner(method: str, name: str, train: dict, val: dict | None, device: str) -> None:
  print(
    f"{method} on {name}: train n={len(train['phi1'])}, d1={train['phi1'].shape[1]}, "
    f"d2={train['phi2'].shape[1]}" + (f"; val n={len(val['phi1'])}" if val is not None else "") + f"; device {device}"
  )


def config_line(mode, config, budget: float) -> None:
  if mode.method is runs.TURTLE_METHOD:
    print("TURTLE: " + ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)))
  elif mode.auto_k:
    print(
      f"preset 'auto' for every K (label-free conditioning, k-means and random starts, both orders of the "
      f"spaces), the K whose runs agree most; budget {budget:.0f} s for the search over K"
    )
  elif mode.single_auto:
    print(
      f"preset 'auto' (label-free conditioning, k-means start and order of the spaces; --preset official for "
      f"the paper's settings): k={config.k}, budget {budget:.0f} s"
    )
  else:
    print(
      f"preset '{mode.preset}'"
      + (
        " (smaller than the official settings so that it runs on a CPU in "
        "minutes; pass --preset official for the paper's)"
        if mode.preset == "cpu"
        else ""
      )
      + ": "
      + ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config))
    )


def _duration(seconds: float) -> str:
  if seconds < 120:
    return f"{seconds:.0f} s"
  return f"{seconds / 60:.0f} minutes" if seconds < 7200 else f"{seconds / 3600:.1f} hours"


def estimator(mode, what: str = "this run"):
  """``on_estimate`` of the training loop: says, once, how long the rest of a long run takes,
  and (for settings that do not fit a budget) how to get a result sooner."""

  def on_estimate(seconds_per_iteration: float, left: int) -> None:
    total = seconds_per_iteration * left
    if total < ESTIMATE_ABOVE:
      return
    print(
      f"\nmeasured {seconds_per_iteration:.3g} s per iteration: about {_duration(total)} for the {left} "
      f"iterations left of {what}",
      flush=True,
    )
    if not mode.single_auto:
      print(
        "for a result sooner: fewer --num-iters, or --preset auto --budget SECONDS (HUME with label-free "
        "conditioning, planned to fit the time given); Ctrl-C or SIGTERM keeps a checkpoint to --resume",
        flush=True,
      )

  return on_estimate


def _table(rows: dict[str, dict[str, float]]) -> str:
  width = max(len(r) for r in rows) + 2
  lines = [f"{'method':<{width}}{'ACC':>8}{'NMI':>8}{'ARI':>8}"]
  lines += [
    f"{name:<{width}}" + "".join(f"{100 * m[key]:>8.1f}" for key in ("acc", "nmi", "ari")) for name, m in rows.items()
  ]
  return "\n".join(lines)


def final(results: dict, k: int, table: dict | None, n_eval: int, out: str) -> None:
  eval_split = results["cv_split"]
  print(
    f"\nCV score ({eval_split}): {results['cv_score']:.4f}   (label-free; higher = labeling more "
    "linearly separable in phi2)"
  )
  sizes = results["splits"][eval_split]
  print(
    f"cluster sizes ({eval_split}): {sizes['cluster_sizes']}; {sizes['nonempty_classes']} of {k} "
    f"classes non-empty, the smallest has {sizes['smallest_class']} samples"
  )
  for split, entry in results["splits"].items():
    if entry["nonempty_classes"] < k:
      print(
        f"warning: only {entry['nonempty_classes']} of the {k} requested classes are non-empty on the {split} split"
      )
  for cut in results.get("auto", {}).get("plan", {}).get("cuts", []):
    print(f"budget: {cut}")
  if "premise" in results:
    from hume_jax.premise import summary_line

    print(summary_line(results["premise"]))
    if results["premise"]["warning"]:
      print(f"warning: {results['premise']['warning']}")
  if table:
    print(f"\n{eval_split} split, {n_eval} samples, in %:\n" + _table(table))
  print(f"\ntrained in {results['train_seconds']:.1f} s; results in {out}/")


def plots(
  folder: str,
  run,
  train: dict,
  val: dict | None,
  k_selection=None,
  images=None,
  class_names=None,
  entropy_max: float | None = None,
) -> None:
  """The PNGs of a run in ``folder``: map, confusion matrix (with labels), examples, curves."""
  if importlib.util.find_spec("matplotlib") is None:
    print("note: matplotlib is not installed: no plots (pip install matplotlib)")
    return
  from hume_jax import plots as hp

  for split in (run.cv_split, f"{run.cv_split}_vote"):
    if split not in run.preds:
      continue
    data = val if split.startswith("val") else train
    pred = run.preds[split]
    hp.embedding_map(data["phi2"], pred, os.path.join(folder, f"map_{split}.png"))
    if data["labels"] is not None:
      hp.confusion_matrix(pred, data["labels"], os.path.join(folder, f"confusion_{split}.png"), class_names=class_names)
    if images is not None:
      hp.cluster_examples(images, pred, os.path.join(folder, f"examples_{split}.png"))
  if k_selection is not None:
    hp.k_selection(k_selection.scores, k_selection.chosen_k, os.path.join(folder, "k_selection.png"))
  log_path = os.path.join(folder, "log.jsonl")
  if os.path.exists(log_path):
    log = [json.loads(line) for line in open(log_path) if line.strip()]
    if log:
      hp.training_curves(log, os.path.join(folder, "curves.png"), entropy_max=entropy_max)


def entropy_max(method, k: int) -> float:
  """The largest entropy the log can show: ln K for HUME, summed over the two spaces for TURTLE."""
  return float(np.log(k) * (2 if method is runs.TURTLE_METHOD else 1))
