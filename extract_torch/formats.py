"""The binary formats of the datasets ``extract_torch.datasets`` opens: IDX (MNIST, Fashion-MNIST),
CIFAR's Python pickles and their class tables (CIFAR-100-20's superclasses)."""

from __future__ import annotations

import gzip
import os

import numpy as np

# Where Debian's ``dataset-fashion-mnist`` package puts the original IDX files.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)


def _read_idx(path: str, magic: int, header_bytes: int) -> tuple[np.ndarray, tuple[int, ...]]:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  found_magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
  if found_magic != magic:
    raise ValueError(f"{path}: expected IDX magic number {magic}, found {found_magic}")
  if len(raw) < header_bytes:
    raise ValueError(f"{path}: expected an IDX file of at least {header_bytes} bytes, found {len(raw)}")
  dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(magic & 0xFF))
  data = np.frombuffer(raw, dtype=np.uint8, offset=header_bytes)
  if data.size != int(np.prod(dims)):
    raise ValueError(f"{path}: header says shape {dims} ({int(np.prod(dims))} bytes), file holds {data.size}")
  return data.reshape(dims), dims


def load_idx_images(path: str) -> np.ndarray:
  """Reads an IDX image file (``*-images-idx3-ubyte[.gz]``) as ``uint8 [n, h, w]``."""
  return _read_idx(path, magic=2051, header_bytes=16)[0]


def load_idx_labels(path: str) -> np.ndarray:
  """Reads an IDX label file (``*-labels-idx1-ubyte[.gz]``) as ``int64 [n]``."""
  return _read_idx(path, magic=2049, header_bytes=8)[0].astype(np.int64)


def find_fashion_mnist(root: str | None = None) -> str:
  candidates = (root,) if root else FASHION_MNIST_DIRS
  for d in candidates:
    if d and os.path.exists(os.path.join(d, "t10k-images-idx3-ubyte.gz")):
      return d
  raise FileNotFoundError(
    f"Fashion-MNIST IDX files not found in {list(c for c in candidates if c)}; install them with "
    "`apt-get install dataset-fashion-mnist` or pass the folder holding "
    "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz"
  )


def fashion_mnist(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Returns ``(images uint8 [n, 28, 28], labels int64 [n])`` of split ``train`` or ``test``."""
  prefix = {"train": "train", "test": "t10k"}.get(split)
  if prefix is None:
    raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
  d = find_fashion_mnist(root)
  images = load_idx_images(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"))
  labels = load_idx_labels(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"))
  if len(images) != len(labels):
    raise ValueError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
  return images, labels


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# CIFAR-100 fine label -> superclass ("coarse") label, the 20 classes of CIFAR-100-20.
# fmt: off
CIFAR100_COARSE = np.array([
  4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
  6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
  5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
  10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
  16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13])
# fmt: on
CIFAR100_SUPERCLASSES = [
  "aquatic_mammals",
  "fish",
  "flowers",
  "food_containers",
  "fruit_and_vegetables",
  "household_electrical_devices",
  "household_furniture",
  "insects",
  "large_carnivores",
  "large_man-made_outdoor_things",
  "large_natural_outdoor_scenes",
  "large_omnivores_and_herbivores",
  "medium_mammals",
  "non-insect_invertebrates",
  "people",
  "reptiles",
  "small_mammals",
  "trees",
  "vehicles_1",
  "vehicles_2",
]


def cifar100_to_20(fine: np.ndarray) -> np.ndarray:
  """CIFAR-100 fine labels ``[n]`` -> the 20 superclass labels of CIFAR-100-20."""
  fine = np.asarray(fine)
  if fine.size and (fine.min() < 0 or fine.max() > 99):
    raise ValueError(f"CIFAR-100 fine labels must lie in 0..99, found {fine.min()}..{fine.max()}")
  return CIFAR100_COARSE[fine].astype(np.int64)


def find_dir(root: str, name: str, what: str) -> str:
  if os.path.isdir(os.path.join(root, name)):
    return os.path.join(root, name)
  if os.path.isdir(root) and os.path.basename(os.path.normpath(root)) == name:
    return root
  raise FileNotFoundError(f"{what}: no folder {name!r} in {root} (the layout torchvision downloads)")


def unpickle(path: str) -> dict:
  """A CIFAR python batch (a dict of arrays, lists and strings), read with ``safe_pickle``: a
  file that names any other callable is refused before it is called."""
  from extract_torch import safe_pickle

  if not os.path.exists(path):
    raise FileNotFoundError(f"no such file {path}")
  batch = safe_pickle.load(path)
  if not isinstance(batch, dict):
    raise ValueError(f"{path}: not a CIFAR python batch, refused (expected a dict, found {type(batch).__name__})")
  return batch
