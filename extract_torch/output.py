"""The files an extraction writes: ``OUT.npz``, or ``OUT.npy`` with its sidecar ``OUT.meta.npz``.

``OUT.npz`` holds ``features`` and the samples' record (``indices``, ``sources``, ``labels`` when
the dataset has them, ``meta``). ``OUT.npy`` holds only the features, ``float32 [n, dim]``, a plain
array ``np.load(OUT, mmap_mode="r")`` maps without reading it; the record goes to the sidecar
``OUT.meta.npz`` (``sidecar_path``), the same arrays an ``.npz`` output holds besides ``features``.
The ``.npy`` is assembled from the chunk files row block by row block into a memory map, so no
more than one chunk is ever held. Every file is written to a temporary name in its folder, synced
to disk, then renamed into place; the sidecar first, so that ``OUT.npy`` existing means both are
complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable

import numpy as np


def sidecar_path(out: str) -> str:
  """Where the samples' record of an ``.npy`` output goes: ``OUT.npy`` -> ``OUT.meta.npz``; None for ``.npz``."""
  return out[:-4] + ".meta.npz" if out.endswith(".npy") else None


def check_output(out: str, overwrite: bool) -> None:
  """Refuses an output path that ends in neither ``.npz`` nor ``.npy``, that exists (or, for ``.npy``,
  whose sidecar exists) unless ``overwrite``, that is a folder, or whose folder cannot be written;
  before any extraction. A sidecar left by an interrupted run (its ``OUT.partial`` still there) is
  replaced when that run is resumed."""
  if not out.endswith((".npz", ".npy")):
    raise ValueError(f"--out {out}: expected a path ending in .npz or .npy")
  side = sidecar_path(out)
  for path in (out, side):
    if path is not None and os.path.isdir(path):
      raise ValueError(f"--out {out}: {path} is a folder; expected a file path ending in .npz or .npy")
  if os.path.exists(out + ".partial") and not os.path.isdir(out + ".partial"):
    raise ValueError(f"--out {out}: {out}.partial is a file, expected the folder of an interrupted run")
  parent = os.path.dirname(os.path.abspath(out))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise ValueError(f"--out {out}: cannot write in {parent}; choose another --out")
  if os.path.exists(out) and not overwrite:
    raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
  if side is not None and os.path.exists(side) and not overwrite and not os.path.isdir(out + ".partial"):
    raise FileExistsError(f"--out {out}: its sidecar {side} exists; pass --overwrite to replace it")


def _sync_dir(folder: str) -> None:
  with contextlib.suppress(OSError):  # not every system syncs a folder
    fd = os.open(folder, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


@contextlib.contextmanager
def _atomic(path: str):
  """Yields a temporary name beside ``path`` (same extension) to write; then syncs it and renames it
  to ``path``. On failure the temporary file is removed and ``path`` is untouched."""
  tmp = path[:-4] + ".tmp" + path[-4:]
  try:
    yield tmp
    with open(tmp, "rb") as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
  _sync_dir(os.path.dirname(os.path.abspath(path)))


def samples_record(source, meta: dict) -> dict[str, np.ndarray]:
  """``indices``, ``sources``, ``labels`` (when the source has them) and ``meta`` (a JSON string)."""
  arrays = {"indices": source.index(), "sources": source.source()}
  if source.labels is not None:
    arrays["labels"] = np.asarray(source.labels, np.int64)
  arrays["meta"] = np.array(json.dumps(meta))
  return arrays


def write_npy(out: str, blocks: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
  """``blocks`` (row blocks, in order) as one float32 ``.npy`` of ``shape``, written through a memory
  map and renamed into place; returns it memory-mapped, read-only."""
  with _atomic(out) as tmp:
    x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    row = 0
    for block in blocks:
      x[row : row + len(block)] = block
      row += len(block)
    if row != shape[0]:
      raise ValueError(f"{out}: {row} rows written, expected {shape[0]}")
    x.flush()
    del x
  return np.load(out, mmap_mode="r")


def write_output(out: str, features, source, meta: dict, shape: tuple[int, int] | None = None) -> dict:
  """``OUT``, atomically: for ``.npz`` one file with ``features`` and the samples' record; for ``.npy``
  the record in ``sidecar_path(OUT)``, then the features. ``features`` is an array, or (for ``.npy``,
  with ``shape``) an iterable of row blocks. Returns the arrays written (``.npy`` features memory-mapped)."""
  record = samples_record(source, meta)
  side = sidecar_path(out)
  if side is None:
    arrays = {"features": features if shape is None else np.concatenate(list(features)), **record}
    with _atomic(out) as tmp:
      np.savez(tmp, **arrays)
    return arrays
  with _atomic(side) as tmp:
    np.savez(tmp, **record)
  blocks = [features] if shape is None else features
  return {"features": write_npy(out, blocks, np.shape(features) if shape is None else shape), **record}
