"""Checkpoints of a run's state: one ``.npz``, written atomically (write to a file of this
process, then rename) with a SHA-256 of its content that every read verifies.

Every leaf of the state (HUME's ``TrainState``: task encoder, Adam moments, inner init, key,
step; TURTLE's; or several stacked) is stored exactly, so a resumed run ends bit-identical to an
uninterrupted one. A checkpoint that is cut short, altered, emptied or not a checkpoint at all
raises ``CorruptCheckpoint`` (a ``ValueError``) naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
import zlib

import jax
import numpy as np

from hume_jax.config import HumeConfig
from hume_jax.core._outer import TrainState


def _leaf_names(state: TrainState) -> list[str]:
  paths, _ = zip(*jax.tree_util.tree_flatten_with_path(state)[0])
  return [jax.tree_util.keystr(p) for p in paths]


class CorruptCheckpoint(ValueError):
  """A checkpoint that cannot be read back as it was written; its message names the file."""


def _checksum(arrays: dict) -> str:
  """SHA-256 of every array's name, dtype, shape and bytes (``checksum`` itself left out)."""
  h = hashlib.sha256()
  for name in sorted(k for k in arrays if k != "checksum"):
    a = np.ascontiguousarray(arrays[name])
    h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _read(path: str) -> dict:
  """Every array of the checkpoint ``path``, its checksum verified (a checkpoint of an earlier
  version, written without one, is read as it is). Raises ``CorruptCheckpoint``."""
  try:
    with np.load(path, allow_pickle=False) as f:
      if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError("one array, not a checkpoint's archive")
      arrays = {name: f[name] for name in f.files}
  except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
    reason = " ".join(str(e).split()) or type(e).__name__
    if "pickled" in reason or "allow_pickle" in reason:
      reason = "not a .npz archive"
    raise CorruptCheckpoint(f"checkpoint {path} is damaged or not a checkpoint ({reason})") from None
  missing = [k for k in ("names", "config", "data_id") if k not in arrays]
  if missing:
    raise CorruptCheckpoint(f"checkpoint {path} is damaged or not a checkpoint (no {', '.join(missing)})")
  if "checksum" in arrays and str(arrays["checksum"]) != _checksum(arrays):
    raise CorruptCheckpoint(f"checkpoint {path} is damaged (its content does not match its checksum)")
  return arrays


def save_checkpoint(path: str, state: TrainState, config: HumeConfig, data_id: str = "", extra: str = "") -> None:
  """Writes ``state``, ``config``, ``data_id`` (a fingerprint of the inputs) and an optional
  ``extra`` string (e.g. JSON about the state) to ``path`` atomically."""
  leaves = jax.tree_util.tree_leaves(state)
  arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
  arrays["names"] = np.array(_leaf_names(state))
  arrays["config"] = np.array(json.dumps(dataclasses.asdict(config)))
  arrays["data_id"] = np.array(data_id)
  arrays["extra"] = np.array(extra)
  arrays["checksum"] = np.array(_checksum(arrays))
  tmp = f"{path}.tmp-{os.getpid()}.npz"  # one per process: no writer renames another's
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def load_checkpoint(path: str, template: TrainState, config: HumeConfig, data_id: str = "") -> TrainState:
  """Reads a checkpoint into the structure of ``template``; configs (all but ``num_iters``: a run may be
  resumed to run longer) and ``data_id`` must agree. How the run is executed (``Execution``) is not in
  the config, so it may change.

  Raises:
    CorruptCheckpoint: when the file is damaged (truncated, altered, not a checkpoint).
    ValueError: when the checkpoint belongs to a run with other hyperparameters or shapes.
  """
  f = _read(path)
  try:
    saved = json.loads(str(f["config"]))
  except ValueError:
    raise CorruptCheckpoint(f"checkpoint {path} is damaged (its config is not JSON)") from None
  ours = json.loads(json.dumps(dataclasses.asdict(config)))
  ours["num_iters"] = saved.get("num_iters")  # where the run stops, not what it is: the state holds its iteration
  diff = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v}
  if diff:
    raise ValueError(
      f"checkpoint {path} was written with other settings "
      f"({', '.join(f'{k}: {a} there, {b} here' for k, (a, b) in diff.items())}); "
      "resume with the same settings"
    )
  if str(f["data_id"]) != data_id:
    raise ValueError(
      f"checkpoint {path} was written for other input data "
      f"(fingerprint {str(f['data_id'])[:12]}, these inputs {data_id[:12]}); resume with the same files"
    )
  names = list(f["names"])
  if names != _leaf_names(template) or any(f"leaf_{i}" not in f for i in range(len(names))):
    raise ValueError(f"checkpoint {path} does not hold a TrainState of this version")
  leaves = [f[f"leaf_{i}"] for i in range(len(names))]
  template_leaves, treedef = jax.tree_util.tree_flatten(template)
  for name, a, b in zip(names, leaves, template_leaves):
    if a.shape != b.shape or a.dtype != b.dtype:
      raise ValueError(
        f"checkpoint {path}: {name} has shape {a.shape} {a.dtype}, this run expects {b.shape} {b.dtype} (other data?)"
      )
  return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])


def data_fingerprint(*arrays: np.ndarray) -> str:
  """SHA-1 of the arrays' shapes, dtypes and bytes: identifies a run's inputs. Read in row batches
  (the digest of the whole C-ordered bytes), so a memory-mapped input is never copied whole."""
  h = hashlib.sha1()
  for a in map(np.asarray, arrays):
    h.update(f"{a.shape}{a.dtype}".encode())
    rows = a.reshape(1) if a.ndim == 0 else a
    for i in range(0, len(rows), 65_536):
      h.update(np.ascontiguousarray(rows[i : i + 65_536]).tobytes())
  return h.hexdigest()


def read_extra(path: str) -> str:
  """The ``extra`` string saved with a checkpoint ("" when there is none)."""
  f = _read(path)
  return str(f["extra"]) if "extra" in f else ""
