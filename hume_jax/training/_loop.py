"""The outer loop every method shares: progress bar, logs, finite checks, checkpoints, stops.

One iteration is in flight at a time: each step is waited for before the next is dispatched,
so a stop request (``stop``) or ``KeyboardInterrupt`` acts within one iteration and the state
it checkpoints is the last one computed. The wait happens in a helper thread while the main
thread waits on it interruptibly, so that signal handlers run at once rather than when the
device returns (a second SIGTERM then stops the process at once: ``hume_jax.training.stopping``).
Metrics reach the host only at log and checkpoint iterations.
"""

from __future__ import annotations

import concurrent.futures
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from hume_jax.evaluation import metrics as hm
from hume_jax.training.hooks import Hooks

_WAITER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hume-wait")


def _wait(out) -> None:
  """``jax.block_until_ready(out)``, with the main thread free to run signal handlers meanwhile."""
  _WAITER.submit(jax.block_until_ready, out).result()


class Stopped(KeyboardInterrupt):
  """A loop ended early because ``stop()`` asked it to; the state of ``iteration`` was
  checkpointed (when the loop had ``on_checkpoint``).

  A ``KeyboardInterrupt``, so that code written for Ctrl-C handles it too.
  """

  def __init__(self, iteration: int):
    super().__init__(f"stopped after iteration {iteration}")
    self.iteration = iteration


_IN_LOOP = [0]  # training loops running in this process: a stop signal there waits for the iteration


def in_loop() -> bool:
  """Whether a training loop is running (``hume_jax.training.stopping`` then leaves the stop to it)."""
  return _IN_LOOP[0] > 0


def run_loop(
  step, state, num_iters: int, *, desc: str, metrics, predict, finite, labels=None, hooks: Hooks = Hooks(), log_every=10
):
  """Runs ``step`` (``state -> (state, out)``, jitted) from the state's iteration to ``num_iters``.

  ``state.step`` counts the iterations done (stacked runs share it). ``metrics(out)`` gives the
  log's floats (``"loss"`` first; an optional ``"detail"`` names e.g. the non-finite seeds),
  ``predict(state)`` hard labels for the accuracy against ``labels``, ``finite(state)`` whether
  a state may be saved after a ``KeyboardInterrupt``; ``hooks`` (``hume_jax.training.hooks.Hooks``)
  watch and steer it, logging every ``log_every`` iterations unless ``hooks.log_every`` says otherwise.

  Returns ``(final state, log records)``; raises ``FloatingPointError`` on a non-finite loss.
  """
  h = hooks._replace(log_every=hooks.log_every or log_every)
  start = int(np.asarray(state.step).reshape(-1)[0])
  log = _Log(desc, metrics, lambda: predict(state), labels, h.on_log, start)
  t_prev = log.t0
  with tqdm(total=num_iters, initial=start, desc=desc, unit="it", disable=not h.progress, dynamic_ncols=True) as bar:
    _IN_LOOP[0] += 1
    try:
      for it in range(start, num_iters):
        state, out = step(state)
        _wait(out)
        bar.update(1)
        done, now = it + 1, time.perf_counter()
        if h.on_estimate is not None and done == start + 2:
          h.on_estimate(now - t_prev, num_iters - done)
        t_prev = now
        stopping, cut, log_now, save_now = _now(h, done, num_iters, now)
        if log_now or save_now or stopping:
          log.check(done, out, write=log_now, cut=cut, bar=bar)
        if save_now:
          h.on_checkpoint(state)
        if stopping:
          raise Stopped(done)
        if cut:
          break
    except Stopped:
      raise
    except KeyboardInterrupt:
      if h.on_checkpoint is not None and finite(state):
        h.on_checkpoint(state)
      raise
    finally:
      _IN_LOOP[0] -= 1
  return state, log.history


def _now(h: Hooks, done: int, num_iters: int, now: float) -> tuple[bool, bool, bool, bool]:
  """What iteration ``done`` asks for: ``(stop, cut by the deadline, log, checkpoint)``."""
  stopping = h.stop is not None and h.stop()
  cut = h.deadline is not None and now > h.deadline and done < num_iters
  log_now = done % h.log_every == 0 or done == num_iters or cut
  periodic = h.checkpoint_every > 0 and done % h.checkpoint_every == 0
  save_now = h.on_checkpoint is not None and (stopping or cut or done == num_iters or periodic)
  return stopping, cut, log_now, save_now


class _Log:
  """The loop's records: a host sync of the metrics, the finite check, the log and the bar."""

  def __init__(self, desc, metrics, predict, labels, on_log, start):
    self.desc, self.metrics, self.predict, self.labels, self.on_log = desc, metrics, predict, labels, on_log
    self.history: list[dict] = []
    self.last_good = start
    self.t0, self.c0 = time.perf_counter(), time.process_time()

  def check(self, done: int, out, *, write: bool, cut: bool, bar) -> None:
    record = {
      "iteration": done,
      **self.metrics(out),
      "seconds": time.perf_counter() - self.t0,
      "cpu_seconds": time.process_time() - self.c0,
    }
    detail = record.pop("detail", "")
    if not np.isfinite(record["loss"]):
      raise FloatingPointError(
        f"non-finite {self.desc} loss ({record['loss']}) at iteration {done}{detail}; the last finite state "
        f"checked is from iteration {self.last_good}. Try a smaller outer_lr or inner_lr"
      )
    self.last_good = done
    if not write:
      return
    if self.labels is not None:
      record["acc"] = hm.hungarian_accuracy(self.predict(), self.labels)
    if cut:
      record["cut"] = True
    self.history.append(record)
    bar.set_postfix(
      {
        ("train acc" if k == "acc" else k): f"{record[k]:.4f}"  # acc: of the training split
        for k in ("loss", "entropy", "acc")
        if k in record
      }
    )
    if self.on_log is not None:
      self.on_log(record)
