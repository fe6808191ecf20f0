import dataclasses

import numpy as np

from hume_jax import HumeConfig, fit, hungarian_accuracy, predict
from hume_jax.ensemble import fit_seeds, majority_vote, predict_seeds
from test_fit import CFG, planted


def test_seeds_in_one_program_equal_runs_one_by_one():
  phi1, phi2, y = planted()
  cfg = dataclasses.replace(CFG, num_iters=8)
  seeds = [0, 1, 2]
  states = fit_seeds(phi1, phi2, cfg, seeds, chunk=2, progress=False)
  together = predict_seeds(states, phi1)
  for i, s in enumerate(seeds):
    alone, _ = fit(phi1, phi2, dataclasses.replace(cfg, seed=s), progress=False)  # float64 (x64 tests)
    np.testing.assert_allclose(np.asarray(states.encoder.raw[i]), np.asarray(alone.encoder.raw), atol=1e-10)
    np.testing.assert_array_equal(together[i], predict(alone.encoder, phi1))
  assert not np.array_equal(together[0], together[1])


def test_majority_vote_matches_then_votes():
  ref = np.array([0, 0, 1, 1, 2, 2])
  other = np.array([1, 1, 2, 2, 0, 0])  # same partition, permuted ids
  noisy = np.array([2, 0, 1, 1, 2, 2])  # disagrees on sample 0
  vote = majority_vote(np.stack([ref, other, noisy]), reference=0, k=3)
  np.testing.assert_array_equal(vote, ref)
  # with the reference outvoted on sample 1 by two runs that agree with each other
  a = np.array([0, 1, 1, 1, 2, 2])
  vote = majority_vote(np.stack([ref, a, a]), reference=0, k=3)
  np.testing.assert_array_equal(vote, a)
  # a tie keeps the reference's label
  vote = majority_vote(np.stack([ref, a]), reference=0, k=3)
  np.testing.assert_array_equal(vote, ref)
