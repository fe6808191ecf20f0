"""Every bad input stops before any compute, with a message naming the file or array, what was
expected and what was found. Each case here is a row of the bad-input table in docs/reference/bad-input.md."""

import os

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
  "3",
  "--num-subsets",
  "2",
  "--subset-size",
  "300",
  "--adaptation-steps",
  "3",
  "--quiet",
  "--no-baselines",
]


def _write(tmp_path, name, arr=None, raw=None):
  path = str(tmp_path / name)
  if raw is not None:
    with open(path, "wb") as f:
      f.write(raw)
  elif name.endswith(".npz"):
    np.savez(path, **arr)
  else:
    np.save(path, arr, allow_pickle=arr.dtype == object)
  return path


def cases(tmp_path):
  phi1, phi2, y = planted()
  good = {"phi1": _write(tmp_path, "phi1.npy", phi1), "phi2": _write(tmp_path, "phi2.npy", phi2)}
  zero_row = phi1.copy()
  zero_row[7] = 0
  inf = phi2.copy()
  inf[2, 1] = np.inf
  truncated = open(good["phi1"], "rb").read()[:500]
  return good, {
    "rows differ": (
      ["--phi2", _write(tmp_path, "p2s.npy", phi2[:50])],
      r"same number of rows .*--phi1.*--phi2.*\{'--phi1': 600, '--phi2': 50\}",
    ),
    "labels rows differ": (["--labels", _write(tmp_path, "ys.npy", y[:10])], r"'--labels': 10"),
    "val rows differ": (
      ["--phi1-val", good["phi1"], "--phi2-val", _write(tmp_path, "v2.npy", phi2[:9])],
      r"'--phi1-val': 600, '--phi2-val': 9",
    ),
    "val columns differ": (
      ["--phi1-val", _write(tmp_path, "v1.npy", phi1[:, :5]), "--phi2-val", good["phi2"]],
      "--phi1-val: expected 16 columns like --phi1, found 5",
    ),
    "val without phi2": (["--phi1-val", good["phi1"]], "needs both --phi1-val and --phi2-val"),
    "NaN": (
      ["--phi1", _write(tmp_path, "nan.npy", np.where(np.arange(600)[:, None] == 3, np.nan, phi1))],
      r"--phi1: expected finite values, found 16 NaN/inf in 1 rows \(first rows: \[3\]\)",
    ),
    "inf": (["--phi2", _write(tmp_path, "inf.npy", inf)], r"--phi2: expected finite values, found 1 NaN/inf"),
    "all-zero row": (
      ["--phi1", _write(tmp_path, "z.npy", zero_row)],
      r"--phi1: cannot L2-normalise 1 all-zero rows \(first rows: \[7\]\)",
    ),
    "1-D array": (
      ["--phi1", _write(tmp_path, "1d.npy", phi1[:, 0])],
      r"--phi1: expected a 2-D array \[n, d\], found shape \(600,\)",
    ),
    "3-D array": (
      ["--phi2", _write(tmp_path, "3d.npy", phi2[:, :, None])],
      r"--phi2: expected a 2-D array \[n, d\], found shape \(600, 12, 1\)",
    ),
    "strings": (
      ["--phi1", _write(tmp_path, "s.npy", np.array([["a", "b"]] * 600))],
      "--phi1: expected a numeric array .*found dtype <U1",
    ),
    "object array": (
      ["--phi1", _write(tmp_path, "o.npy", np.array([[1, None]] * 600, dtype=object))],
      "--phi1: .* holds Python objects",
    ),
    "empty file": (["--phi1", _write(tmp_path, "e.npy", raw=b"")], r"--phi1: .*e.npy is empty \(0 bytes\)"),
    "truncated file": (["--phi1", _write(tmp_path, "t.npy", raw=truncated)], "--phi1: cannot read .*t.npy"),
    "not a numpy file": (["--phi1", _write(tmp_path, "x.npy", raw=b"hello,world\n1,2\n")], "--phi1: cannot read"),
    "missing file": (["--phi1", str(tmp_path / "nope.npy")], "--phi1: no such file .*nope.npy"),
    "npz, several arrays": (
      ["--phi1", _write(tmp_path, "m.npz", {"a": phi1, "b": phi2})],
      r"--phi1: .*m.npz holds 2 arrays; name one as .*m.npz:KEY. Its keys are \['a', 'b'\]",
    ),
    "npz, wrong key": (
      ["--phi1", _write(tmp_path, "m2.npz", {"a": phi1}) + ":b"],
      r"--phi1: .*m2.npz has no key 'b'; its keys are \['a'\]",
    ),
    "k < 2": (["--k", "1"], "k: expected at least 2 classes, got 1"),
    "k > n": (["--k", "700"], r"k: expected at most the number of samples \(600\), got 700"),
    "k > d1": (["--k", "20"], "k must be <= d1 = 16; got 20"),
    "train fraction": (["--train-fraction", "0"], r"train_fraction: expected a value in \(0, 1\), got 0.0"),
    "steps": (["--adaptation-steps", "0"], "adaptation_steps: expected a positive value, got 0"),
    "inner lr": (["--inner-lr", "-1"], "inner_lr: expected a positive value, got -1.0"),
    "outer lr": (["--outer-lr", "0"], "outer_lr: expected a positive value, got 0.0"),
    "tau": (["--tau", "0"], "tau: expected a positive value, got 0.0"),
    "subsets": (["--num-subsets", "0"], "num_subsets: expected a positive value, got 0"),
    "float labels": (
      ["--labels", _write(tmp_path, "fy.npy", y + 0.5)],
      "--labels: expected integer class labels, found dtype float64",
    ),
    "negative labels": (
      ["--labels", _write(tmp_path, "ny.npy", y - 1)],
      "--labels: expected labels >= 0, found minimum -1",
    ),
    "2-D labels": (
      ["--labels", _write(tmp_path, "2y.npy", np.stack([y, y], 1))],
      r"--labels: expected a 1-D array of labels \[n\], found shape \(600, 2\)",
    ),
    "only phi1": (["--phi2", None], "give both --phi1 and --phi2"),
    "class sizes, count": (["--class-sizes", "3,2,1"], r"prior: expected 4 class sizes .*got shape \(3,\)"),
    "class sizes, k-means": (["--class-sizes", "k-means"], "--class-sizes k-means applies to --preset auto"),
    "class sizes, k auto": (
      ["--k", "auto", "--class-sizes", "3,2,1,1"],
      "--class-sizes does not apply with --k auto: the sizes are those of one k",
    ),
  }


@pytest.mark.parametrize(
  "case",
  [
    "rows differ",
    "labels rows differ",
    "val rows differ",
    "val columns differ",
    "val without phi2",
    "NaN",
    "inf",
    "all-zero row",
    "1-D array",
    "3-D array",
    "strings",
    "object array",
    "empty file",
    "truncated file",
    "not a numpy file",
    "missing file",
    "npz, several arrays",
    "npz, wrong key",
    "k < 2",
    "k > n",
    "k > d1",
    "train fraction",
    "steps",
    "inner lr",
    "outer lr",
    "tau",
    "subsets",
    "float labels",
    "negative labels",
    "2-D labels",
    "only phi1",
    "class sizes, count",
    "class sizes, k-means",
    "class sizes, k auto",
  ],
)
def test_bad_input(tmp_path, case):
  good, table = cases(tmp_path)
  extra, message = table[case]
  args = {"--phi1": good["phi1"], "--phi2": good["phi2"]}
  for flag, value in zip(extra[::2], extra[1::2]):
    args[flag] = value
  argv = [a for flag, value in args.items() if value is not None for a in (flag, value)]
  out = str(tmp_path / "out")
  with pytest.raises(SystemExit, match=message):
    train.main(SMALL + argv + ["--out", out])
  assert not os.path.exists(out) and not os.path.exists(out + ".partial")  # nothing started


def test_subset_size_larger_than_n_is_clipped_with_a_note(tmp_path, capsys):
  good, _ = cases(tmp_path)
  train.main(
    ["--phi1", good["phi1"], "--phi2", good["phi2"], "--out", str(tmp_path / "o")] + SMALL + ["--subset-size", "5000"]
  )
  assert "subset size 5000 > n = 600: each subset is all 600 rows" in capsys.readouterr().out
