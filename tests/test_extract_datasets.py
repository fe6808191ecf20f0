"""extract_torch datasets: every kind read from files the test writes in the real on-disk formats."""

import gzip
import pickle

import numpy as np
import pytest

from extract_torch.datasets import (
  CIFAR100_COARSE,
  CIFAR100_SUPERCLASSES,
  _array_source,
  cifar100_to_20,
  concat_sources,
  open_dataset,
)


def _rgb(i, h=32, w=32):
  """A distinct image per index: its colour encodes i."""
  return np.full((h, w, 3), (i * 7 % 256, i * 13 % 256, i % 256), np.uint8)


def _write_cifar(root, kind, n_per_batch=4):
  rng = np.random.default_rng(0)
  if kind == "cifar10":
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for j, f in enumerate(files):
      imgs = np.stack([_rgb(j * n_per_batch + i) for i in range(n_per_batch)])
      batch = {
        "data": imgs.transpose(0, 3, 1, 2).reshape(n_per_batch, -1),
        "labels": list(rng.integers(0, 10, n_per_batch)),
      }
      with open(d / f, "wb") as fh:
        pickle.dump(batch, fh)
  else:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for f, n in (("train", 10), ("test", 6)):
      fine = rng.integers(0, 100, n)
      imgs = np.stack([_rgb(i) for i in range(n)])
      batch = {
        "data": imgs.transpose(0, 3, 1, 2).reshape(n, -1),
        "fine_labels": list(fine),
        "coarse_labels": list(CIFAR100_COARSE[fine]),
      }
      with open(d / f, "wb") as fh:
        pickle.dump(batch, fh)


def test_cifar10_layout_and_train_plus_test(tmp_path):
  _write_cifar(tmp_path, "cifar10")
  train = open_dataset(f"cifar10:{tmp_path}", "train")
  assert len(train) == 20 and train.labels.shape == (20,) and train.class_names[0] == "airplane"
  np.testing.assert_array_equal(train.get(5), _rgb(5))  # CHW rows decoded to HWC
  both = open_dataset(f"cifar10:{tmp_path}", "train+test")
  assert len(both) == 24
  np.testing.assert_array_equal(both.get(21), _rgb(21))
  np.testing.assert_array_equal(both.labels[:20], train.labels)
  with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
    open_dataset(f"cifar10:{tmp_path}", "validation")
  with pytest.raises(FileNotFoundError, match="no folder 'cifar-10-batches-py'"):
    open_dataset(f"cifar10:{tmp_path / 'nowhere'}", "train")


def test_cifar100_20_labels_are_the_superclasses(tmp_path):
  _write_cifar(tmp_path, "cifar100")
  fine = open_dataset(f"cifar100:{tmp_path}", "train")
  coarse = open_dataset(f"cifar100-20:{tmp_path}", "train")
  with open(tmp_path / "cifar-100-python" / "train", "rb") as fh:
    stored_coarse = pickle.load(fh)["coarse_labels"]
  np.testing.assert_array_equal(coarse.labels, stored_coarse)  # the dataset's own coarse labels
  np.testing.assert_array_equal(coarse.labels, cifar100_to_20(fine.labels))
  assert coarse.class_names == CIFAR100_SUPERCLASSES


def test_cifar100_superclass_table():
  assert np.bincount(CIFAR100_COARSE).tolist() == [5] * 20  # 5 fine classes in each superclass
  fine_names = {
    0: "apple",
    1: "aquarium_fish",
    2: "baby",
    3: "bear",
    8: "bicycle",
    47: "maple_tree",
    58: "pickup_truck",
    99: "worm",
  }
  expected = {
    0: "fruit_and_vegetables",
    1: "fish",
    2: "people",
    3: "large_carnivores",
    8: "vehicles_1",
    47: "trees",
    58: "vehicles_1",
    99: "non-insect_invertebrates",
  }
  for i in fine_names:
    assert CIFAR100_SUPERCLASSES[cifar100_to_20(np.array([i]))[0]] == expected[i], fine_names[i]
  with pytest.raises(ValueError, match="0..99"):
    cifar100_to_20(np.array([100]))


# The superclass list as the dataset's authors publish it (CIFAR-100 page of the University of
# Toronto), written independently of CIFAR100_COARSE: superclass -> its five classes. Both the
# fine and the coarse label numbers of cifar-100-python are the alphabetical order of the names.
PUBLISHED_SUPERCLASSES = {
  "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
  "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
  "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
  "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
  "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
  "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
  "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
  "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
  "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
  "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
  "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
  "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
  "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
  "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
  "people": ["baby", "boy", "girl", "man", "woman"],
  "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
  "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
  "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
  "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
  "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}


def test_cifar100_table_against_the_published_superclass_list():
  fine_names = sorted(name for names in PUBLISHED_SUPERCLASSES.values() for name in names)
  coarse_names = sorted(PUBLISHED_SUPERCLASSES)
  assert len(set(fine_names)) == 100 and coarse_names == CIFAR100_SUPERCLASSES
  expected = np.empty(100, np.int64)
  for superclass, names in PUBLISHED_SUPERCLASSES.items():
    for name in names:
      expected[fine_names.index(name)] = coarse_names.index(superclass)
  np.testing.assert_array_equal(CIFAR100_COARSE, expected)
  np.testing.assert_array_equal(cifar100_to_20(np.arange(100)), expected)


def test_stl10_binary(tmp_path):
  d = tmp_path / "stl10_binary"
  d.mkdir()
  imgs = np.stack([_rgb(i, 96, 96) for i in range(3)])
  imgs[0, 10, 20] = (255, 0, 0)  # one pixel at row 10, column 20
  # STL-10 stores each channel column-major: [n, 3, w, h].
  imgs.transpose(0, 3, 2, 1).tofile(d / "test_X.bin")
  np.array([1, 10, 3], np.uint8).tofile(d / "test_y.bin")
  src = open_dataset(f"stl10:{tmp_path}", "test")
  np.testing.assert_array_equal(src.get(0), imgs[0])
  np.testing.assert_array_equal(src.labels, [0, 9, 2])


def test_image_folder_with_classes_flat_and_mixed(tmp_path):
  from PIL import Image

  for c, n in (("cat", 2), ("dog", 3)):
    (tmp_path / "labeled" / c).mkdir(parents=True)
    for i in range(n):
      Image.fromarray(_rgb(i)).save(tmp_path / "labeled" / c / f"{i}.png")
  (tmp_path / "labeled" / "dog" / "notes.txt").write_text("not an image")
  src = open_dataset(f"folder:{tmp_path / 'labeled'}")
  assert len(src) == 5 and src.class_names == ["cat", "dog"]
  plain = open_dataset(str(tmp_path / "labeled"))  # an existing folder needs no folder: prefix
  assert len(plain) == 5 and plain.class_names == ["cat", "dog"]
  np.testing.assert_array_equal(src.labels, [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(np.asarray(src.get(3)), _rgb(1))
  (tmp_path / "flat").mkdir()
  Image.fromarray(_rgb(0)[..., 0]).save(tmp_path / "flat" / "a.png")  # grey file -> RGB
  flat = open_dataset(f"folder:{tmp_path / 'flat'}")
  assert len(flat) == 1 and flat.labels is None and flat.get(0).mode == "RGB"
  Image.fromarray(_rgb(0)).save(tmp_path / "labeled" / "stray.png")
  with pytest.raises(ValueError, match="both image files .* and class subfolders"):
    open_dataset(f"folder:{tmp_path / 'labeled'}")
  (tmp_path / "flat" / "broken.jpg").write_bytes(b"no jpeg")
  with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
    open_dataset(f"folder:{tmp_path / 'flat'}").get(1)


def test_idx_and_npy(tmp_path):
  imgs = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
  for stem, arr, magic in (("t10k-images-idx3-ubyte", imgs, 2051), ("t10k-labels-idx1-ubyte", np.arange(4), 2049)):
    with gzip.open(tmp_path / f"{stem}.gz", "wb") as f:
      f.write(
        magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.astype(np.uint8).tobytes()
      )
  src = open_dataset(f"mnist:{tmp_path}", "test")
  np.testing.assert_array_equal(src.get(2), imgs[2])
  np.testing.assert_array_equal(src.labels, np.arange(4))
  np.savez(tmp_path / "x.npz", images=imgs, labels=np.arange(4) % 2)
  src = open_dataset(f"npy:{tmp_path / 'x.npz'}")
  assert len(src) == 4 and src.labels.tolist() == [0, 1, 0, 1]
  np.save(tmp_path / "f.npy", imgs.astype(np.float32))
  with pytest.raises(ValueError, match=r"expected uint8 images .* found float32 \(4, 28, 28\)"):
    open_dataset(f"npy:{tmp_path / 'f.npy'}")


def test_unknown_kind_and_missing_path():
  with pytest.raises(ValueError, match="unknown kind 'imagenet'.*tfds:NAME"):
    open_dataset("imagenet:/data")
  with pytest.raises(ValueError, match="give the path"):
    open_dataset("folder")


def test_tfds_data_source_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    src = open_dataset("tfds:cifar100", "train", label_key="coarse_label")
    assert len(src) == 6 and src.labels.max() < 20
    img = src.get(0)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="no feature 'superclass'"):
      open_dataset("tfds:cifar100", "train", label_key="superclass")


def test_concat_keeps_order():
  a = _array_source("a", np.stack([_rgb(i) for i in range(3)]), np.arange(3))
  b = _array_source("b", np.stack([_rgb(i) for i in range(3, 5)]), np.arange(3, 5))
  ab = concat_sources([a, b])
  assert len(ab) == 5 and ab.name == "a+b"
  for i in range(5):
    np.testing.assert_array_equal(ab.get(i), _rgb(i))
  np.testing.assert_array_equal(ab.labels, np.arange(5))
