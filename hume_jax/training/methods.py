"""HUME and TURTLE as values: each a ``Method``, a ``NamedTuple`` of pure functions of its config
and the splits (as optax's ``GradientTransformation``), so that the protocols of ``hume_jax.runs``
treat both alike. A split is a dict with ``phi1``, ``phi2`` and ``labels`` (or None).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import numpy as np

from hume_jax.core._outer import init_state
from hume_jax.core._plan import Execution
from hume_jax.core._task_encoder import encoder_matrix
from hume_jax.training._fit import compute_dtype, fit, predict
from hume_jax.training.ensemble import fit_seeds, predict_seeds
from hume_jax.training.hooks import Hooks
from hume_jax.training.turtle import fit_turtle, init_turtle, predict_turtle


class Method(NamedTuple):
  """A training method as pure functions of its config and the splits.

  Attributes:
    name: ``"HUME"`` or ``"TURTLE"``.
    init: ``(config, train) -> state``: the seed's initial state (the template of a checkpoint).
    fit: ``(config, train, state, hooks, execution) -> state``: trains from ``state``, watched and
      steered by ``hooks`` (``hume_jax.training.hooks.Hooks``), each step scheduled by ``execution``
      (``hume_jax.core._plan.Execution``; HUME's, TURTLE has none).
    label: ``(state, split) -> [n]`` hard labels.
    arrays: ``state -> {name: array}``: what labels new samples (``task_encoder.npz``).
    fit_seeds: ``(config, train, seeds, hooks, chunk, execution) -> states`` one run per seed (``chunk``
      seeds at a time where runs are stacked; None: all), each part kept and resumed by ``hooks``.
    label_seeds: ``(states, split) -> [N, n]``.
    seed_arrays: ``(states, best) -> {name: array}``.
  """

  name: str
  init: Callable
  fit: Callable
  label: Callable
  arrays: Callable
  fit_seeds: Callable
  label_seeds: Callable
  seed_arrays: Callable


def _encoder_arrays(encoder) -> dict[str, np.ndarray]:
  """``raw``, ``base`` and ``E`` of one task encoder, or of stacked ones (``[N, ...]``)."""
  E = jax.vmap(encoder_matrix)(encoder) if encoder.raw.ndim == 3 else encoder_matrix(encoder)
  return {"raw": np.asarray(encoder.raw), "base": np.asarray(encoder.base), "E": np.asarray(E)}


def _hume_init(config, train):
  return init_state(jax.random.PRNGKey(config.seed), config, train["phi1"].shape[1], train["phi2"].shape[1])


def _hume_fit(config, train, state, hooks: Hooks, execution: Execution = Execution()):
  phi1, phi2 = train["phi1"], train["phi2"]
  return fit(phi1, phi2, config, labels=train["labels"], state=state, execution=execution, hooks=hooks)[0]


def _hume_seeds(config, train, seeds, hooks: Hooks, chunk=None, execution: Execution = Execution()):
  loop = hooks._replace(on_log=None)
  return fit_seeds(train["phi1"], train["phi2"], config, seeds, chunk=chunk, execution=execution, hooks=loop)


def _hume_label(state, split):
  return predict(state.encoder, split["phi1"])


def _hume_label_seeds(states, split):
  return predict_seeds(states, split["phi1"])


HUME_METHOD = Method(
  "HUME",
  _hume_init,
  _hume_fit,
  _hume_label,
  lambda st: _encoder_arrays(st.encoder),
  _hume_seeds,
  _hume_label_seeds,
  lambda states, best: _encoder_arrays(states.encoder),
)


def _turtle_init(config, train):
  phis = (train["phi1"], train["phi2"])
  return init_turtle(jax.random.PRNGKey(config.seed), config, tuple(x.shape[1] for x in phis), compute_dtype(phis[0]))


def _turtle_fit(config, train, state, hooks: Hooks, execution=None):
  return fit_turtle([train["phi1"], train["phi2"]], config, labels=train["labels"], state=state, hooks=hooks)[0]


def _turtle_label(state, split):
  return predict_turtle(state.encoder, [split["phi1"], split["phi2"]])


def _turtle_seeds(config, train, seeds, hooks: Hooks, chunk=None, execution=None):
  """TURTLE's runs one after the other (each compiled step shared: ``turtle_step_jit``; ``chunk`` and
  ``execution`` do not apply); a part is one seed (``hooks``: as ``hume_jax.training.ensemble.fit_seeds``'s)."""
  resume_part, on_part = hooks.resume_part, hooks.on_part
  states = []
  for i, seed in enumerate(seeds):
    hooks.say(f"TURTLE run {i + 1} of {len(seeds)} (seed {seed})")
    cfg = dataclasses.replace(config, seed=seed)
    template = _turtle_init(cfg, train)
    saved = None if resume_part is None else resume_part(i, template)
    save = None if on_part is None else (lambda st, i=i: on_part(i, st, int(st.step) == config.num_iters))
    loop = hooks._replace(on_checkpoint=save, on_log=None)
    states.append(_turtle_fit(cfg, train, template if saved is None else saved, loop))
  return states


def _head_arrays(encoder) -> dict[str, np.ndarray]:
  """``v1, g1, b1, v2, ...``: the TURTLE heads of each space."""
  arrays = {}
  for m, head in enumerate(encoder, start=1):
    arrays.update({f"v{m}": np.asarray(head.v), f"g{m}": np.asarray(head.g), f"b{m}": np.asarray(head.b)})
  return arrays


TURTLE_METHOD = Method(
  "TURTLE",
  _turtle_init,
  _turtle_fit,
  _turtle_label,
  lambda st: _head_arrays(st.encoder),
  _turtle_seeds,
  lambda states, split: np.stack([_turtle_label(s, split) for s in states]),
  lambda states, best: _head_arrays(states[best].encoder),
)


METHODS = {"hume": HUME_METHOD, "turtle": TURTLE_METHOD}
