"""Stops as real machines send them, for a long extraction: the first SIGINT or SIGTERM only
asks the loop to stop after the batch in flight (which keeps the images done, a partial chunk
included); a second one stops the process at once (the operating system's default).

The same contract as ``hume_jax.training.stopping``, written here because extract_torch never imports
hume_jax (each package installs and runs without the other).
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
  """The extraction stopped at a request; what was done is kept in ``OUT.partial``."""


class StopRequest:
  """``request()`` is True once a stop signal arrived; ``signum`` says which."""

  def __init__(self):
    self.signum: int | None = None

  def __call__(self) -> bool:
    return self.signum is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
  """The first SIGINT or SIGTERM becomes a stop request for the block (also where SIGINT was
  ignored, as for background jobs); the previous handlers come back after it."""
  request = StopRequest()
  previous = {s: signal.getsignal(s) for s in SIGNALS}

  def handler(signum, frame):
    request.signum = signum
    for s in SIGNALS:
      signal.signal(s, signal.SIG_DFL)

  for s in SIGNALS:
    signal.signal(s, handler)
  try:
    yield request
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
