"""``python -m extract_torch`` records each sample's source; ``--split`` on folders is honoured or
refused; ``--help`` says which models run offline; a failed download is one line."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from extract_torch import __main__ as cli  # noqa: E402

FAST = ["--model", "efficientnet_lite0", "--image-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
  """PNG files in ``train/<class>/`` and ``test/<class>/``."""
  from PIL import Image

  root = tmp_path_factory.mktemp("splits")
  rng = np.random.default_rng(0)
  for split, n in (("train", 3), ("test", 2)):
    for c in ("cat", "dog"):
      os.makedirs(root / split / c)
      for j in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{j}.png")
  return str(root)


def test_folder_sources_are_paths_under_the_recorded_root(split_folder, tmp_path):
  out = str(tmp_path / "f.npz")
  assert cli.main(["--dataset", f"folder:{split_folder}/train", "--out", out] + FAST) == 0
  f = np.load(out)
  meta = json.loads(str(f["meta"]))
  assert f["sources"].tolist() == [f"{c}/{j}.png" for c in ("cat", "dog") for j in range(3)]
  assert meta["sources_root"] == os.path.abspath(os.path.join(split_folder, "train")) and meta["split"] == "all"
  assert all(os.path.isfile(os.path.join(meta["sources_root"], s)) for s in f["sources"])


def test_split_of_a_folder_reads_its_subfolders_or_is_refused(split_folder, tmp_path):
  out = str(tmp_path / "t.npz")
  assert cli.main(["--dataset", f"folder:{split_folder}", "--split", "train+test", "--out", out] + FAST) == 0
  f = np.load(out)
  assert len(f["features"]) == 10 and json.loads(str(f["meta"]))["split"] == "train+test"
  assert f["sources"][0] == "train/cat/0.png" and f["sources"][-1] == "test/dog/1.png"
  np.testing.assert_array_equal(f["labels"], [0, 0, 0, 1, 1, 1, 0, 0, 1, 1])
  with pytest.raises(SystemExit, match="has no subfolder val; omit --split"):
    cli.main(["--dataset", f"folder:{split_folder}/train", "--split", "val", "--out", str(tmp_path / "v.npz")] + FAST)


def test_texts_sources_are_the_texts(tmp_path):
  texts = [f"a text about topic {i % 3} with words shared by others, number {i}" for i in range(12)]
  texts[0] = 'quoted "text", with <tags> & a comma'
  path = tmp_path / "t.csv"
  import csv

  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["text", "label"])
    w.writerows([t, i % 3] for i, t in enumerate(texts))
  out = str(tmp_path / "t.npz")
  assert cli.main(["--texts", str(path), "--label-column", "label", "--model", "tfidf", "--out", out]) == 0
  assert np.load(out)["sources"].tolist() == texts


def test_help_marks_offline_models(capsys):
  with pytest.raises(SystemExit):
    cli.main(["--help"])
  lines = capsys.readouterr().out.splitlines()
  line = lambda name: next(t for t in lines if t.strip().startswith(name + " "))
  assert "offline" in line("efficientnet_lite0") and "offline" in line("open_nsfw") and "offline" in line("tfidf")
  assert "downloads" in line("dinov2_vitb14") and "--weights" in line("dinov2_vitb14")


def test_a_failed_download_is_one_line(split_folder, tmp_path, monkeypatch, capsys):
  import torch

  monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

  def offline(url, path, progress=True):
    raise OSError("[Errno -3] Temporary failure in name resolution\n(no network)")

  monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
  with pytest.raises(SystemExit) as e:
    cli.main(["--dataset", f"folder:{split_folder}/train", "--model", "resnet50", "--out", str(tmp_path / "r.npz")])
  message = str(e.value.code)
  assert "\n" not in message and "could not download" in message and "--weights FILE" in message
