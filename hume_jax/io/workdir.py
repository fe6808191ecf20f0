"""The life of a run's output folder: checked before any work, ``OUT.partial`` while it runs
(log, checkpoints, the finished parts of multi-run protocols), the results written there and
renamed to ``OUT`` in one step at the end, so that ``OUT`` never holds a partial result.

    OUT.lock                       held by the one process that writes OUT (pid and command inside)
    OUT.partial/checkpoint.npz     a single run's state (every N iterations and at a stop)
    OUT.partial/log.jsonl          its log
    OUT.partial/parts/NAME.npz     finished (or stopped) parts: seed chunks, auto's runs, each K

One process writes a run folder: ``prepare`` takes an exclusive lock on ``OUT.lock``
(``fcntl.flock``, which the operating system releases when the process ends, however it ends, so
a lock left by a killed run is simply taken again) and ``commit`` releases it; a second writer
is refused, by ``check`` already, with the process that holds it.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import platform
import shlex
import shutil
import sys

import jax
import numpy as np
import optax
import sklearn

from hume_jax.io import checkpoint

# Lock files this process holds (real path -> open descriptor): a second run of the same process
# on the same folder (the Python API, after a failed run) takes its own lock again.
_HELD: dict[str, int] = {}


class Workdir:
  """``OUT`` and its ``OUT.partial``; ``prepare`` locks and makes the partial folder, ``commit``
  renames it and unlocks."""

  def __init__(self, out: str):
    self.out = out.rstrip("/") or out
    self.partial = self.out + ".partial"
    self.lock_path = self.out + ".lock"
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
    self._check_free()
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
    """The lock taken, then ``OUT.partial`` kept (``resume``) or made anew; raises ``ValueError``
    when another process holds the lock or the folder cannot be made."""
    try:
      self.lock()
      if not resume:
        shutil.rmtree(self.partial, ignore_errors=True)
      os.makedirs(self.parts, exist_ok=True)
    except OSError as e:
      raise ValueError(f"--out {self.out}: cannot make {self.partial} ({e.strerror})") from None

  # -- one writer: the lock ------------------------------------------------------------------

  def _holder(self) -> str:
    """Who holds the lock, as its file says (its first line: the pid, then the command)."""
    try:
      with open(self.lock_path) as f:
        pid, _, line = f.read().strip().partition(" ")
    except OSError:
      pid, line = "", ""
    return f"process {pid} ({line})" if pid else "another process"

  def _refusal(self) -> ValueError:
    return ValueError(
      f"--out {self.out} is being written by {self._holder()}; wait for it to end or choose another --out "
      f"(its lock: {self.lock_path})"
    )

  def _check_free(self) -> None:
    """Refuses at once when another process holds the lock; takes nothing."""
    if os.path.realpath(self.lock_path) in _HELD or not os.path.exists(self.lock_path):
      return
    try:
      fd = os.open(self.lock_path, os.O_RDONLY)
    except OSError:
      return
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
        raise self._refusal() from None
    finally:
      os.close(fd)

  def lock(self) -> None:
    """Takes the exclusive lock on ``OUT.lock`` for the rest of the run (kept by this process
    until ``release``); a lock file left by an ended process is taken over. Raises
    ``ValueError`` naming the process that holds it."""
    key = os.path.realpath(self.lock_path)
    if key in _HELD:
      return
    os.makedirs(os.path.dirname(key), exist_ok=True)
    while True:
      fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
          raise self._refusal() from None
        raise
      try:
        same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
      except FileNotFoundError:
        same = False
      if same:  # not a file its last holder removed while this one waited
        break
      os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {command(None)}\n".encode())
    _HELD[key] = fd

  def release(self) -> None:
    """Gives the lock up and removes its file (removed first, while still held)."""
    fd = _HELD.pop(os.path.realpath(self.lock_path), None)
    if fd is not None:
      try:
        os.unlink(self.lock_path)
      except FileNotFoundError:
        pass
      os.close(fd)

  # -- a single run: log and checkpoint ------------------------------------------------------

  def open_log(self, resume_from: int | None):
    """``log.jsonl`` in the partial folder (records up to iteration ``resume_from`` kept); returns
    ``(on_log, close)``."""
    path = os.path.join(self.partial, "log.jsonl")
    kept = []
    if resume_from is not None and os.path.exists(path):
      kept = _logged_up_to(path, resume_from)
    with open(path + ".tmp", "w") as tmp:  # the records kept replace the log at once: a stop loses none
      tmp.writelines(kept)
    os.replace(path + ".tmp", path)
    f = open(path, "a")

    def on_log(record: dict) -> None:
      f.write(json.dumps(record) + "\n")
      f.flush()

    return on_log, f.close

  def _corrupt(self, e: checkpoint.CorruptCheckpoint) -> ValueError:
    """A damaged checkpoint or part: what to do about it (nothing is discarded without asking)."""
    return ValueError(f"{e}; it cannot be resumed: pass --overwrite to start the run again (discarding {self.partial})")

  def load_state(self, template, config, data_id: str):
    """The single run's checkpoint; raises ``ValueError`` for other settings or data, or a damaged file."""
    try:
      return checkpoint.load_checkpoint(self.checkpoint, template, config, data_id)
    except checkpoint.CorruptCheckpoint as e:
      raise self._corrupt(e) from None

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
    try:
      state = checkpoint.load_checkpoint(path, template, config, data_id)
    except checkpoint.CorruptCheckpoint as e:
      raise self._corrupt(e) from None
    return state, self.part_info(name)

  def part_info(self, name: str) -> dict | None:
    """The ``info`` saved with a part, or None when there is no such part."""
    path = os.path.join(self.parts, f"{name}.npz")
    if not os.path.exists(path):
      return None
    try:
      return json.loads(checkpoint.read_extra(path) or "{}")
    except checkpoint.CorruptCheckpoint as e:
      raise self._corrupt(e) from None
    except ValueError:
      raise self._corrupt(
        checkpoint.CorruptCheckpoint(f"checkpoint {path} is damaged (its info is not JSON)")
      ) from None

  def held(self) -> set[str]:
    """What ``OUT.partial`` holds to resume from: ``checkpoint`` (a single run) and the kinds of
    its parts (``seeds``, ``auto``, ``k``)."""
    kinds = {"checkpoint"} if os.path.exists(self.checkpoint) else set()
    names = os.listdir(self.parts) if os.path.isdir(self.parts) else []
    return kinds | {n.rpartition("_")[0] for n in names if n.endswith(".npz") and "_" in n and ".tmp-" not in n}

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
    else:
      os.replace(self.partial, self.out)
    for old in glob.glob(glob.escape(self.out) + ".old-*"):  # this one, and any a crash left between the renames
      if old.rpartition(".old-")[2].isdigit():
        shutil.rmtree(old, ignore_errors=True)
    self.release()


def _existing_parent(path: str) -> str:
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  return parent


def command(argv: list[str] | None) -> str:
  """The command line that reproduces this run, pasteable in a shell."""
  return shlex.join(["python", "-m", "hume_jax.train"] + list(sys.argv[1:] if argv is None else argv))


def resume_command(argv: list[str] | None, out: str, out_given: bool) -> str:
  """The command that continues an interrupted run: the same flags (``--overwrite`` kept: the
  ``OUT`` it replaces is still there), ``--out`` named, ``--resume``."""
  args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
  return shlex.join(["python", "-m", "hume_jax.train"] + args + ([] if out_given else ["--out", out]) + ["--resume"])


def versions() -> dict[str, str]:
  return {
    "python": platform.python_version(),
    "jax": jax.__version__,
    "optax": optax.__version__,
    "numpy": np.__version__,
    "scikit-learn": sklearn.__version__,
    "device": str(jax.devices()[0].device_kind),
  }


def _logged_up_to(path: str, last: int) -> list[str]:
  """The lines of ``log.jsonl`` up to iteration ``last``; a line cut off by a kill ends the log (the
  records before it are whole)."""
  kept = []
  for line in open(path):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      break
    if record["iteration"] <= last:
      kept.append(line)
  return kept
