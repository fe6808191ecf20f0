"""``--preset auto`` (hume_jax.search.auto): conditioning in closed form, the plan, the criterion, and
the cause of empty classes (an un-centred cone of features) removed."""

import dataclasses
import json
import os

import conftest
import numpy as np
import pytest
from conftest import cone, planted

from hume_jax import HumeConfig, fit, hungarian_accuracy, predict, train
from hume_jax.evaluation.sampling import ROWS
from hume_jax.search import conditioning
from hume_jax.search.auto import (
  apply_conditioning,
  fit_auto,
  fit_conditioning,
  member_labels,
  plan_iterations,
  scaled_config,
  separability,
  vote_labels,
)
from hume_jax.search.budget import K_AUTO_SHARE, closing_seconds, conditioning_seconds
from hume_jax.search.conditioning import condition_spaces
from hume_jax.training.ensemble import majority_vote

CFG = dataclasses.replace(conftest.CFG, inner_lr=0.9)  # auto's inner lr: a fraction of 1 / lambda_max


def test_conditioning_of_phi2_centres_projects_and_scales_to_unit_top_eigenvalue():
  from sklearn.decomposition import PCA

  rng = np.random.default_rng(0)
  x = rng.normal(size=(500, 30)) @ rng.normal(size=(30, 30)) + 7.0
  c = fit_conditioning(x, unit_rows=False, max_dim=10)
  z = apply_conditioning(c, x).astype(np.float64)
  assert z.shape == (500, 10)
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
  eig = np.linalg.eigvalsh(np.cov(z.T, bias=True))[::-1]
  assert eig[0] == pytest.approx(1.0, rel=1e-5)
  ref = PCA(10).fit(x)  # an independent PCA: the same variances and subspace
  np.testing.assert_allclose(eig / eig[0], ref.explained_variance_ / ref.explained_variance_[0], rtol=1e-4)
  np.testing.assert_allclose(np.abs(c.components @ ref.components_.T), np.eye(10), atol=1e-6)
  assert c.explained == pytest.approx(ref.explained_variance_ratio_.sum(), rel=1e-6)


def test_conditioning_of_phi1_gives_unit_rows_and_reuses_train_statistics():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 8)) + 5.0
  c = fit_conditioning(x, unit_rows=True)
  np.testing.assert_allclose(np.linalg.norm(apply_conditioning(c, x), axis=1), 1, rtol=1e-5)
  shifted = apply_conditioning(c, x[:5] + 1e4)  # val: train's mean, not its own
  direction = np.full(8, 1e4) @ c.components.T
  np.testing.assert_allclose(shifted, np.tile(direction / np.linalg.norm(direction), (5, 1)), atol=1e-3)


@pytest.mark.parametrize("unit_rows", [False, True])
def test_conditioning_past_rows_on_an_accelerator_matches_the_hosts_float64(monkeypatch, unit_rows):
  from hume_jax.evaluation.sampling import ROWS
  from hume_jax.search import conditioning

  rng = np.random.default_rng(2)
  scales = np.linspace(4.0, 0.2, 40)
  x = (rng.normal(size=(ROWS + 3_000, 40)) * scales + rng.normal(size=40) * 30).astype(np.float32)
  host = conditioning.fit_conditioning(x, unit_rows=unit_rows, max_dim=12)
  host_z = conditioning.apply_conditioning(host, x)
  monkeypatch.setattr(conditioning, "on_accelerator", lambda: True)  # the jitted batches, run on the CPU here
  dev = conditioning.fit_conditioning(x, unit_rows=unit_rows, max_dim=12)
  np.testing.assert_allclose(dev.mean, host.mean, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(np.abs(np.sum(dev.components * host.components, axis=1)), 1, atol=1e-6)
  assert dev.scale == pytest.approx(host.scale, rel=1e-5) and dev.explained == pytest.approx(host.explained, rel=1e-6)
  signs = np.sign(np.sum(dev.components * host.components, axis=1))  # an eigenvector's sign is arbitrary
  dev_z = conditioning.apply_conditioning(dev, x) * signs
  assert dev_z.shape == host_z.shape == (len(x), 12)
  np.testing.assert_allclose(dev_z, host_z, atol=2e-4 * np.abs(host_z).max())


def test_past_rows_the_directions_are_the_svds_signed_alike_on_the_host_and_a_device(monkeypatch):
  rng = np.random.default_rng(3)
  x = (rng.normal(size=(ROWS + 500, 20)) * np.linspace(3, 0.1, 20) + 2.0).astype(np.float32)
  mean, var, directions = conditioning._principal_axes(x)  # the host's covariance route
  z = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
  _, s, vt = np.linalg.svd(z, full_matrices=False)  # an independent route: the SVD of the centred rows
  np.testing.assert_allclose(var, s**2 / len(z), rtol=1e-9)
  np.testing.assert_allclose(np.abs(np.sum(directions * vt, axis=1)), 1, atol=1e-9)
  largest = directions[np.arange(20), np.argmax(np.abs(directions), axis=1)]
  assert np.all(largest > 0)  # whatever sign LAPACK returns
  monkeypatch.setattr(conditioning, "on_accelerator", lambda: True)  # the jitted batches, run on the CPU here
  np.testing.assert_allclose(conditioning._principal_axes(x)[2], directions, atol=1e-5)  # the same signs


def test_the_plan_counts_the_conditioning_the_search_does_on_its_clock():
  assert conditioning_seconds(10_000, (1024, 1280), 128) > 2 * conditioning_seconds(10_000, (256, 256), 128)
  assert 9.5 < conditioning_seconds(1_000_000, (256,), 128) / conditioning_seconds(100_000, (256,), 128) <= 10  # ~ n
  phi1, phi2, _ = planted()
  plans = {}
  for given in (False, True):
    spaces = condition_spaces(phi1, phi2, 64) if given else None
    res = fit_auto(phi1, phi2, 4, num_iters=2, starts=("random",), spaces=spaces, say=lambda s: None, progress=False)
    plans[given] = res.plan
  assert plans[True]["conditioning_seconds"] == 0.0  # conditioned before: not on this search's clock
  expected = conditioning_seconds(len(phi1), (phi1.shape[1], phi2.shape[1]), 64)
  assert plans[False]["conditioning_seconds"] == pytest.approx(expected) and expected > 0
  assert plans[False]["estimate_seconds"] == pytest.approx(plans[True]["estimate_seconds"] + expected)


def test_plan_fits_the_budget_and_scales_the_milestones():
  assert plan_iterations(0.1, 600, 4) == 300  # fits: the preset's 300
  assert plan_iterations(1.0, 600, 4) == 150  # cut to the budget
  assert plan_iterations(100.0, 600, 4) == 60  # never below the floor
  cfg = scaled_config(HumeConfig(num_iters=300, milestones=(100, 200)), 150)
  assert cfg.num_iters == 150 and cfg.milestones == (50, 100)


def test_the_stages_after_the_search_cost_in_proportion_to_the_rows_they_fit():
  full = closing_seconds(ROWS, 10)
  assert full > 0 and closing_seconds(ROWS // 4, 10) == pytest.approx(full / 4)
  assert closing_seconds(30 * ROWS, 10) == pytest.approx(full)  # each fit reads at most ROWS rows
  assert closing_seconds(ROWS, 200) > closing_seconds(ROWS, 50) > full  # logistic regressions and k-means over k
  assert closing_seconds(ROWS, 10, d2=1280) > full  # real features converge slower the more dimensions they have
  assert closing_seconds(ROWS, 10, baseline_dims=512) > full
  assert closing_seconds(ROWS, 1000, "gpu") < closing_seconds(ROWS, 1000)  # JAX regressions on the device


def test_the_command_lines_budget_keeps_time_for_the_stages_after_the_search(capsys):
  """``--budget`` counts the CV score, the premise check and the baselines: the search plans for the rest, says so
  first, and the last lines give the whole run's seconds against the budget."""
  import argparse

  from hume_jax.train import report
  from hume_jax.train.resume import _after_search

  args = argparse.Namespace(num_iters=None, labels="y.npy", baselines=None, budget=600.0, quiet=False)
  train_split = {"phi1": np.zeros((ROWS, 4)), "phi2": np.zeros((ROWS, 6))}
  after = _after_search(args, HumeConfig(k=200), train_split, None)
  assert after == pytest.approx(closing_seconds(ROWS, 200, d2=6, baseline_dims=10))
  assert (
    f"about {after:.0f} s of it kept for the CV score, the premise check and the baselines" in capsys.readouterr().out
  )
  args.baselines = False
  assert _after_search(args, HumeConfig(k=200), train_split, None) == pytest.approx(closing_seconds(ROWS, 200, d2=6))
  assert "kept for the CV score and the premise check after the search" in capsys.readouterr().out
  assert _after_search(argparse.Namespace(**{**vars(args), "num_iters": 50}), HumeConfig(k=200), train_split, None) == 0

  results = {"cv_split": "train", "cv_score": 0.9, "train_seconds": 500.0}
  results["splits"] = {"train": {"cluster_sizes": [5, 5], "nonempty_classes": 2, "smallest_class": 5}}
  for elapsed, said in (
    (580.0, "the whole run 580 s of its --budget of 600 s"),
    (650.0, "over its --budget of 600 s by 50 s"),
  ):
    report.final(results, 2, None, 10, "out", elapsed=elapsed, budget=600.0)
    assert said in capsys.readouterr().out


def test_separability_is_chance_corrected():
  phi1, phi2, y = planted()
  good = separability([phi1, phi2], y)
  shuffled = separability([phi1, phi2], np.random.default_rng(0).permutation(y))
  assert good > 0.9 and abs(shuffled) < 0.1


def test_uncentred_cone_leaves_classes_empty_and_auto_does_not():
  phi1, phi2, y = cone()
  unit = phi1 / np.linalg.norm(phi1, axis=1, keepdims=True)
  # The cause: on the un-centred cone the official recipe (L2 only) leaves classes empty for some seeds.
  sizes = [
    np.bincount(
      predict(fit(unit, phi2, dataclasses.replace(CFG, seed=s, inner_lr=0.05), progress=False)[0].encoder, unit),
      minlength=4,
    )
    for s in (0, 2)
  ]
  assert min((s > 0).sum() for s in sizes) < 4
  res = fit_auto(phi1, phi2, 4, num_iters=60, progress=False, config=CFG, say=lambda s: None)
  x1 = phi1 if res.order[0] == "a" else phi2
  pred = predict(res.state.encoder, apply_conditioning(res.conditioning["phi1"], x1))
  assert np.bincount(pred, minlength=4).min() > 50
  assert hungarian_accuracy(pred, y) > 0.85
  assert len(res.candidates) == 4 and {c["start"] for c in res.candidates} == {"k-means", "random"}
  best = max(res.candidates, key=lambda c: c["separability"])
  assert (best["phi1"], best["phi2"]) == res.order
  # The labels are the vote of the four runs: the kept run is member res.reference, and on the
  # training rows the stored maps give the vote that matching the runs afresh gives.
  runs = member_labels(res.members, phi1, phi2)
  np.testing.assert_array_equal(runs[res.reference], pred)
  raw = np.stack(
    [predict(r.encoder, apply_conditioning(r.conditioning, phi1 if r.phi1 == "a" else phi2)) for r in res.members]
  )
  vote = vote_labels(res._replace(refiner=None), phi1, phi2)  # without the refinement of hume_jax.search.refine
  assert res.vote["used"]
  np.testing.assert_array_equal(vote, majority_vote(raw, res.reference, 4))
  assert np.bincount(vote, minlength=4).min() > 50 and hungarian_accuracy(vote, y) > 0.85
  labels = vote_labels(res, phi1, phi2)  # the labels reported: the vote, refined when that made it more separable
  assert np.bincount(labels, minlength=4).min() > 50 and hungarian_accuracy(labels, y) > 0.85


def test_cli_default_for_user_data_is_auto_and_reports_classes(tmp_path, capsys):
  phi1, phi2, y = cone()
  for name, arr in {"a": phi1, "b": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  out = str(tmp_path / "run")
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "a.npy"),
      "--phi2",
      str(tmp_path / "b.npy"),
      "--labels",
      str(tmp_path / "y.npy"),
      "--k",
      "4",
      "--num-iters",
      "40",
      "--quiet",
      "--no-plots",
      "--out",
      out,
    ]
  )
  text = capsys.readouterr().out
  assert "preset 'auto'" in text and "about" in text and "kept phi1" in text
  assert len(res["auto"]["candidates"]) == 4 and res["auto"]["phi1"] in ("--phi1", "--phi2")
  entry = res["splits"]["train"]
  assert entry["nonempty_classes"] == 4 and entry["smallest_class"] == min(entry["cluster_sizes"]) > 0
  assert entry["acc"] > 0.85
  assert json.load(open(os.path.join(out, "config.json")))["preset"] == "auto"
  enc = np.load(os.path.join(out, "task_encoder.npz"))  # enough to label new samples
  for key in ("phi1_mean", "phi1_components", "phi1_scale", "E"):
    assert key in enc
  # The saved runs rebuild the reported labels (the vote), in numpy alone.
  raw = {"--phi1": phi1, "--phi2": phi2}
  runs = []
  for i in range(4):
    z = (raw[str(enc[f"run{i}_reads"])] - enc[f"run{i}_mean"]) @ enc[f"run{i}_components"].T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    runs.append(enc[f"run{i}_to_kept"][np.argmax(z @ enc[f"run{i}_E"].T, axis=1)])
  votes = np.stack([np.bincount(c, minlength=4) for c in np.stack(runs).T])
  kept = runs[int(enc["kept_run"])]
  rebuilt = np.where(votes[np.arange(len(kept)), kept] == votes.max(1), kept, votes.argmax(1))
  assert bool(enc["labels_are_vote"]) and res["auto"]["vote"]["used"]
  # ... and the saved refinement of the vote (hume_jax.search.refine) gives the labels reported.
  assert bool(enc["labels_are_refined"]) and res["auto"]["refinement"]["used"]
  shifted = lambda z: z - z.max(1, keepdims=True)
  log_softmax = lambda z: shifted(z) - np.log(np.exp(shifted(z)).sum(1, keepdims=True))
  summed = 0
  for s in "ab":
    z = (raw[str(enc[f"refine_{s}_reads"])] - enc[f"refine_{s}_mean"]) @ enc[f"refine_{s}_components"].T
    summed = summed + log_softmax(z @ enc[f"refine_{s}_coef"].T + enc[f"refine_{s}_intercept"])
  refined = np.argmax(summed, axis=1)
  assert (refined == rebuilt).mean() > 0.9  # the refinement moves a few samples, not the labeling
  np.testing.assert_array_equal(refined, np.load(os.path.join(out, "labels_train.npy")))


def test_a_space_with_fewer_dimensions_than_k_serves_only_as_phi2(tmp_path, capsys):
  phi1, phi2, y = cone()
  np.save(tmp_path / "a.npy", phi1[:, :3])  # 3 < k = 4: cannot hold the task encoder's 4 orthonormal rows
  np.save(tmp_path / "b.npy", phi2)
  np.save(tmp_path / "y.npy", y)
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "a.npy"),
      "--phi2",
      str(tmp_path / "b.npy"),
      "--labels",
      str(tmp_path / "y.npy"),
      "--k",
      "4",
      "--num-iters",
      "20",
      "--quiet",
      "--no-plots",
      "--no-baselines",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  assert "a has 3 dimensions, fewer than k = 4: only as phi2" in capsys.readouterr().out
  assert len(res["auto"]["candidates"]) == 2 and res["auto"]["phi1"] == "--phi2"
  with pytest.raises(ValueError, match="at least one space with k = 4 or more dimensions .* found 3 and 3"):
    fit_auto(phi1[:, :3], phi2[:, :3], 4, progress=False, say=lambda s: None)


def test_cli_warns_when_classes_are_empty(tmp_path, capsys):
  phi1, phi2, _ = cone()
  np.save(tmp_path / "a.npy", phi1)
  np.save(tmp_path / "b.npy", phi2)
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "a.npy"),
      "--phi2",
      str(tmp_path / "b.npy"),
      "--preset",
      "official",
      "--k",
      "4",
      "--num-iters",
      "60",
      "--num-subsets",
      "4",
      "--subset-size",
      "300",
      "--adaptation-steps",
      "30",
      "--inner-lr",
      "0.05",
      "--outer-lr",
      "0.01",
      "--seed",
      "2",
      "--quiet",
      "--no-plots",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  entry = res["splits"]["train"]
  assert entry["nonempty_classes"] < 4
  assert f"warning: only {entry['nonempty_classes']} of the 4 requested classes" in capsys.readouterr().out


def test_k_auto_on_raw_features_finds_the_planted_k(tmp_path, capsys, monkeypatch):
  """--k auto with the default preset: each K's runs from both spaces on the conditioned raw
  features agree at the planted K; the chosen K's full search labels the samples. Each K's
  compiled programs are released after it (a long search over K ran out of memory maps)."""
  import jax

  releases = []
  clear = jax.clear_caches
  monkeypatch.setattr(jax, "clear_caches", lambda: (releases.append(1), clear()))
  phi1, phi2, y = cone()
  for name, arr in {"a": phi1, "b": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "a.npy"),
      "--phi2",
      str(tmp_path / "b.npy"),
      "--labels",
      str(tmp_path / "y.npy"),
      "--k",
      "auto",
      "--k-range",
      "3:5",
      "--budget",
      "90",
      "--quiet",
      "--no-plots",
      "--no-baselines",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  sel = res["k_selection"]
  assert [e["k"] for e in sel["scores"]] == [3, 4, 5] and sel["chosen_k"] == 4
  assert sel["warning"] is None  # the runs agree at the planted K: no weak-agreement warning
  assert len(releases) == 3  # once after each K
  assert res["splits"]["train"]["acc"] > 0.85 and len(res["auto"]["candidates"]) >= 2
  after = res["auto"]["budget"]["after_search"]  # the chosen K's share of --budget, less the stages after its search
  assert after == pytest.approx(closing_seconds(len(phi1), 4, d2=phi2.shape[1]), abs=0.05)
  assert res["auto"]["plan"]["budget_seconds"] == pytest.approx(90 * (1 - K_AUTO_SHARE) - after, abs=0.05)
  out = capsys.readouterr().out
  assert "K auto: 3 values of K" in out
  assert "--budget of 90 s" in out  # the whole run against the whole --budget, the search over K included


def test_k_auto_warns_when_the_runs_agree_little_at_every_k():
  """The chosen K's stability below WEAK gives a warning that says so; agreement above it none."""
  from hume_jax.search.kauto import WEAK, weak_agreement

  assert weak_agreement(WEAK + 0.01) is None and weak_agreement(0.71) is None
  note = weak_agreement(0.17)
  assert "best ARI 0.17" in note and "weakly supported" in note
