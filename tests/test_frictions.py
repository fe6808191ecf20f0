"""What a first user trips on: a probe scored on its own training rows, spaces named by their roles
after a swap, a clone's folder hiding the package, and silent minutes after training."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import cone, planted

from hume_jax import train
from hume_jax.evaluation import metrics as hm
from hume_jax.evaluation.baselines import cv_probe, kmeans, linear_probe, run_baselines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--preset", "official", "--k", "4", "--num-iters", "20", "--num-subsets", "2", "--subset-size", "300"]
SMALL += ["--adaptation-steps", "10", "--inner-lr", "0.05", "--outer-lr", "0.01", "--log-every", "5"]
STAGES = (
  "computing the CV score",
  "computing the premise check",
  "computing baselines",
  "drawing the figures",
  "writing report.html",
)


def _noise(n=300, d=(120, 100), seed=0):
  """Two spaces of pure noise and labels they cannot predict: any probe above chance has seen its rows."""
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d[0])), rng.normal(size=(n, d[1])), rng.integers(0, 4, n)


# -- 1. the probe of a split without another labeled split is cross-validated ---------------------


def test_a_probe_without_a_val_split_is_scored_on_rows_it_did_not_see():
  phi1, phi2, y = _noise()
  assert hm.evaluate(linear_probe(phi1, y, phi1), y)["acc"] > 0.8  # scored on its own rows: a false ceiling
  train_split = {"phi1": phi1, "phi2": phi2, "labels": y}
  same_rows = dict(train_split)  # another dict with the same rows, as the command line passes them
  res = run_baselines(train_split, same_rows, 4, seed=0, same_split=True)
  probes = {key: m for key, m in res.items() if key.startswith("linear probe")}
  assert list(probes) == [
    "linear probe on phi1 (supervised, 5-fold CV)",
    "linear probe on phi2 (supervised, 5-fold CV)",
  ]
  assert all(m["acc"] < 0.4 for m in probes.values()), probes  # chance is 0.25
  from sklearn.model_selection import StratifiedKFold

  folds = np.zeros_like(y)
  for test_rows in (rows for _, rows in StratifiedKFold(5, shuffle=True, random_state=0).split(phi1, y)):
    fit_rows = np.setdiff1d(np.arange(len(y)), test_rows)
    folds[test_rows] = linear_probe(phi1[fit_rows], y[fit_rows], phi1[test_rows])
  assert probes["linear probe on phi1 (supervised, 5-fold CV)"] == hm.evaluate(folds, y)


def test_cv_probe_falls_back_to_plain_folds_when_a_class_is_rarer_than_the_folds():
  phi1, _, y = planted()
  y = y.copy()
  y[:3] = 4  # a fifth class of 3 rows: stratified 5-fold cannot hold it in every fold
  pred = cv_probe(phi1, y, seed=0)
  assert pred.shape == y.shape and hm.evaluate(pred, y)["acc"] > 0.9


def test_the_command_line_cross_validates_the_probe_when_there_is_no_val_split(tmp_path, capsys):
  phi1, phi2, y = _noise()
  for name, arr in {"a": phi1, "b": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  files = ["--phi1", str(tmp_path / "a.npy"), "--phi2", str(tmp_path / "b.npy"), "--labels", str(tmp_path / "y.npy")]
  res = train.main(files + ["--out", str(tmp_path / "run"), "--no-plots", "--quiet"] + SMALL)
  probes = {key: m for key, m in res["baselines"].items() if key.startswith("linear probe")}
  assert list(probes) == [
    "linear probe on --phi1 (a.npy) (supervised, 5-fold CV)",
    "linear probe on --phi2 (b.npy) (supervised, 5-fold CV)",
  ]
  assert all(m["acc"] < 0.4 for m in probes.values()), probes
  out = capsys.readouterr().out
  assert "linear probe on --phi1 (a.npy) (supervised, 5-fold CV)" in out
  assert not [stage for stage in STAGES if stage in out]  # --quiet: no stage lines


# -- 2. after a swap, every output names a space by its flag and file -----------------------------


def test_after_a_swap_rows_premise_and_map_name_each_space_by_its_file(tmp_path, capsys, monkeypatch):
  from hume_jax.report import plots
  from hume_jax.search.premise import premise_report

  drawn = []
  draw = plots.embedding_map
  monkeypatch.setattr(plots, "embedding_map", lambda phi, *a, **kw: (drawn.append((phi, kw)), draw(phi, *a, **kw)))
  phi1, phi2, y = cone()
  a, b = phi1[:, :3], phi2  # 3 < k = 4 columns: a serves only as phi2, so the search keeps --phi2 as phi1
  for name, arr in {"a": a, "b": b, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  out = str(tmp_path / "run")
  args = ["--phi1", str(tmp_path / "a.npy"), "--phi2", str(tmp_path / "b.npy"), "--labels", str(tmp_path / "y.npy")]
  res = train.main(args + ["--k", "4", "--num-iters", "20", "--quiet", "--out", out])
  assert res["auto"]["phi1"] == "--phi2"
  assert res["spaces"] == {"phi1": "--phi2 (b.npy)", "phi2": "--phi1 (a.npy)"}
  seed = json.load(open(os.path.join(out, "config.json")))["hume"]["seed"]
  base = res["baselines"]
  assert base["k-means on --phi1 (a.npy)"] == hm.evaluate(kmeans(a, a, 4, seed), y)  # the row holds a.npy's clusters
  assert base["k-means on --phi2 (b.npy)"] == hm.evaluate(kmeans(b, b, 4, seed), y)
  assert "linear probe on --phi1 (a.npy) (supervised, 5-fold CV)" in base
  assert not [key for key in base if "phi1)" in key or "phi2)" in key or key.endswith(("phi1", "phi2"))]
  pred = np.load(os.path.join(out, "labels_train.npy"))
  names = ("--phi2 (b.npy)", "--phi1 (a.npy)")
  expected = premise_report(b, a, pred, 4, names=names)
  assert list(res["premise"]["found"]) == list(names)
  assert res["premise"]["found"] == pytest.approx(expected["found"])
  assert res["premise"]["k-means of --phi1 (a.npy)"] == pytest.approx(expected["k-means of --phi1 (a.npy)"])
  assert [(phi.shape[1], kw["space"]) for phi, kw in drawn] == [(3, "--phi1 (a.npy)")]  # the map is of a.npy
  printed = capsys.readouterr().out
  assert "premise (label-free; kappa in --phi2 (b.npy)/--phi1 (a.npy))" in printed
  assert "linearly separable in --phi1 (a.npy)" in printed
  html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
  assert "k-means on --phi1 (a.npy)" in html and "kappa in --phi2 (b.npy)" in html


def test_an_extraction_file_names_its_space_by_its_model(tmp_path):
  from argparse import Namespace

  from hume_jax.train.report import space_names

  phi1, phi2, _ = planted()
  np.savez(tmp_path / "a.npz", features=phi1, meta=np.array(json.dumps({"model": "dinov2_vitb14"})))
  np.save(tmp_path / "b.npy", phi2)
  args = Namespace(phi1=str(tmp_path / "a.npz"), phi2=str(tmp_path / "b.npy"))
  assert space_names(args) == {"phi1": "--phi1 (dinov2_vitb14)", "phi2": "--phi2 (b.npy)"}
  assert space_names(args, swapped=True) == {"phi1": "--phi2 (b.npy)", "phi2": "--phi1 (dinov2_vitb14)"}
  assert space_names(Namespace(phi1=None, phi2=None)) == {
    "phi1": "phi1 (open_nsfw)",
    "phi2": "phi2 (efficientnet_lite0)",
  }


# -- 3. a clone in a folder named hume_jax, run from its parent ----------------------------------

# How ``pip install -e`` finds the package: a finder consulted after the folders of ``sys.path``, so a
# folder named ``hume_jax`` in the current folder is found first (as a namespace package).
EDITABLE = """
import importlib.machinery, os, runpy, sys
root = sys.argv.pop(1)
sys.path[:] = [""] + [p for p in sys.path[1:] if os.path.abspath(p or ".") != root]
class Editable:
  @staticmethod
  def find_spec(name, path=None, target=None):
    parts = name.split(".")
    if parts[0] != "hume_jax":
      return None
    return importlib.machinery.PathFinder.find_spec(name, [os.path.join(root, *parts[:-1])])
sys.meta_path.append(Editable)
runpy.run_module("hume_jax.train", run_name="__main__", alter_sys=True)
"""


def _run_cli(cwd, *args):
  command = [sys.executable, "-c", EDITABLE, ROOT, *args]
  return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_clone_named_hume_jax_with_a_runs_folder_is_named_in_one_line(tmp_path):
  phi1, phi2, _ = planted()
  os.makedirs(tmp_path / "hume_jax" / "runs" / "fashion_mnist-20240101-000000")  # the clone's first run
  np.save(tmp_path / "a.npy", phi1)
  np.save(tmp_path / "b.npy", phi2)
  elsewhere = tmp_path / "elsewhere"
  os.makedirs(elsewhere)
  assert "usage: python -m hume_jax.train" in _run_cli(elsewhere, "--help").stdout  # the launcher itself works
  done = _run_cli(tmp_path, "--phi1", "a.npy", "--phi2", "b.npy", "--k", "4", "--out", str(tmp_path / "out"))
  assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
  message = done.stderr.strip()
  assert "\n" not in message and message.startswith("error: the folder hume_jax ")
  assert "hides the package hume_jax" in message and "(cd hume_jax)" in message
  assert not os.path.exists(tmp_path / "out")


# -- 4. every stage after training says that it started -------------------------------------------


def test_each_stage_after_training_prints_one_line_when_it_starts(tmp_path, capsys):
  phi1, phi2, y = planted()
  for name, arr in {"a": phi1, "b": phi2, "y": y}.items():
    np.save(tmp_path / f"{name}.npy", arr)
  args = ["--phi1", str(tmp_path / "a.npy"), "--phi2", str(tmp_path / "b.npy"), "--labels", str(tmp_path / "y.npy")]
  train.main(args + ["--out", str(tmp_path / "run")] + SMALL)
  out = capsys.readouterr().out
  at = [out.find(stage) for stage in STAGES]
  assert all(i >= 0 for i in at) and at == sorted(at), dict(zip(STAGES, at))
  assert [out.count(stage) for stage in STAGES] == [1] * len(STAGES)
  assert at[-1] < out.find("train split, 600 samples, in %")  # all before the table
  assert "computing the premise check (k-means of each space and 6 cross-validated regressions) ..." in out
