"""``python -m hume_jax.train``: outputs, optional labels, the real default data, clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import planted

from hume_jax import train

SMALL = [
  "--preset",
  "official",
  "--k",
  "4",
  "--num-iters",
  "20",
  "--num-subsets",
  "2",
  "--subset-size",
  "300",
  "--adaptation-steps",
  "10",
  "--inner-lr",
  "0.05",
  "--outer-lr",
  "0.01",
  "--quiet",
  "--log-every",
  "5",
]


@pytest.fixture
def files(tmp_path):
  phi1, phi2, y = planted()
  paths = {}
  for name, arr in {"phi1": phi1, "phi2": phi2, "y": y}.items():
    paths[name] = str(tmp_path / f"{name}.npy")
    np.save(paths[name], arr)
  np.savez(tmp_path / "both.npz", a=phi1[:100], b=phi2[:100])
  paths["npz"] = str(tmp_path / "both.npz")
  return paths


def test_outputs_with_labels_and_val_split(files, tmp_path):
  out = str(tmp_path / "run")
  res = train.main(
    [
      "--phi1",
      files["phi1"],
      "--phi2",
      files["phi2"],
      "--labels",
      files["y"],
      "--phi1-val",
      files["phi1"],
      "--phi2-val",
      files["phi2"],
      "--labels-val",
      files["y"],
      "--out",
      out,
    ]
    + SMALL
  )
  assert sorted(os.listdir(out)) == [
    "checkpoint.npz",
    "config.json",
    "confusion_val.png",
    "curves.png",
    "labels_train.npy",
    "labels_val.npy",
    "log.jsonl",
    "map_val.png",
    "metrics.json",
    "report.html",
    "task_encoder.npz",
  ]
  metrics = json.load(open(os.path.join(out, "metrics.json")))
  assert metrics == res and 0 < metrics["cv_score"] <= 1
  assert set(metrics["splits"]["val"]) >= {"acc", "nmi", "ari", "cluster_sizes", "n"}
  assert sum(metrics["splits"]["val"]["cluster_sizes"]) == 600
  assert np.load(os.path.join(out, "labels_val.npy")).shape == (600,)
  log = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]
  assert [r["iteration"] for r in log] == [5, 10, 15, 20] and "acc" in log[0]
  enc = np.load(os.path.join(out, "task_encoder.npz"))
  np.testing.assert_allclose(enc["E"] @ enc["E"].T, np.eye(4), atol=1e-5)
  cfg = json.load(open(os.path.join(out, "config.json")))
  assert cfg["hume"]["num_iters"] == 20 and cfg["hume"]["H_reg"] == 10.0 and cfg["preset"] == "official"
  assert not os.path.exists(out + ".partial")


def test_without_labels(files, tmp_path):
  out = str(tmp_path / "run")
  res = train.main(["--phi1", files["phi1"], "--phi2", files["phi2"], "--out", out] + SMALL)
  assert "acc" not in res["splits"]["train"] and 0 < res["cv_score"] <= 1
  assert os.path.exists(os.path.join(out, "labels_train.npy"))


def test_refuses_to_overwrite_results(files, tmp_path):
  out = tmp_path / "run"
  out.mkdir()
  (out / "metrics.json").write_text("{}")
  with pytest.raises(SystemExit, match="already holds files"):
    train.main(["--phi1", files["phi1"], "--phi2", files["phi2"], "--out", str(out)] + SMALL)
  assert (out / "metrics.json").read_text() == "{}"


@pytest.mark.parametrize(
  "extra, message",
  [
    (["--phi2", "PHI2_SHORT"], "same number of rows"),
    (["--phi1", "NPZ"], r"holds 2 arrays.*\['a', 'b'\]"),
    (["--phi1", "NPZ:c"], r"no key 'c'.*\['a', 'b'\]"),
    (["--phi1", "MISSING"], "no such file"),
    (["--k", "1"], "at least 2 classes"),
    (["--train-fraction", "1.5"], r"in \(0, 1\)"),
    (["--tau", "0"], "tau: expected a positive value"),
  ],
)
def test_clear_errors(files, tmp_path, extra, message):
  short = str(tmp_path / "short.npy")
  np.save(short, np.load(files["phi2"])[:10])
  subst = {
    "PHI2_SHORT": short,
    "NPZ": files["npz"],
    "NPZ:c": files["npz"] + ":c",
    "MISSING": str(tmp_path / "nope.npy"),
  }
  args = ["--phi1", files["phi1"], "--phi2", files["phi2"], "--out", str(tmp_path / "r")] + SMALL
  args += [subst.get(a, a) for a in extra]
  with pytest.raises(SystemExit, match=message):
    train.main(args)
  assert not os.path.exists(tmp_path / "r")


def test_nan_and_object_arrays_rejected(files, tmp_path):
  bad = np.load(files["phi1"])
  bad[3, 2] = np.nan
  np.save(tmp_path / "nan.npy", bad)
  with pytest.raises(
    SystemExit, match=r"--phi1: expected finite values, found 1 NaN/inf in 1 rows \(first rows: \[3\]\)"
  ):
    train.main(["--phi1", str(tmp_path / "nan.npy"), "--phi2", files["phi2"]] + SMALL)
  np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
  with pytest.raises(SystemExit, match="Python objects"):
    train.main(["--phi1", str(tmp_path / "obj.npy"), "--phi2", files["phi2"]] + SMALL)


def test_default_real_data_beats_chance(tmp_path):
  """The shipped Fashion-MNIST representations, a few iterations: far above chance (10%)."""
  out = str(tmp_path / "default")
  res = train.main(
    [
      "--out",
      out,
      "--num-iters",
      "20",
      "--num-subsets",
      "2",
      "--subset-size",
      "2000",
      "--adaptation-steps",
      "30",
      "--quiet",
      "--no-baselines",
    ]
  )
  assert res["splits"]["val"]["n"] == 10000
  assert res["splits"]["val"]["acc"] > 0.3
  assert res["cv_score"] > 0.5


def test_help_lists_every_flag():
  text = subprocess.run(
    [sys.executable, "-m", "hume_jax.train", "--help"], capture_output=True, text=True, check=True
  ).stdout
  for flag in (
    "--phi1",
    "--phi2",
    "--labels",
    "--phi1-val",
    "--phi2-val",
    "--labels-val",
    "--k",
    "--inner-lr",
    "--outer-lr",
    "--tau",
    "--H-reg",
    "--num-iters",
    "--adaptation-steps",
    "--num-subsets",
    "--subset-size",
    "--train-fraction",
    "--anneal",
    "--rand-init",
    "--seed",
    "--preset",
    "--out",
    "--overwrite",
  ):
    assert flag in text, flag


def test_transductive_trains_on_both_splits(files, tmp_path, capsys):
  out = str(tmp_path / "run")
  res = train.main(
    [
      "--phi1",
      files["phi1"],
      "--phi2",
      files["phi2"],
      "--phi1-val",
      files["phi1"],
      "--phi2-val",
      files["phi2"],
      "--labels-val",
      files["y"],
      "--setting",
      "transductive",
      "--out",
      out,
    ]
    + SMALL
  )
  assert "training on train + val (1200 samples)" in capsys.readouterr().out
  assert res["splits"]["train"]["n"] == 1200 and res["splits"]["val"]["n"] == 600
  assert res["cv_split"] == "val"


def test_same_seed_same_outputs_and_versions_recorded(files, tmp_path):
  runs = []
  for name in ("a", "b"):
    out = str(tmp_path / name)
    train.main(["--phi1", files["phi1"], "--phi2", files["phi2"], "--out", out, "--seed", "3", "--no-plots"] + SMALL)
    runs.append(out)
  for f in ("labels_train.npy",):
    np.testing.assert_array_equal(np.load(os.path.join(runs[0], f)), np.load(os.path.join(runs[1], f)))
  np.testing.assert_array_equal(
    np.load(os.path.join(runs[0], "task_encoder.npz"))["raw"], np.load(os.path.join(runs[1], "task_encoder.npz"))["raw"]
  )
  m = [json.load(open(os.path.join(r, "metrics.json"))) for r in runs]
  assert m[0]["cv_score"] == m[1]["cv_score"] and m[0]["splits"] == m[1]["splits"]
  cfg = json.load(open(os.path.join(runs[0], "config.json")))
  assert cfg["hume"]["seed"] == 3 and {"jax", "numpy", "optax", "scikit-learn", "python"} <= set(cfg["versions"])


def test_k_auto_finds_the_planted_k(files, tmp_path):
  out = str(tmp_path / "auto")
  args = [a for a in SMALL if a not in ("--k", "4")] + [
    "--num-iters",
    "100",
    "--adaptation-steps",
    "30",
    "--k-seeds",
    "3",
  ]
  res = train.main(
    [
      "--phi1",
      files["phi1"],
      "--phi2",
      files["phi2"],
      "--labels",
      files["y"],
      "--k",
      "auto",
      "--k-range",
      "3:5",
      "--out",
      out,
    ]
    + args
  )
  sel = res["k_selection"]
  assert [e["k"] for e in sel["scores"]] == [3, 4, 5]
  assert sel["chosen_k"] == 4 and res["splits"]["train"]["acc"] > 0.9
  assert os.path.exists(os.path.join(out, "k_selection.png"))
  assert json.load(open(os.path.join(out, "config.json")))["hume"]["k"] == 4


def test_example_images_per_cluster(files, tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (600, 8, 8), dtype=np.uint8)
  np.save(tmp_path / "img.npy", images)
  out = str(tmp_path / "run")
  train.main(
    ["--phi1", files["phi1"], "--phi2", files["phi2"], "--images", str(tmp_path / "img.npy"), "--out", out] + SMALL
  )
  assert os.path.getsize(os.path.join(out, "examples_train.png")) > 2000
  np.save(tmp_path / "few.npy", images[:10])
  with pytest.raises(SystemExit, match="expected 600 images .* found 10"):
    train.main(
      [
        "--phi1",
        files["phi1"],
        "--phi2",
        files["phi2"],
        "--images",
        str(tmp_path / "few.npy"),
        "--out",
        str(tmp_path / "r2"),
      ]
      + SMALL
    )


@pytest.mark.parametrize(
  "method, flag",
  [
    ("hume", ["--gamma", "5"]),
    ("hume", ["--inner-steps", "3"]),
    ("hume", ["--batch-size", "100"]),
    ("hume", ["--warm-start"]),
    ("turtle", ["--tau", "0.5"]),
    ("turtle", ["--H_reg", "1"]),
    ("turtle", ["--num-subsets", "2"]),
    ("turtle", ["--preset", "cpu"]),
  ],
)
def test_a_flag_of_one_method_is_refused_by_the_other(files, tmp_path, capsys, method, flag):
  # --gamma 5 once turned HUME's annealing factor 0.1 into 5, silently.
  with pytest.raises(SystemExit, match="only for"):
    train.main(
      ["--phi1", files["phi1"], "--phi2", files["phi2"], "--method", method, "--out", str(tmp_path / "r"), "--quiet"]
      + flag
    )
  assert not os.path.exists(tmp_path / "r") and not os.path.exists(tmp_path / "r.partial")


def test_hume_config_takes_only_hume_flags():
  args = train.build_parser().parse_args(["--gamma", "5", "--inner-steps", "3", "--tau", "0.2", "--k", "4"])
  config, _ = train.resolve_config(args, "official")
  assert config.gamma == 0.1 and config.tau == 0.2 and config.k == 4


@pytest.mark.parametrize(
  "flag, message",
  [
    (["--gamma", "-1"], "gamma: expected a value >= 0"),
    (["--inner-steps", "0"], "inner_steps: expected a positive"),
    (["--batch-size", "0"], "batch_size: expected a positive"),
  ],
)
def test_turtle_ranges_are_checked(files, tmp_path, flag, message):
  with pytest.raises(SystemExit, match=message):
    train.main(
      ["--phi1", files["phi1"], "--phi2", files["phi2"], "--method", "turtle", "--out", str(tmp_path / "r"), "--quiet"]
      + flag
    )


def test_paths_folder_and_extraction_labels(files, tmp_path):
  with pytest.raises(SystemExit, match="is a folder; expected a .npy or .npz file"):
    train.main(["--phi1", str(tmp_path), "--phi2", files["phi2"], "--out", str(tmp_path / "r")] + SMALL)
  phi1, _, y = planted()
  np.savez(tmp_path / "extracted.npz", features=phi1, labels=y, indices=np.arange(len(y)))  # extract_torch's layout
  out = str(tmp_path / "r2")
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "extracted.npz"),
      "--phi2",
      files["phi2"],
      "--labels",
      str(tmp_path / "extracted.npz"),
      "--out",
      out,
    ]
    + SMALL
  )
  assert res["splits"]["train"]["n"] == 600 and "acc" in res["splits"]["train"]  # read :labels, not :features
  command = json.load(open(os.path.join(out, "config.json")))["command"]
  assert command.startswith("python -m hume_jax.train --phi1 ") and "extracted.npz" in command


def test_api_validates_inputs_like_the_cli():
  from hume_jax import HumeConfig, fit

  phi1, phi2, _ = planted()
  cfg = HumeConfig(k=4, num_iters=1)
  with pytest.raises(ValueError, match=r"same number of rows .* phi1, phi2; found \{'phi1': 600, 'phi2': 100\}"):
    fit(phi1, phi2[:100], cfg, progress=False)
  with pytest.raises(ValueError, match="phi1: expected L2-normalised rows"):
    fit(phi1 * 3, phi2, cfg, progress=False)
  with pytest.raises(ValueError, match="phi2: expected finite values"):
    fit(phi1, np.where(np.arange(600)[:, None] == 5, np.nan, phi2), cfg, progress=False)
  from hume_jax.search.auto import fit_auto  # raw spaces: any scale, but the same rows and finite

  with pytest.raises(ValueError, match=r"same number of rows .* found \{'phi_a': 600, 'phi_b': 100\}"):
    fit_auto(phi1 * 3, phi2[:100], 4, progress=False, say=lambda s: None)
  with pytest.raises(ValueError, match="phi_b: expected finite values"):
    fit_auto(phi1, np.where(np.arange(600)[:, None] == 5, np.inf, phi2), 4, progress=False, say=lambda s: None)
  from hume_jax.search.kauto import select_k_auto  # checked once, before the conditioning, not again for each K

  with pytest.raises(ValueError, match="phi_a: expected finite values"):
    select_k_auto(np.where(np.arange(600)[:, None] == 5, np.nan, phi1), phi2, (2, 4), say=lambda s: None)


def test_baselines_by_default_when_labels_are_given(files, tmp_path, capsys):
  res = train.main(
    [
      "--phi1",
      files["phi1"],
      "--phi2",
      files["phi2"],
      "--labels",
      files["y"],
      "--out",
      str(tmp_path / "r"),
      "--no-plots",
    ]
    + SMALL
  )
  assert {"k-means on --phi1 (phi1.npy)", "k-means on --phi2 (phi2.npy)"} <= set(res["baselines"])
  assert "k-means on --phi1 (phi1.npy)" in capsys.readouterr().out
  res = train.main(
    [
      "--phi1",
      files["phi1"],
      "--phi2",
      files["phi2"],
      "--labels",
      files["y"],
      "--out",
      str(tmp_path / "r2"),
      "--no-plots",
      "--no-baselines",
    ]
    + SMALL
  )
  assert "baselines" not in res


def test_labels_given_as_class_names(files, tmp_path):
  from hume_jax.evaluation.metrics import evaluate

  """String labels (class names) are numbered in sorted order, one numbering for both splits,
  and give the same scores as the integers; the names are recorded and label the figures."""
  y = np.load(files["y"])
  names = np.array(["zebra", "apple", "mango", "kiwi"])[y]  # sorted: apple 0, kiwi 1, mango 2, zebra 3
  np.save(tmp_path / "names.npy", names)
  common = ["--phi1", files["phi1"], "--phi2", files["phi2"], "--no-baselines"] + SMALL
  by_name = train.main(
    common
    + [
      "--labels",
      str(tmp_path / "names.npy"),
      "--phi1-val",
      files["phi1"],
      "--phi2-val",
      files["phi2"],
      "--labels-val",
      str(tmp_path / "names.npy"),
      "--out",
      str(tmp_path / "names"),
    ]
  )
  for split in ("train", "val"):  # the same scores as the integer labels give the same predictions
    found = np.load(tmp_path / "names" / f"labels_{split}.npy")
    for m, v in evaluate(found, y).items():
      assert by_name["splits"][split][m] == pytest.approx(v, abs=1e-12)
  assert json.load(open(tmp_path / "names" / "config.json"))["class_names"] == ["apple", "kiwi", "mango", "zebra"]
  with pytest.raises(SystemExit, match="class names in every labels file or in none"):
    train.main(
      common
      + [
        "--labels",
        str(tmp_path / "names.npy"),
        "--phi1-val",
        files["phi1"],
        "--phi2-val",
        files["phi2"],
        "--labels-val",
        files["y"],
        "--out",
        str(tmp_path / "mixed"),
      ]
    )
