import dataclasses

import numpy as np
from conftest import CFG, planted

from hume_jax import fit, predict
from hume_jax.training.ensemble import fit_seeds, majority_vote, predict_seeds


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


def test_cli_seeds(tmp_path):
  import json
  import os

  from hume_jax import train

  phi1, phi2, y = planted()
  for name, arr in {"phi1": phi1, "phi2": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  out = str(tmp_path / "run")
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "phi1.npy"),
      "--phi2",
      str(tmp_path / "phi2.npy"),
      "--labels",
      str(tmp_path / "y.npy"),
      "--seeds",
      "3",
      "--preset",
      "official",
      "--k",
      "4",
      "--num-iters",
      "30",
      "--num-subsets",
      "2",
      "--subset-size",
      "300",
      "--adaptation-steps",
      "20",
      "--inner-lr",
      "0.05",
      "--outer-lr",
      "0.01",
      "--quiet",
      "--out",
      out,
    ]
  )
  assert [e["seed"] for e in res["seeds"]] == [42, 43, 44]
  cvs = [e["cv_score"] for e in res["seeds"]]
  assert res["best_seed"] == 42 + int(np.argmax(cvs)) and res["cv_score"] == max(cvs)
  assert set(res["over_seeds"]) == {"acc", "nmi", "ari"}
  assert res["splits"]["train_vote"]["acc"] > 0.5
  assert np.load(os.path.join(out, "task_encoder.npz"))["E"].shape == (3, 4, 16)
  assert np.load(os.path.join(out, "labels_train_vote.npy")).shape == (600,)
  assert json.load(open(os.path.join(out, "metrics.json")))["best_seed"] == res["best_seed"]


def test_vote_matched_equals_a_vote_table_with_its_tie_rules():
  from hume_jax.training.ensemble import vote_matched

  rng = np.random.default_rng(3)
  for runs, k in [(1, 3), (2, 2), (3, 10), (4, 5), (9, 3)]:
    matched, reference = rng.integers(0, k, (runs, 400)), int(rng.integers(runs))
    votes = np.zeros((k, 400), np.int64)  # the plain [k, n] table: counts per label and sample
    for row in matched:
      votes[row, np.arange(400)] += 1
    ref = matched[reference]
    expected = np.where(votes[ref, np.arange(400)] == votes.max(0), ref, votes.argmax(0))
    np.testing.assert_array_equal(vote_matched(matched, reference, k), expected)
