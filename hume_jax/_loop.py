"""The outer loop HUME and TURTLE share: progress bar, logs, finite checks and checkpoints.

Host syncs happen only at log and checkpoint iterations; everything else is dispatched
asynchronously.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from hume_jax import metrics as hm


def run_loop(step: Callable[[Any], tuple[Any, Any]], state: Any, num_iters: int, *, desc: str,
             metrics: Callable[[Any], dict[str, float]], predict: Callable[[Any], np.ndarray],
             finite: Callable[[Any], bool], labels: np.ndarray | None = None, log_every: int = 10,
             progress: bool = True, on_log: Callable[[dict], None] | None = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[Any], None] | None = None) -> tuple[Any, list[dict]]:
  """Runs ``step`` from ``state.step`` to ``num_iters``.

  Args:
    step: ``state -> (state, out)``, one outer iteration (inputs bound, jitted).
    state: the start (its ``step`` field counts the iterations done).
    num_iters: iterations in all.
    desc: the method's name, for the progress bar and errors.
    metrics: ``out -> {"loss": ..., ...}`` as Python floats (a host sync).
    predict: ``state -> [n]`` hard labels, for the accuracy when ``labels`` are given.
    finite: whether a state may be saved (checked on ``KeyboardInterrupt``).
    labels: optional ground truth of the training inputs, only to report accuracy.
    log_every, progress, on_log: log records every ``log_every`` iterations and at the end
      (with ``seconds`` and ``cpu_seconds`` since the loop started), a progress bar, a
      callback per record.
    checkpoint_every, on_checkpoint: ``on_checkpoint(state)`` every ``checkpoint_every``
      iterations (0: only at the end), at the end and on ``KeyboardInterrupt`` (before
      re-raising it), each time with a state whose loss was checked finite.

  Returns:
    ``(final state, log records)``.

  Raises:
    FloatingPointError: on a non-finite loss (found at a log or checkpoint step).
  """
  from tqdm.auto import tqdm

  history: list[dict] = []
  start = int(state.step)
  last_good = start
  t0, c0 = time.perf_counter(), time.process_time()
  with tqdm(total=num_iters, initial=start, desc=desc, unit="it", disable=not progress, dynamic_ncols=True) as bar:
    try:
      for it in range(start, num_iters):
        state, out = step(state)
        bar.update(1)
        done = it + 1
        log_now = done % log_every == 0 or done == num_iters
        save_now = on_checkpoint is not None and (
            done == num_iters or (checkpoint_every > 0 and done % checkpoint_every == 0))
        if not (log_now or save_now):
          continue  # no host sync on other iterations
        record = {"iteration": done, **metrics(out), "seconds": time.perf_counter() - t0,
                  "cpu_seconds": time.process_time() - c0}
        if not np.isfinite(record["loss"]):
          raise FloatingPointError(
              f"non-finite {desc} loss ({record['loss']}) at iteration {done}; the last finite state "
              f"checked is from iteration {last_good}. Try a smaller --outer-lr or --inner-lr")
        last_good = done
        if log_now:
          if labels is not None:
            record["acc"] = hm.hungarian_accuracy(predict(state), labels)
          history.append(record)
          bar.set_postfix({("train acc" if k == "acc" else k): f"{record[k]:.4f}"  # acc: of the training split
                           for k in ("loss", "entropy", "acc") if k in record})
          if on_log is not None:
            on_log(record)
        if save_now:
          on_checkpoint(state)
    except KeyboardInterrupt:
      if on_checkpoint is not None and finite(state):
        on_checkpoint(state)
      raise
  return state, history
