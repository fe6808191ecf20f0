"""What the command line prints and draws: the plan before training, an estimate of long work,
the results table and the figures."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os

import numpy as np

from hume_jax import runs
from hume_jax.io import data as hd
from hume_jax.report import __doc__ as doc
from hume_jax.report import plots as hp
from hume_jax.report import write_report
from hume_jax.search.premise import summary_line
from hume_jax.search.sizes import SHORT

ESTIMATE_ABOVE = 120.0  # seconds of work left above which a run says how long it will take
DEFAULT_MODELS = (
  "open_nsfw",
  "efficientnet_lite0",
)  # the shipped default's phi1 and phi2 (hume_jax.io.data.load_default)


def _model(spec: str) -> str:
  """The model an extraction file (``python -m extract_torch``) records in its meta, else the file's name."""
  path = hd._split_key(spec)[0]
  if path.endswith(".npz") and os.path.isfile(path):
    try:
      with np.load(path, allow_pickle=False) as f:
        model = json.loads(str(f["meta"])).get("model") if "meta" in f.files else None
    except (OSError, ValueError, AttributeError):
      model = None
    if model:
      return str(model)
  return os.path.basename(spec)


def space_names(args, swapped: bool = False) -> dict[str, str]:
  """How the console, ``metrics.json`` and the figures name the spaces in the roles ``phi1`` and ``phi2``:
  by flag and by the model its extraction file records (else the file's name), e.g. ``{"phi1": "--phi2
  (b.npy)", "phi2": "--phi1 (a.npy)"}`` when ``--preset auto`` kept ``--phi2`` as phi1 (``swapped``); the
  shipped default's by its models."""
  if args.phi1 is None:
    names = {role: f"{role} ({model})" for role, model in zip(("phi1", "phi2"), DEFAULT_MODELS)}
  else:
    names = {role: f"--{role} ({_model(getattr(args, role))})" for role in ("phi1", "phi2")}
  return {"phi1": names["phi2"], "phi2": names["phi1"]} if swapped else names


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


def prior_hint(results: dict) -> str:
  """What a user can do about classes far below the prior's sizes."""
  if results.get("class_size_prior") is None:
    return "equal sizes are the default: if the classes are unequal, give them with --class-sizes"
  if results.get("class_size_source") == "k-means":
    return "the sizes of the k-means starts (--class-sizes k-means) may not fit this data: try without"
  return "the sizes given may not fit this data"


def final(
  results: dict,
  k: int,
  table: dict | None,
  n_eval: int,
  out: str,
  page: str | None = None,
  elapsed: float = 0.0,
  budget: float | None = None,
) -> None:
  """The results as the console's last lines, with the whole run's ``elapsed`` seconds against ``budget`` (the
  command line's ``--budget``, where one applied); the very last one points to ``report.html`` (``page``)."""
  eval_split, phi2 = results["cv_split"], results.get("spaces", {}).get("phi2", "phi2")
  print(
    f"\nCV score ({eval_split}): {results['cv_score']:.4f}   (label-free; higher = labeling more "
    f"linearly separable in {phi2})"
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
  for split, entry in results["splits"].items():
    if entry.get("short_classes"):
      said = ", ".join(f"class {c['class']}: {c['found']} (prior {c['prior']:.0f})" for c in entry["short_classes"])
      print(
        f"warning: on the {split} split, {len(entry['short_classes'])} found classes are under {SHORT:.0%} of "
        f"the size the prior gives their rank ({said}); {prior_hint(results)}"
      )
  for cut in results.get("auto", {}).get("plan", {}).get("cuts", []):
    print(f"budget: {cut}")
  if "premise" in results:
    print(summary_line(results["premise"]))
    if results["premise"]["warning"]:
      print(f"warning: {results['premise']['warning']}")
  if table:
    print(f"\n{eval_split} split, {n_eval} samples, in %:\n" + _table(table))
  whole = f"; the whole run {elapsed:.0f} s" + (
    ""
    if budget is None
    else f" of its --budget of {budget:.0f} s"
    if elapsed <= budget
    else f", over its --budget of {budget:.0f} s by {elapsed - budget:.0f} s"
  )
  print(f"\ntrained in {results['train_seconds']:.1f} s{whole}; results in {out}/")
  if page:
    print(f"report: {os.path.join(out, 'report.html')} (open it in a browser: the classes found, with examples)")


def plots(
  folder: str,
  run,
  train: dict,
  val: dict | None,
  k_selection=None,
  images=None,
  class_names=None,
  entropy_max: float | None = None,
  names: dict[str, str] | None = None,
) -> None:
  """The PNGs of a run in ``folder``: map (of the space in the role phi2, called by ``names``),
  confusion matrix (with labels), examples, curves."""
  if importlib.util.find_spec("matplotlib") is None:
    print("note: matplotlib is not installed: no plots (pip install matplotlib)")
    return

  for split in (run.cv_split, f"{run.cv_split}_vote"):
    if split not in run.preds:
      continue
    data = val if split.startswith("val") else train
    pred = run.preds[split]
    space = (names or {}).get("phi2", "phi2")
    hp.embedding_map(data["phi2"], pred, os.path.join(folder, f"map_{split}.png"), space=space)
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
      sized = getattr(run.config, "prior", None) is not None
      hp.training_curves(log, os.path.join(folder, "curves.png"), entropy_max=entropy_max, sized=sized)


def entropy_max(method, k: int, prior=None) -> float:
  """The largest entropy the log can show: ln K for HUME, summed over the two spaces for TURTLE; with
  a class-size prior the largest size term, ``H(prior)`` (``_objective.size_term``)."""
  p = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, np.float64)
  return float(-np.sum(p * np.log(p)) * (2 if method is runs.TURTLE_METHOD else 1))


def html(folder: str, images=None, shown_as: str | None = None, say=print) -> str | None:
  """``report.html`` of the run in ``folder`` (``hume_jax.report``); returns its path, or None with
  a note when it cannot be written (the run's results are kept either way). ``say`` announces it."""
  say("writing report.html (the classes found, with examples) ...")
  try:
    return write_report(folder, images=images, shown_as=shown_as)
  except (OSError, ValueError, KeyError) as e:
    print(f"note: no report.html ({e}); write it later with python -m hume_jax.report {shown_as or folder}")
    return None


def report_main(argv: list[str] | None = None) -> None:
  """``python -m hume_jax.report RUN_DIR [--images FILE] [--root FOLDER]``."""
  p = argparse.ArgumentParser(
    prog="python -m hume_jax.report", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of python -m hume_jax.train")
  p.add_argument(
    "--images",
    default=None,
    metavar="FILE",
    help="uint8 images [m, h, w(, 3)] of the evaluated split, in its order (default: the run's --images)",
  )
  p.add_argument(
    "--root",
    default=None,
    metavar="FOLDER",
    help="the folder of the image files an extraction recorded, when it has moved",
  )
  args = p.parse_args(argv)
  try:
    path = write_report(args.run_dir, images=args.images, root=args.root)
  except (OSError, ValueError, KeyError) as e:
    raise SystemExit(f"error: {e.args[0] if e.args else e}") from None
  print(f"report: {path}")
