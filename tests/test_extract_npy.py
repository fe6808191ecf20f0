"""``--out FILE.npy``: the features as a memory-mappable ``.npy``, the samples' record in ``FILE.meta.npz``;
the same features as an ``.npz`` output, written atomically, resumable, never replacing a file unasked."""

import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import digit_pngs

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")

from extract_torch import __main__ as cli  # noqa: E402
from extract_torch import output  # noqa: E402
from extract_torch.datasets import open_dataset  # noqa: E402
from extract_torch.extract import run_extraction  # noqa: E402
from extract_torch.models import build_model  # noqa: E402
from hume_jax.io.data import load_array  # noqa: E402
from hume_jax.report._media import recorded  # noqa: E402

FAST = ["--model", "efficientnet_lite0", "--image-size", "32", "--quiet"]
# 60 images in chunks of 32: two chunks, the second one short.
KW = dict(split="train", batch_size=16, chunk_size=32, progress=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
  """scikit-learn's handwritten digits 0, 1, 2 (20 each) as PNG files in class subfolders."""
  return digit_pngs(tmp_path_factory.mktemp("digits"), 20)


@pytest.fixture(scope="module")
def extractor():
  return build_model("efficientnet_lite0", image_size=32)


@pytest.fixture(scope="module")
def both(digits, extractor, tmp_path_factory):
  """The folder extracted uninterrupted, once to ``a.npz`` and once to ``a.npy``; returns the folder."""
  folder = tmp_path_factory.mktemp("out")
  source = open_dataset(f"folder:{digits}")
  for out in ("a.npz", "a.npy"):
    run_extraction(source, extractor, str(folder / out), dataset=f"folder:{digits}", **KW)
  return folder


def test_the_npy_holds_the_npz_features_bit_for_bit_and_maps(both):
  npz = np.load(both / "a.npz")
  x = np.load(both / "a.npy", mmap_mode="r")
  assert isinstance(x, np.memmap) and x.dtype == np.float32 and x.shape == (60, 1280)
  assert npz["features"].shape == (60, 1280)
  np.testing.assert_array_equal(x.view(np.uint32), npz["features"].view(np.uint32))
  assert sorted(os.listdir(both)) == ["a.meta.npz", "a.npy", "a.npz"]  # no partial folder, temporary file or lock
  mapped = load_array(str(both / "a.npy"), "--phi1")
  assert isinstance(mapped, np.memmap) and not mapped.flags.writeable


def test_the_sidecar_holds_the_labels_and_the_rest_of_the_record(both):
  npz, side = np.load(both / "a.npz"), np.load(both / "a.meta.npz")
  assert sorted(side.files) == sorted(k for k in npz.files if k != "features")
  for key in side.files:
    np.testing.assert_array_equal(side[key], npz[key])
  np.testing.assert_array_equal(side["labels"], np.repeat([0, 1, 2], 20))
  assert json.loads(str(side["meta"]))["dim"] == 1280
  # python -m hume_jax.train --labels A.meta.npz (or A.meta.npz:labels) reads them
  np.testing.assert_array_equal(load_array(str(both / "a.meta.npz"), "--labels", "labels"), side["labels"])
  np.testing.assert_array_equal(load_array(f"{both / 'a.meta.npz'}:labels", "--labels"), side["labels"])
  media = recorded(str(both / "a.npy"))  # the report finds the samples through the sidecar
  assert media is not None and media.kind == "files" and media.sources[0] == "digit_0/00.png"


class _InterruptAt:
  def __init__(self, source, stop):
    self.source, self.stop = source, stop

  def __call__(self, i):
    if i == self.stop:
      raise KeyboardInterrupt
    return self.source.get(i)


def test_a_resumed_npy_equals_the_uninterrupted_one(digits, extractor, both, tmp_path):
  source = open_dataset(f"folder:{digits}")
  out, side = str(tmp_path / "r.npy"), str(tmp_path / "r.meta.npz")
  with pytest.raises(KeyboardInterrupt):
    run_extraction(
      dataclasses.replace(source, get=_InterruptAt(source, 50)), extractor, out, dataset=f"folder:{digits}", **KW
    )
  assert not os.path.exists(out) and not os.path.exists(side)
  assert sorted(os.listdir(out + ".partial")) == ["chunk_000000.npy", "chunk_000001.part.npy", "meta.json"]
  with open(side, "wb") as f:  # as a crash between writing the sidecar and the features would leave it
    f.write(b"stale")
  resumed = run_extraction(source, extractor, out, dataset=f"folder:{digits}", resume=True, **KW)
  assert sorted(os.listdir(tmp_path)) == ["r.meta.npz", "r.npy"]
  whole = np.load(both / "a.npy")
  np.testing.assert_array_equal(np.load(out).view(np.uint32), whole.view(np.uint32))
  np.testing.assert_array_equal(resumed["features"], whole)
  for key, value in np.load(both / "a.meta.npz").items():
    np.testing.assert_array_equal(np.load(side)[key], value)


def test_a_failed_assembly_keeps_the_chunks_and_leaves_no_file(digits, extractor, tmp_path, monkeypatch):
  source = open_dataset(f"folder:{digits}").head(20)
  out = str(tmp_path / "f.npy")
  replace = os.replace

  def disk_full(src, dst):
    if dst == out:
      raise OSError(28, "No space left on device")
    replace(src, dst)

  monkeypatch.setattr(output.os, "replace", disk_full)
  with pytest.raises(OSError, match="No space left"):
    run_extraction(source, extractor, out, dataset=f"folder:{digits}", **KW)
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path)) == ["f.meta.npz", "f.npy.partial"]  # no temporary file, no features
  assert run_extraction(source, extractor, out, dataset=f"folder:{digits}", resume=True, **KW)["features"].shape == (
    20,
    1280,
  )
  assert sorted(os.listdir(tmp_path)) == ["f.meta.npz", "f.npy"]


def test_an_existing_npy_or_sidecar_is_refused_unless_overwrite(digits, tmp_path, capsys):
  out, side = tmp_path / "x.npy", tmp_path / "x.meta.npz"
  argv = ["--dataset", f"folder:{digits}", "--limit", "4", "--out", str(out)] + FAST
  out.write_bytes(b"a user's result")
  with pytest.raises(SystemExit, match="x.npy exists; pass --overwrite"):
    cli.main(argv)
  assert out.read_bytes() == b"a user's result" and not side.exists()
  out.unlink()
  side.write_bytes(b"a user's record")
  with pytest.raises(SystemExit, match="sidecar .*x.meta.npz exists; pass --overwrite"):
    cli.main(argv)
  assert side.read_bytes() == b"a user's record" and not out.exists()
  assert cli.main(argv + ["--overwrite"]) == 0
  assert "x.meta.npz" in capsys.readouterr().err
  assert np.load(out, mmap_mode="r").shape == (4, 1280) and np.load(side)["labels"].tolist() == [0, 0, 0, 0]


def test_tfidf_writes_the_same_features_as_npy(tmp_path):
  texts = tmp_path / "t.txt"
  words = ["red", "green", "blue", "cat", "dog", "bird", "sun", "rain", "snow"]
  texts.write_text("".join(f"a text about {words[i % 9]} and {words[(i * 4) % 9]}, number {i}\n" for i in range(30)))
  for out in ("t.npz", "t.npy"):
    assert cli.main(["--texts", str(texts), "--model", "tfidf", "--out", str(tmp_path / out)]) == 0
  x = np.load(tmp_path / "t.npy", mmap_mode="r")
  np.testing.assert_array_equal(x.view(np.uint32), np.load(tmp_path / "t.npz")["features"].view(np.uint32))
  assert np.load(tmp_path / "t.meta.npz")["sources"][0].startswith("a text about red and red")


class _RowsOnly:
  """A [n, dim] array that hands out row slices and refuses to be read whole (as np.asarray would)."""

  def __init__(self, x):
    self.x, self.shape, self.reads = x, x.shape, []

  def __len__(self):
    return len(self.x)

  def __getitem__(self, rows):
    self.reads.append(len(self.x[rows]))
    return self.x[rows]

  def __array__(self, *args, **kwargs):
    raise AssertionError("the official layout read the whole feature array")


def test_official_layout_copies_a_memory_map_in_row_blocks(tmp_path, monkeypatch):
  from extract_torch import extract

  monkeypatch.setattr(extract, "LAYOUT_ROWS", 4)
  x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
  source = _RowsOnly(x)
  paths = extract.write_official_layout(str(tmp_path), "set", "m", "train", source, np.arange(10), l2=True)
  assert source.reads == [4, 4, 2, 4, 4, 2]
  rep = tmp_path / "representations" / "m"
  assert paths == [
    str(rep / "settrain.npy"),
    str(rep / "settrain_l2.npy"),
    str(tmp_path / "labels" / "settrain_targets.npy"),
  ]
  np.testing.assert_array_equal(np.load(paths[0]), x)
  np.testing.assert_allclose(np.load(paths[1]), x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
  assert sorted(os.listdir(rep)) == ["settrain.npy", "settrain_l2.npy"]  # no temporary file left
