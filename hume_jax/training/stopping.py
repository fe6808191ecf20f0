"""Stops the way real machines send them: SIGTERM (``kill``, Slurm, Kubernetes, ``timeout``, a
preempted cloud machine) and SIGINT (Ctrl-C, or ``kill -INT`` of a background job).

Inside ``stop_on_signals()`` the first of either signal sets a request that the training loops
check after every iteration (``hume_jax.training._loop.run_loop``'s ``stop``): the iteration in flight
finishes, a checkpoint is written and ``Stopped`` is raised. Inside ``request.interrupting()``
(the command line's whole training phase) a signal that arrives outside a training loop (while
conditioning, k-means starts, criteria, refinement, between the runs of a search) raises
``Stopped`` at once instead: what finished is kept (each write is atomic), the stage in flight is
redone on ``--resume``. The handlers then give the signals back to the operating system's
defaults, so a second signal stops the process at once.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

from hume_jax.training._loop import Stopped, in_loop

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
  """``request()`` is True once a stop signal arrived; ``signum`` says which."""

  def __init__(self):
    self.signum: int | None = None
    self.interrupts = 0  # > 0 inside interrupting()

  def __call__(self) -> bool:
    return self.signum is not None

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name if self.signum else "a stop"

  def check(self) -> None:
    """Raises ``Stopped`` between phases of work (outside a training loop) once requested."""
    if self():
      raise Stopped(-1)

  @contextlib.contextmanager
  def interrupting(self) -> Iterator[None]:
    """Inside the block a stop signal outside a training loop raises ``Stopped`` at once."""
    self.check()
    self.interrupts += 1
    try:
      yield
    finally:
      self.interrupts -= 1


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
  """Turns the first SIGINT or SIGTERM into a stop request for the duration of the block (also
  where SIGINT was ignored, as for background jobs of a shell); the previous handlers come back
  after it."""
  request = StopRequest()
  previous = {s: signal.getsignal(s) for s in SIGNALS}

  def handler(signum, frame):
    request.signum = signum
    for s in SIGNALS:  # a second signal: the default action, at once
      signal.signal(s, signal.SIG_DFL)
    if request.interrupts and not in_loop():  # a stage outside the loops: stop now
      raise Stopped(-1)

  for s in SIGNALS:
    signal.signal(s, handler)
  try:
    yield request
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
