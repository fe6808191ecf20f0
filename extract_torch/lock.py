"""One writer per output file: ``OUT.lock`` held while an extraction writes ``OUT``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys


@contextlib.contextmanager
def one_writer(out: str):
  """Holds ``OUT.lock`` (``fcntl.flock``, which the system releases however the process ends, so a
  lock left by a killed run is taken again) while the block runs; raises ``ValueError`` naming the
  process that holds it. The file says who holds it (pid, command) and is removed on release."""
  path = out + ".lock"
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
        raise
      with contextlib.suppress(OSError), open(path) as f:
        pid, _, command = f.read().strip().partition(" ")
        raise ValueError(
          f"--out {out} is being written by process {pid or '?'} ({command}); wait for it to end or choose "
          f"another --out (its lock: {path})"
        ) from None
      raise ValueError(f"--out {out} is being written by another process (its lock: {path})") from None
    with contextlib.suppress(FileNotFoundError):
      if os.fstat(fd).st_ino == os.stat(path).st_ino:  # not a file its last holder removed meanwhile
        break
    os.close(fd)
  try:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode())
    yield
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(path)  # removed while still held, then given up
    os.close(fd)
