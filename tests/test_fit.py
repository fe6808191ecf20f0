"""HUME end to end through the functional API: it recovers planted labels, deterministically."""

import dataclasses

import numpy as np
import pytest
from conftest import CFG, planted

from hume_jax import cv_score, fit, hungarian_accuracy, predict


def test_recovers_planted_labels():
  phi1, phi2, y = planted()
  state, history = fit(phi1, phi2, CFG, labels=y, progress=False, log_every=20)
  pred = predict(state.encoder, phi1)
  assert hungarian_accuracy(pred, y) > 0.9
  assert cv_score(phi2, pred) > 0.9
  assert [h["iteration"] for h in history] == [20, 40, 60]
  assert history[-1]["loss"] < history[0]["loss"]
  assert history[-1]["tau"] == pytest.approx(CFG.tau * 0.01, rel=1e-6)


def test_same_seed_same_result_other_seed_differs():
  phi1, phi2, _ = planted()
  cfg = dataclasses.replace(CFG, num_iters=5)
  a, _ = fit(phi1, phi2, cfg, progress=False)
  b, _ = fit(phi1, phi2, cfg, progress=False)
  c, _ = fit(phi1, phi2, dataclasses.replace(cfg, seed=1), progress=False)
  np.testing.assert_array_equal(np.asarray(a.encoder.raw), np.asarray(b.encoder.raw))
  assert not np.array_equal(np.asarray(a.encoder.raw), np.asarray(c.encoder.raw))


def test_runs_differing_in_seed_or_length_share_one_compile():
  """The step does not read ``seed`` or ``num_iters``: a second run with other values of
  both (e.g. fit_auto's starts, seeds run one after another) compiles nothing."""
  import jax

  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
    lambda event, _, **kw: compiles.append(event) if event == "/jax/core/compile/backend_compile_duration" else None
  )
  phi1, phi2, _ = planted()
  cfg = dataclasses.replace(CFG, num_iters=3, tau=0.123)  # settings no other test compiles
  first, _ = fit(phi1, phi2, cfg, progress=False)
  assert len(compiles) >= 1
  before = len(compiles)
  second, _ = fit(phi1, phi2, dataclasses.replace(cfg, seed=7, num_iters=4), progress=False)
  assert len(compiles) == before
  assert int(second.step) == 4 and not np.array_equal(np.asarray(first.encoder.raw), np.asarray(second.encoder.raw))
  fit(phi1, phi2, dataclasses.replace(cfg, tau=0.124, num_iters=1), progress=False)  # a setting the step reads
  assert len(compiles) > before
