"""``Hooks``: how a caller watches, steers and keeps any run of the package, one type for every
protocol (a single run, seeds, TURTLE, ``--preset auto``'s search, the searches over K).

Every field is optional and each protocol reads the fields that concern it: the training loop
(``hume_jax.training._loop.run_loop``) its progress bar, logs, checkpoints, stop and deadline; the
seeds their parts; the auto search its finished runs; the searches over K each finished K. A
caller builds one ``Hooks`` and passes it down (``hooks._replace(...)`` for a change), as optax
passes one ``GradientTransformation``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Hooks(NamedTuple):
  """The callbacks and switches of a run; every field is optional.

  Attributes:
    say: ``line -> None``: the messages of the stages around the training loops (a search's runs,
      the seeds, each K); ``print`` by default.
    progress: show progress bars.
    log_every: iterations between log records (and the last iteration); None: the loop's own
      default (10 for a HUME run, 50 for stacked seeds and TURTLE).
    on_log: called with each log record (a dict with ``iteration``, the metrics, ``seconds``,
      ``cpu_seconds`` and, with labels, ``acc``).
    on_estimate: ``(seconds per iteration, iterations left) -> None``, called once, after the first
      iteration that follows the compiling one.
    stop: ``() -> bool`` checked after every iteration and before each run of a search; True
      checkpoints and raises ``hume_jax.training._loop.Stopped``.
    deadline: a ``time.perf_counter()`` time; the loop ends after the iteration that passes it (a
      time budget; the last record says ``"cut": True``).
    checkpoint_every: iterations between calls of ``on_checkpoint`` (0: only at the end).
    on_checkpoint: ``state -> None``, also called at the end and on any stop, each time with a
      state whose loss was checked finite.
    resume_part: ``(index, template) -> states or None``: the ``index``-th part of a protocol in
      parts (a chunk of seeds, a TURTLE seed) saved before, finished or stopped (its ``step`` says).
    on_part: ``(index, states, finished) -> None``: a part at each checkpoint, stop and end.
    on_candidate: ``(index, hume_jax.search.auto.Candidate) -> None``: each finished run of the
      auto search.
    on_k: ``(k, entry) -> None``: each K's scores as a search over K finishes it.
  """

  say: Callable[[str], None] = print
  progress: bool = True
  log_every: int | None = None
  on_log: Callable[[dict], None] | None = None
  on_estimate: Callable[[float, int], None] | None = None
  stop: Callable[[], bool] | None = None
  deadline: float | None = None
  checkpoint_every: int = 0
  on_checkpoint: Callable[[Any], None] | None = None
  resume_part: Callable[[int, Any], Any] | None = None
  on_part: Callable[[int, Any, bool], None] | None = None
  on_candidate: Callable[[int, Any], None] | None = None
  on_k: Callable[[int, dict], None] | None = None


def hooks_of(hooks: Hooks | None, fields: dict) -> Hooks:
  """``hooks`` (default ``Hooks()``) with ``fields`` (a function's keyword arguments, e.g.
  ``progress=False``) replaced; an unknown name raises ``TypeError`` naming it."""
  unknown = sorted(set(fields) - set(Hooks._fields))
  if unknown:
    raise TypeError(f"unexpected keyword arguments {unknown}; the hooks are {list(Hooks._fields)}")
  return (hooks or Hooks())._replace(**fields)
