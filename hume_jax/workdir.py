"""The life of a run's output folder: checked before any work, ``OUT.partial`` while it runs
(log, checkpoints, the finished parts of multi-run protocols), the results written there and
renamed to ``OUT`` in one step at the end, so that ``OUT`` never holds a partial result.

    OUT.partial/checkpoint.npz     a single run's state (every N iterations and at a stop)
    OUT.partial/log.jsonl          its log
    OUT.partial/parts/NAME.npz     finished (or stopped) parts: seed chunks, auto's runs, each K
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys

import numpy as np

from hume_jax import checkpoint


class Workdir:
  """``OUT`` and its ``OUT.partial``; ``prepare`` makes the partial folder, ``commit`` renames it."""

  def __init__(self, out: str):
    self.out = out.rstrip("/") or out
    self.partial = self.out + ".partial"
    self.checkpoint = os.path.join(self.partial, "checkpoint.npz")
    self.parts = os.path.join(self.partial, "parts")

  def interrupted(self) -> bool:
    """Whether ``OUT.partial`` holds an interrupted run (a checkpoint or finished parts)."""
    return os.path.exists(self.checkpoint) or bool(os.path.isdir(self.parts) and os.listdir(self.parts))

  def check(self, *, resume: bool, overwrite: bool) -> None:
    """Every check of the output location, before any work; raises ``ValueError`` naming ``--out``."""
    for path in (self.out, self.partial):
      if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out {self.out}: {path} is a file, expected a folder (or nothing); choose another --out")
    parent = _existing_parent(self.out)
    if not os.path.isdir(parent):
      raise ValueError(f"--out {self.out}: {parent} is a file, so no folder can be made under it")
    if not os.access(parent, os.W_OK | os.X_OK):
      raise ValueError(f"--out {self.out}: cannot write in {parent} (permission denied); choose another --out")
    if os.path.isdir(self.out) and os.listdir(self.out) and not overwrite:
      raise ValueError(
        f"--out {self.out} already holds files ({', '.join(sorted(os.listdir(self.out))[:5])}); "
        "choose another folder or pass --overwrite"
      )
    if resume and not self.interrupted():
      raise ValueError(f"--resume: no checkpoint {self.checkpoint} (nor finished parts) to continue from")
    if not resume and self.interrupted() and not overwrite:
      raise ValueError(
        f"{self.partial} holds an interrupted run; pass --resume to continue it or --overwrite to start again"
      )

  def prepare(self, *, resume: bool) -> None:
    """``OUT.partial`` kept (``resume``) or made anew; raises ``ValueError`` when it cannot be made."""
    try:
      if not resume:
        shutil.rmtree(self.partial, ignore_errors=True)
      os.makedirs(self.parts, exist_ok=True)
    except OSError as e:
      raise ValueError(f"--out {self.out}: cannot make {self.partial} ({e.strerror})") from None

  # -- a single run: log and checkpoint ------------------------------------------------------

  def open_log(self, resume_from: int | None):
    """``log.jsonl`` in the partial folder (records up to iteration ``resume_from`` kept); returns
    ``(on_log, close)``."""
    path = os.path.join(self.partial, "log.jsonl")
    kept = []
    if resume_from is not None and os.path.exists(path):
      kept = [line for line in open(path) if line.strip() and json.loads(line)["iteration"] <= resume_from]
    f = open(path, "w")
    f.writelines(kept)
    f.flush()

    def on_log(record: dict) -> None:
      f.write(json.dumps(record) + "\n")
      f.flush()

    return on_log, f.close

  def load_state(self, template, config, data_id: str):
    return checkpoint.load_checkpoint(self.checkpoint, template, config, data_id)

  def saver(self, config, data_id: str):
    """``state -> None``: the checkpoint of a single run, written atomically."""
    return lambda state: checkpoint.save_checkpoint(self.checkpoint, state, config, data_id)

  # -- parts of multi-run protocols ----------------------------------------------------------

  def save_part(self, name: str, state, config, data_id: str, info: dict) -> None:
    """One part (its state and a JSON-able ``info``, e.g. ``{"done": True, ...}``), atomically."""
    path = os.path.join(self.parts, f"{name}.npz")
    checkpoint.save_checkpoint(path, state, config, data_id, extra=json.dumps(info))

  def load_part(self, name: str, template, config, data_id: str):
    """``(state, info)`` of a saved part, or None; raises ``ValueError`` for other settings or data."""
    path = os.path.join(self.parts, f"{name}.npz")
    if not os.path.exists(path):
      return None
    state = checkpoint.load_checkpoint(path, template, config, data_id)
    return state, json.loads(checkpoint.read_extra(path) or "{}")

  def part_info(self, name: str) -> dict | None:
    path = os.path.join(self.parts, f"{name}.npz")
    return json.loads(checkpoint.read_extra(path) or "{}") if os.path.exists(path) else None

  # -- the results ---------------------------------------------------------------------------

  def write(self, arrays: dict, preds: dict, results: dict, record: dict) -> None:
    """``task_encoder.npz``, ``labels_<split>.npy``, ``metrics.json`` and ``config.json`` in the
    partial folder (plots go there too, before ``commit``)."""
    os.makedirs(self.partial, exist_ok=True)
    np.savez(os.path.join(self.partial, "task_encoder.npz"), **arrays)
    for split, pred in preds.items():
      np.save(os.path.join(self.partial, f"labels_{split}.npy"), pred.astype(np.int64))
    for name, content in (("metrics.json", results), ("config.json", record)):
      with open(os.path.join(self.partial, name), "w") as f:
        json.dump(content, f, indent=2)

  def commit(self) -> None:
    """``OUT.partial`` becomes ``OUT`` (an existing ``OUT``, with ``--overwrite``, is replaced);
    the parts of multi-run protocols are dropped."""
    shutil.rmtree(self.parts, ignore_errors=True)
    if os.path.isdir(self.out):
      old = f"{self.out}.old-{os.getpid()}"
      os.replace(self.out, old)
      os.replace(self.partial, self.out)
      shutil.rmtree(old)
    else:
      os.replace(self.partial, self.out)


def _existing_parent(path: str) -> str:
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  return parent


def command(argv: list[str] | None) -> str:
  """The command line that reproduces this run, pasteable in a shell."""
  return shlex.join(["python", "-m", "hume_jax.train"] + list(sys.argv[1:] if argv is None else argv))


def resume_command(argv: list[str] | None, out: str, out_given: bool) -> str:
  """The command that continues an interrupted run: the same flags, ``--out`` named, ``--resume``."""
  args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--resume", "--overwrite")]
  return shlex.join(["python", "-m", "hume_jax.train"] + args + ([] if out_given else ["--out", out]) + ["--resume"])


def versions() -> dict[str, str]:
  import jax
  import optax
  import sklearn

  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "optax": optax.__version__,
    "numpy": np.__version__,
    "scikit-learn": sklearn.__version__,
    "device": str(jax.devices()[0].device_kind),
  }
