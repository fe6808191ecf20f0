"""``report.html``: a run's found classes to look at, in one self-contained page.

For each found class its size, its most typical and its least confident samples (thumbnails, or the
texts quoted) and its nearest other class, all chosen without labels; with labels the confusion
matrix and per-class precision and recall; the premise verdict in words; and the protocol (auto's
candidates, vote, refinement and budget cuts; the seeds and their vote; the curve over K). The page
embeds its images as ``data:`` URIs and has no script: it opens offline in any browser.

    python -m hume_jax.report RUN_DIR          # (re)writes RUN_DIR/report.html from a saved run

The samples come from ``--images`` (a ``uint8`` array file, one image per evaluated sample), from the
sources an extraction file records (image files, texts, an ``npy:`` array), or are absent with a note.
"""

from __future__ import annotations

import json
import os
import shlex

import numpy as np

from hume_jax.io import data as hd
from hume_jax.report import _html as page
from hume_jax.report import _media as media_

EXAMPLES = 8  # typical and least confident samples shown per class (images)
TEXT_EXAMPLES = 5  # the same, for texts


def examples(spaces: list[np.ndarray], pred: np.ndarray, k: int, count: int = EXAMPLES) -> list[dict]:
  """Per found class, without labels: its size, its ``count`` most typical members (highest mean
  cosine, over ``spaces``, to the class's mean direction of the centred rows), its ``count`` least
  confident ones (smallest lead of that cosine over the best other class's) and its nearest other
  class (the one most of its members rank second, with that share)."""
  n = len(pred)
  scores = np.zeros((n, k), np.float64)
  for x in spaces:
    z = np.asarray(x, np.float64) - np.mean(x, axis=0)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    directions = np.stack([z[pred == c].mean(0) if np.any(pred == c) else np.zeros(z.shape[1]) for c in range(k)])
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    scores += z @ directions.T / len(spaces)
  own = scores[np.arange(n), pred]
  others = scores.copy()
  others[np.arange(n), pred] = -np.inf
  second, lead = others.argmax(1), own - others.max(1)
  classes = []
  for c in range(k):
    members = np.flatnonzero(pred == c)
    typical = members[np.argsort(-own[members], kind="stable")][:count]
    rest = np.setdiff1d(members, typical)
    doubtful = rest[np.argsort(lead[rest], kind="stable")][:count]
    runner = np.bincount(second[members], minlength=k) if len(members) and k > 1 else np.zeros(k, np.int64)
    nearest = int(runner.argmax()) if runner.any() else None
    share = float(runner.max() / len(members)) if runner.any() else 0.0
    classes.append(
      {"id": c, "size": len(members), "typical": typical, "doubtful": doubtful, "nearest": nearest, "share": share}
    )
  return classes


def _load(run_dir: str, name: str) -> dict:
  path = os.path.join(run_dir, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{run_dir}: no {name}; expected the output folder of python -m hume_jax.train")
  with open(path) as f:
    return json.load(f)


def _reported_labels(run_dir: str, split: str) -> tuple[np.ndarray, str]:
  """The labels the run reports on its evaluated split: the seeds' vote when there is one."""
  for name in (f"labels_{split}_vote.npy", f"labels_{split}.npy"):
    path = os.path.join(run_dir, name)
    if os.path.isfile(path):
      return np.load(path, allow_pickle=False).astype(np.int64), name
  raise FileNotFoundError(f"{run_dir}: no labels_{split}.npy")


def _started_in(run_dir: str, config: dict) -> str | None:
  """The folder the run was started in: ``run_dir`` less the ``--out`` of the recorded command
  (``runs/NAME`` by default), or None when they do not match."""
  words = shlex.split(config.get("command", ""))
  given = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]
  out = os.path.normpath(given[-1] if given else os.path.join("runs", os.path.basename(os.path.normpath(run_dir))))
  here = os.path.normpath(os.path.abspath(run_dir))
  if os.path.isabs(out):
    return None
  return here[: -len(out)] if here.endswith(os.sep + out) else None


def _resolve(spec: str | None, base: str | None) -> str | None:
  """A recorded input (``FILE`` or ``FILE.npz:KEY``) found from here, or from the run's own start folder."""
  if not spec:
    return spec
  path, key = hd._split_key(spec)
  if os.path.exists(path) or base is None or os.path.isabs(path) or not os.path.exists(os.path.join(base, path)):
    return spec
  return os.path.join(base, path) + (f":{key}" if key else "")


def _evaluated(config: dict, split: str, base: str | None = None) -> tuple[dict, list[str]]:
  """The evaluated split's ``phi1``, ``phi2``, ``labels`` (or None) and its files (inputs recorded
  in ``config.json``, relative to here or to ``base``; the shipped default's test split); notes for
  what could not be read."""
  inputs, notes = {k: _resolve(v, base) for k, v in config.get("inputs", {}).items()}, []
  suffix = "_val" if split == "val" else ""
  if inputs.get("phi1") is None and config.get("dataset") == "fashion_mnist":
    train, test, _ = hd.load_default()
    chosen = test if split == "val" else train
    return {"phi1": chosen.phi1, "phi2": chosen.phi2, "labels": chosen.labels, "files": []}, notes
  files = [inputs.get(f"phi1{suffix}"), inputs.get(f"phi2{suffix}")]
  out = {"files": [hd._split_key(f)[0] for f in files if f]}
  try:
    out["phi1"], out["phi2"] = (hd.load_array(f, f"--{n}{suffix}") for f, n in zip(files, ("phi1", "phi2")))
  except (ValueError, KeyError, FileNotFoundError, TypeError) as e:
    notes.append(f"the features are not readable here ({e}); no examples")
  out["labels"] = None
  spec = inputs.get(f"labels{suffix}")
  if spec:
    try:
      out["labels"] = hd.encode_label_names(hd.check_labels(hd.load_array(spec, "--labels", "labels"), spec))[0][0]
    except (ValueError, KeyError, FileNotFoundError) as e:
      notes.append(f"the labels are not readable here ({e})")
  return out, notes


def recorded_images(config: dict) -> str | None:
  """The ``--images`` of the recorded command, or None."""
  words = shlex.split(config.get("command", ""))
  for i, word in enumerate(words):
    if word == "--images" and i + 1 < len(words):
      return words[i + 1]
    if word.startswith("--images="):
      return word.split("=", 1)[1]
  return None


def find_media(config: dict, files: list[str], n: int, images=None, root: str | None = None) -> media_.Media:
  """The samples to show: ``images`` (an array, or a file), the recorded ``--images``, the shipped
  images of the default dataset, or what an extraction file records (``root`` overrides its folder)."""
  spec = images if isinstance(images, str) else (None if images is not None else recorded_images(config))
  if spec is not None:
    if not os.path.isfile(hd._split_key(spec)[0]):
      return media_.Media("none", note=f"--images {spec} is not here; pass --images FILE")
    images = hd.load_array(spec, "--images")
  if images is not None:
    if images.dtype != np.uint8 or len(images) != n:
      return media_.Media("none", note=f"--images: expected {n} uint8 images, found {images.dtype} {images.shape}")
    shipped = config.get("dataset") == "fashion_mnist" and not files
    note = f"images of {spec}" if spec else ("Fashion-MNIST test images" if shipped else "the images the run was given")
    return media_.Media("images", images=images, note=note)
  if config.get("dataset") == "fashion_mnist" and not files:
    shipped = hd.load_default_images()
    if shipped is not None and len(shipped) >= n:
      return media_.Media("images", images=shipped[:n], note="Fashion-MNIST test images")
    return media_.Media("none", note="the Fashion-MNIST image files are not installed (dataset-fashion-mnist)")
  found = [m for m in (media_.recorded(f, root) for f in files) if m is not None]
  found.sort(key=lambda m: m.kind == "none")
  if found:
    return found[0]
  return media_.Media(
    "none", note="no images: the features files record no sources (python -m extract_torch does); pass --images FILE"
  )


def gather(run_dir: str, images=None, root: str | None = None) -> dict:
  """Everything the page shows, read from a saved run: ``metrics.json``, ``config.json``, the
  reported labels, and the evaluated split's features, labels and samples (when they are here)."""
  metrics, config = _load(run_dir, "metrics.json"), _load(run_dir, "config.json")
  split = metrics["cv_split"]
  pred, labels_file = _reported_labels(run_dir, split)
  k = len(metrics["splits"][split]["cluster_sizes"])
  data, notes = _evaluated(config, split, _started_in(run_dir, config))
  spaces = [data[s] for s in ("phi1", "phi2") if s in data and len(data[s]) == len(pred)]
  if len(spaces) < 2 and not notes:
    notes.append("the features files hold other samples than the run's labels; no examples")
  media = find_media(config, data["files"], len(pred), images, root) if spaces else media_.Media("none")
  count = TEXT_EXAMPLES if media.kind == "texts" else EXAMPLES
  truth = data["labels"] if data["labels"] is not None and len(data["labels"]) == len(pred) else None
  return {
    "run_dir": run_dir,
    "metrics": metrics,
    "config": config,
    "split": split,
    "labels_file": labels_file,
    "pred": pred,
    "k": k,
    "classes": examples(spaces, pred, k, count) if len(spaces) == 2 else None,
    "media": media,
    "truth": truth,
    "class_names": config.get("class_names"),
    "notes": notes,
    "figures": {f: os.path.join(run_dir, f) for f in sorted(os.listdir(run_dir)) if f.endswith(".png")},
  }


def write_report(run_dir: str, images=None, root: str | None = None, shown_as: str | None = None) -> str:
  """``run_dir/report.html`` from the saved run in ``run_dir``; returns its path. ``images`` (an
  array or a file) and ``root`` (the folder of recorded image files) override what the run records;
  ``shown_as`` is the folder's name on the page (the final name of a folder still being written)."""
  view = gather(run_dir, images, root)
  view["shown_as"] = shown_as or run_dir
  path = os.path.join(run_dir, "report.html")
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(page.render(view))
  os.replace(tmp, path)
  return path
