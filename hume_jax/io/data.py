"""Reading representations and labels from ``.npy`` / ``.npz`` files, with clear errors.

A file argument is ``path.npy``, ``path.npz`` (when it holds one array) or
``path.npz:key``. Files are never unpickled (``allow_pickle=False``). A ``.npy`` file is
memory-mapped: a float32 one stays on disk and is read in row batches (checks, fingerprint,
conditioning), so inputs larger than memory pass through; an ``.npz`` member is read whole.
"""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from typing import NamedTuple

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
DEFAULT_DATASET = os.path.join(DATA_DIR, "fashion_mnist.npz")


def _split_key(spec: str) -> tuple[str, str | None]:
  path, sep, key = spec.rpartition(":")
  if sep and path.endswith(".npz") and key and "/" not in key:
    return path, key
  return spec, None


def load_array(spec: str, what: str, default_key: str = "features") -> np.ndarray:
  """Loads the array named by ``spec`` (``file.npy``, ``file.npz`` or ``file.npz:key``).

  An ``.npz`` with several arrays needs ``:key``, except one holding ``default_key``
  (``features`` of an ``python -m extract_torch`` output; ``labels`` for label files). A ``.npy``
  comes back memory-mapped, read-only.

  Args:
    spec: the file (and key) to read.
    what: the role of the array in messages (the CLI passes its flag, e.g. ``"--phi1"``).
  """
  path, key = _split_key(spec)
  if os.path.isdir(path):
    raise ValueError(
      f"{what}: {path} is a folder; expected a .npy or .npz file (FILE.npz:KEY for one array of an .npz)"
    )
  if not os.path.exists(path):
    raise FileNotFoundError(f"{what}: no such file {path}")
  if os.path.getsize(path) == 0:
    raise ValueError(f"{what}: {path} is empty (0 bytes)")
  with open(path, "rb") as f:
    magic = f.read(6)
  if not (magic.startswith(b"\x93NUMPY") or magic.startswith(b"PK\x03\x04")):
    raise ValueError(
      f"{what}: cannot read {path}: not a .npy or .npz file (it starts with {magic!r}); "
      "save arrays with np.save or np.savez"
    )
  try:
    loaded = np.load(path, allow_pickle=False, mmap_mode="r")
  except ValueError as e:
    if "object arrays" in str(e).lower() or "python objects" in str(e).lower():
      raise ValueError(
        f"{what}: {path} holds Python objects (a pickled array); expected a numeric "
        "array. Save it with np.save(path, np.asarray(x, dtype=np.float32))"
      ) from None
    cut = ", it may be truncated" if "length is greater than file size" in str(e) else ""
    raise ValueError(f"{what}: cannot read {path} as .npy/.npz{cut} ({e})") from None
  except (OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{what}: cannot read {path} as .npy/.npz, it may be truncated ({e})") from None
  if isinstance(loaded, np.lib.npyio.NpzFile):
    with loaded:
      keys = list(loaded.keys())
      if key is None and len(keys) == 1:
        key = keys[0]
      if key is None and default_key in keys:  # e.g. a file written by python -m extract_torch
        key = default_key
      if key is None and len(keys) != 1:
        raise KeyError(f"{what}: {path} holds {len(keys)} arrays; name one as {path}:KEY. Its keys are {keys}")
      if key not in keys:
        raise KeyError(f"{what}: {path} has no key {key!r}; its keys are {keys}")
      try:
        return loaded[key]
      except ValueError:
        raise ValueError(f"{what}: {path}:{key} holds Python objects; expected a numeric array") from None
  if key is not None:
    raise ValueError(f"{what}: {path} is a .npy file; a key ({key!r}) is only meaningful for .npz")
  return loaded


def _check_shape(x: np.ndarray, what: str) -> None:
  if x.ndim != 2:
    raise ValueError(f"{what}: expected a 2-D array [n, d], found shape {x.shape}")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{what}: expected a non-empty array [n, d], found shape {x.shape}")


# Rows per batch when a check reads a (possibly memory-mapped) array: memory stays BATCH x d.
BATCH = 65_536


def _check_finite(x: np.ndarray, what: str) -> None:
  bad = [np.nonzero(~np.isfinite(x[i : i + BATCH])) for i in range(0, len(x), BATCH)]
  if any(len(r) for r, _ in bad):
    rows = np.unique(np.concatenate([r + i * BATCH for i, (r, _) in enumerate(bad)]))
    raise ValueError(
      f"{what}: expected finite values, found {sum(len(r) for r, _ in bad)} NaN/inf in "
      f"{len(rows)} rows (first rows: {rows[:5].tolist()})"
    )


def _check_varies(x: np.ndarray, what: str) -> None:
  """A space whose rows are all identical carries nothing to classify by."""
  if len(x) > 1 and not any((x[i : i + BATCH] != x[0]).any() for i in range(0, len(x), BATCH)):
    raise ValueError(
      f"{what}: expected rows that differ, found all {len(x)} rows identical (a constant space separates nothing)"
    )


def check_features(x: np.ndarray, what: str) -> np.ndarray:
  """Checks a representation is a finite 2-D array ``[n, d]`` of real numbers whose rows are
  not all identical; returns it as float32 (a float32 memory map as it is, still on disk)."""
  if x.dtype.kind == "c":
    raise ValueError(f"{what}: expected real numbers [n, d], found dtype {x.dtype} (complex); pass .real or abs()")
  if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise ValueError(f"{what}: expected a numeric array [n, d], found dtype {x.dtype}")
  _check_shape(x, what)
  x = x if x.dtype == np.float32 else x.astype(np.float32)
  _check_finite(x, what)
  _check_varies(x, what)
  return x


# The largest number of classes labels may number: the scores match classes in a dense [C, C] table.
MAX_CLASSES = 10_000
# The fewest rows a split may have: the label-free CV score's folds (``hume_jax.evaluation.metrics.cv_score``).
MIN_ROWS = 10


def check_labels(y: np.ndarray, what: str) -> np.ndarray:
  """Checks labels are a 1-D array of non-negative integers, or of class names (strings, which
  ``encode_label_names`` numbers); returns integers as int64, names as they are."""
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise ValueError(f"{what}: expected a 1-D array of labels [n], found shape {y.shape}")
  if y.dtype.kind in "US":
    return y
  if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
    y = y.astype(np.int64)
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{what}: expected integer class labels, found dtype {y.dtype}")
  if y.size and y.min() < 0:
    raise ValueError(f"{what}: expected labels >= 0, found minimum {int(y.min())}")
  if y.size and y.max() >= MAX_CLASSES:
    raise ValueError(
      f"{what}: expected class numbers 0..C-1 with C at most {MAX_CLASSES}, found maximum {int(y.max())}; "
      "number the classes from 0 (np.unique(y, return_inverse=True)[1]) or give their names"
    )
  return y.astype(np.int64)


def encode_label_names(*labels: np.ndarray | None) -> tuple[list, list[str] | None]:
  """Labels given as class names (strings) numbered ``0..C-1`` in sorted order of the names of
  all given arrays together, so that every split shares one numbering; returns ``(labels,
  names)``, ``names`` None when every array already holds integers."""
  named = [y for y in labels if y is not None and y.dtype.kind in "US"]
  if not named:
    return list(labels), None
  if len(named) != sum(y is not None for y in labels):
    raise ValueError("labels: expected class names in every labels file or in none, found both names and numbers")
  names = np.unique(np.concatenate([y.astype(str) for y in named]))
  return [None if y is None else np.searchsorted(names, y.astype(str)).astype(np.int64) for y in labels], names.tolist()


def check_same_rows(arrays: dict[str, np.ndarray]) -> None:
  """All arrays describe the same samples: the same number of rows."""
  rows = {name: len(a) for name, a in arrays.items() if a is not None}
  if len(set(rows.values())) > 1:
    raise ValueError("expected the same number of rows (one per sample) in " + ", ".join(rows) + f"; found {rows}")


def check_enough_rows(x: np.ndarray, what: str, needed: int = MIN_ROWS) -> None:
  """At least ``needed`` rows (samples): the CV score that rates a labeling splits them in
  ``MIN_ROWS`` folds."""
  if len(x) < needed:
    raise ValueError(
      f"{what}: expected at least {needed} rows (samples; the CV score uses {MIN_ROWS} folds), found {len(x)}"
    )


def l2_normalize(phi: np.ndarray, what: str) -> np.ndarray:
  """Rows scaled to unit L2 norm (phi1 must be, paper Sec. 2.2); all-zero rows are an error."""
  norms = np.linalg.norm(phi, axis=1, keepdims=True)
  zero = np.nonzero(norms[:, 0] == 0)[0]
  if len(zero):
    raise ValueError(
      f"{what}: cannot L2-normalise {len(zero)} all-zero rows (first rows: {zero[:5].tolist()}); remove them"
    )
  return phi / norms


class Split(NamedTuple):
  """One split of a dataset: ``phi1 [n, d1]``, ``phi2 [n, d2]``, optional ``labels [n]``."""

  phi1: np.ndarray
  phi2: np.ndarray
  labels: np.ndarray | None


def load_default(
  phi1_model: str = "open_nsfw", phi2_model: str = "efficientnet_lite0", path: str = DEFAULT_DATASET
) -> tuple[Split, Split, dict]:
  """The shipped default: Fashion-MNIST (10k train, 10k test) in two pretrained representations.

  Returns ``(train, test, meta)``; see ``extract_torch/prepare_default.py`` for how it is made.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"default dataset {path} is missing; rebuild it with `python -m extract_torch.prepare_default`"
    )
  with np.load(path, allow_pickle=False) as f:
    meta = json.loads(str(f["meta"]))
    splits = [
      Split(
        f[f"{phi1_model}_{s}"].astype(np.float32),
        f[f"{phi2_model}_{s}"].astype(np.float32),
        f[f"labels_{s}"].astype(np.int64),
      )
      for s in ("train", "test")
    ]
  return splits[0], splits[1], meta


# Where Debian's ``dataset-fashion-mnist`` package puts the original IDX files.
FASHION_MNIST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
FASHION_MNIST_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)


def load_default_images(path: str = FASHION_MNIST_IMAGES) -> np.ndarray | None:
  """The images of the shipped test split, ``uint8 [10000, 28, 28]``, or None when the
  Fashion-MNIST files are not installed. IDX format: a 16-byte header, then the pixels."""
  if not os.path.exists(path):
    return None
  with gzip.open(path, "rb") as f:
    raw = f.read()
  if int.from_bytes(raw[:4], "big") != 2051:
    raise ValueError(f"{path}: not an IDX image file (magic {int.from_bytes(raw[:4], 'big')}, expected 2051)")
  n, h, w = (int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in (1, 2, 3))
  return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)


def check_fit_inputs(
  phi1, phi2, labels=None, *, unit_phi1: bool = True, names: tuple[str, str] = ("phi1", "phi2")
) -> None:
  """The CLI's checks, for the Python API (``fit``, ``fit_seeds``, ``fit_turtle``, ``fit_auto``):
  2-D finite arrays with one row per sample and, for HUME's ``phi1``, L2-normalised rows
  (paper Sec. 2.2). Raises ``ValueError`` naming the array (``names``), what was expected and
  what was found."""
  arrays = {names[0]: phi1, names[1]: phi2}
  for what, x in arrays.items():
    x = np.asarray(x)
    _check_shape(x, what)
    _check_finite(x, what)
  check_same_rows({**arrays, "labels": labels})
  if unit_phi1:
    rows = range(0, len(phi1), BATCH)  # in batches: no float64 copy of a large phi1
    norms = np.concatenate([np.linalg.norm(np.asarray(phi1[i : i + BATCH], np.float64), axis=1) for i in rows])
    if np.abs(norms - 1).max() > 1e-3:
      raise ValueError(
        f"{names[0]}: expected L2-normalised rows (HUME's task encoder, paper Sec. 2.2), found row "
        f"norms from {norms.min():.4g} to {norms.max():.4g}; normalise with "
        f"hume_jax.io.data.l2_normalize(phi1, 'phi1')"
      )
