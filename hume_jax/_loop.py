"""The outer loop every method shares: progress bar, logs, finite checks, checkpoints, stops.

One iteration is in flight at a time: each step is waited for before the next is dispatched,
so a stop request (``stop``) or ``KeyboardInterrupt`` acts within one iteration and the state
it checkpoints is the last one computed. Metrics reach the host only at log and checkpoint
iterations.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from hume_jax import metrics as hm


class Stopped(KeyboardInterrupt):
  """A loop ended early because ``stop()`` asked it to; the state of ``iteration`` was
  checkpointed (when the loop had ``on_checkpoint``).

  A ``KeyboardInterrupt``, so that code written for Ctrl-C handles it too.
  """

  def __init__(self, iteration: int):
    super().__init__(f"stopped after iteration {iteration}")
    self.iteration = iteration


def run_loop(step: Callable[[Any], tuple[Any, Any]], state: Any, num_iters: int, *, desc: str,
             metrics: Callable[[Any], dict], predict: Callable[[Any], np.ndarray],
             finite: Callable[[Any], bool], labels: np.ndarray | None = None, log_every: int = 10,
             progress: bool = True, on_log: Callable[[dict], None] | None = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[Any], None] | None = None, stop: Callable[[], bool] | None = None,
             deadline: float | None = None,
             on_estimate: Callable[[float, int], None] | None = None) -> tuple[Any, list[dict]]:
  """Runs ``step`` (``state -> (state, out)``, jitted) from the state's iteration to ``num_iters``.

  ``state.step`` counts the iterations done (stacked runs share it). ``metrics(out)`` gives the
  log's floats (``"loss"`` first; an optional ``"detail"`` names e.g. the non-finite seeds),
  ``predict(state)`` hard labels for the accuracy against ``labels``, ``finite(state)`` whether
  a state may be saved after a ``KeyboardInterrupt``. A record is logged (``on_log``) every
  ``log_every`` iterations and at the end, with ``seconds`` and ``cpu_seconds``;
  ``on_checkpoint(state)`` runs every ``checkpoint_every`` iterations (0: only at the end), at
  the end and on any stop, each time with a state whose loss was checked finite. ``stop()``
  is checked after every iteration: True checkpoints and raises ``Stopped``. The loop ends early
  after the iteration that passes ``deadline`` (a ``time.perf_counter()`` time; the last record
  says ``"cut": True``). ``on_estimate(seconds per iteration, iterations left)`` is called once,
  after the first iteration that follows the compiling one.

  Returns ``(final state, log records)``; raises ``FloatingPointError`` on a non-finite loss.
  """
  import jax
  from tqdm.auto import tqdm

  start = int(np.asarray(state.step).reshape(-1)[0])
  log = _Log(desc, metrics, lambda: predict(state), labels, on_log, start)
  t_prev = log.t0
  with tqdm(total=num_iters, initial=start, desc=desc, unit="it", disable=not progress, dynamic_ncols=True) as bar:
    try:
      for it in range(start, num_iters):
        state, out = step(state)
        jax.block_until_ready(out)
        bar.update(1)
        done, now = it + 1, time.perf_counter()
        if on_estimate is not None and done == start + 2:
          on_estimate(now - t_prev, num_iters - done)
        t_prev = now
        stopping = stop is not None and stop()
        cut = deadline is not None and now > deadline and done < num_iters
        log_now = done % log_every == 0 or done == num_iters or cut
        save_now = on_checkpoint is not None and (stopping or cut or done == num_iters
                                                  or (checkpoint_every > 0 and done % checkpoint_every == 0))
        if log_now or save_now or stopping:
          log.check(done, out, write=log_now, cut=cut, bar=bar)
        if save_now:
          on_checkpoint(state)
        if stopping:
          raise Stopped(done)
        if cut:
          break
    except Stopped:
      raise
    except KeyboardInterrupt:
      if on_checkpoint is not None and finite(state):
        on_checkpoint(state)
      raise
  return state, log.history


class _Log:
  """The loop's records: a host sync of the metrics, the finite check, the log and the bar."""

  def __init__(self, desc, metrics, predict, labels, on_log, start):
    self.desc, self.metrics, self.predict, self.labels, self.on_log = desc, metrics, predict, labels, on_log
    self.history: list[dict] = []
    self.last_good = start
    self.t0, self.c0 = time.perf_counter(), time.process_time()

  def check(self, done: int, out, *, write: bool, cut: bool, bar) -> None:
    record = {"iteration": done, **self.metrics(out), "seconds": time.perf_counter() - self.t0,
              "cpu_seconds": time.process_time() - self.c0}
    detail = record.pop("detail", "")
    if not np.isfinite(record["loss"]):
      raise FloatingPointError(
          f"non-finite {self.desc} loss ({record['loss']}) at iteration {done}{detail}; the last finite state "
          f"checked is from iteration {self.last_good}. Try a smaller outer_lr or inner_lr")
    self.last_good = done
    if not write:
      return
    if self.labels is not None:
      record["acc"] = hm.hungarian_accuracy(self.predict(), self.labels)
    if cut:
      record["cut"] = True
    self.history.append(record)
    bar.set_postfix({("train acc" if k == "acc" else k): f"{record[k]:.4f}"  # acc: of the training split
                     for k in ("loss", "entropy", "acc") if k in record})
    if self.on_log is not None:
      self.on_log(record)
