"""Image datasets for extraction: tfds, torchvision-layout CIFAR/STL files, image folders, IDX, numpy.

``open_dataset(spec, split)`` returns an ``ImageSource``: ``len(source)`` images, read one at
a time by ``source.get(i)`` (a PIL image or a ``uint8`` array), in a fixed order, with the
labels when the dataset has them. Dataset specs:

==========================  ================================================================
``tfds:NAME``               ``tfds.data_source(NAME, split=SPLIT)`` (array_record; no TensorFlow)
``cifar10:ROOT``            torchvision's ``cifar-10-batches-py`` under ROOT; splits train, test
``cifar100:ROOT``           ``cifar-100-python`` under ROOT, the 100 fine labels
``cifar100-20:ROOT``        the same images with the 20 superclass labels HUME evaluates on
``stl10:ROOT``              ``stl10_binary`` under ROOT; splits train, test, unlabeled
``folder:PATH``             image files; one subfolder per class gives labels, a flat folder none
``fashion_mnist[:DIR]``     Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist)
``mnist:DIR`` / ``idx:DIR`` ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in DIR
``npy:FILE``                ``uint8 [n, h, w(, 3)]`` in a .npy, or a .npz with ``images`` (and ``labels``)
==========================  ================================================================

``SPLIT`` may join splits with ``+`` (``train+test``, the transductive setting's
``traintest``); the parts are read one after the other. Nothing is downloaded here except
by tfds, which reads its own ``--data-dir``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from extract_torch.formats import (  # noqa: F401  (re-exported: the dataset tables and IDX readers)
  CIFAR10_CLASSES,
  CIFAR100_COARSE,
  CIFAR100_SUPERCLASSES,
  FASHION_MNIST_CLASSES,
  cifar100_to_20,
  fashion_mnist,
  find_dir,
  find_fashion_mnist,
  load_idx_images,
  load_idx_labels,
  unpickle,
)

# ---------------------------------------------------------------------------
# Image sources
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageSource:
  """A dataset split in a fixed order.

  Attributes:
    name: what was opened, for messages and metadata.
    size: number of images.
    get: ``get(i) -> image`` (PIL image, or ``uint8 [h, w]`` / ``[h, w, 3]`` RGB array).
    labels: ``int64 [size]`` or None.
    class_names: label names, or None.
    sources: ``str`` array over the whole split: where each item came from (a file path relative
      to ``root``, a text), or None (the item's index is its source).
    root: the folder the ``sources`` paths are relative to, or None.
  """

  name: str
  size: int
  get: Callable[[int], Any]
  labels: np.ndarray | None
  class_names: list[str] | None
  indices: np.ndarray | None = None
  sources: np.ndarray | None = None
  root: str | None = None

  def __len__(self) -> int:
    return self.size

  def index(self) -> np.ndarray:
    """``int64 [size]``: each image's index in the dataset split it was taken from."""
    return np.arange(self.size, dtype=np.int64) if self.indices is None else self.indices

  def source(self) -> np.ndarray:
    """``str [size]``: where each item came from: its recorded source, else its index in the split."""
    return self.index().astype(str) if self.sources is None else np.asarray(self.sources)[self.index()]

  def head(self, n: int) -> "ImageSource":
    """The first ``n`` images."""
    labels = None if self.labels is None else self.labels[:n]
    return dataclasses.replace(self, size=min(n, self.size), labels=labels, indices=self.index()[:n])

  def per_class(self, n: int) -> "ImageSource":
    """A stratified subset: the first ``n`` images of each class (fewer where a class has
    fewer), in the split's order."""
    if self.labels is None:
      raise ValueError(f"{self.name}: --per-class needs labels (class subfolders, or a dataset with labels)")
    keep = np.sort(np.concatenate([np.flatnonzero(self.labels == c)[:n] for c in np.unique(self.labels)]))
    return dataclasses.replace(
      self, size=len(keep), get=lambda i: self.get(int(keep[i])), labels=self.labels[keep], indices=self.index()[keep]
    )


def _array_source(name: str, images: np.ndarray, labels: np.ndarray | None, class_names=None) -> ImageSource:
  return ImageSource(name, len(images), images.__getitem__, labels, class_names)


def concat_sources(parts: list[ImageSource]) -> ImageSource:
  """The parts one after the other (for ``train+test``)."""
  if len(parts) == 1:
    return parts[0]
  offsets = np.cumsum([0] + [len(p) for p in parts])
  has_labels = all(p.labels is not None for p in parts)

  def get(i: int):
    j = int(np.searchsorted(offsets, i, side="right")) - 1
    return parts[j].get(i - int(offsets[j]))

  labels = np.concatenate([p.labels for p in parts]) if has_labels else None
  return ImageSource("+".join(p.name for p in parts), int(offsets[-1]), get, labels, parts[0].class_names)


def _cifar(kind: str, root: str, split: str) -> ImageSource:
  if split not in ("train", "test"):
    raise ValueError(f"{kind}: split must be 'train' or 'test', got {split!r}")
  if kind == "cifar10":
    d = find_dir(root, "cifar-10-batches-py", kind)
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    key, names = "labels", CIFAR10_CLASSES
  else:
    d = find_dir(root, "cifar-100-python", kind)
    files, key, names = [split], "fine_labels", None
  batches = [unpickle(os.path.join(d, f)) for f in files]
  for f, b in zip(files, batches):
    if "data" not in b or key not in b:
      raise ValueError(f"{os.path.join(d, f)}: expected keys 'data' and {key!r}, found {sorted(b)}")
  data = np.concatenate([np.asarray(b["data"], np.uint8) for b in batches])
  if data.ndim != 2 or data.shape[1] != 3072:
    raise ValueError(f"{kind} {split}: expected data [n, 3072] (3x32x32), found {data.shape}")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # -> [n, 32, 32, 3] RGB
  labels = np.concatenate([np.asarray(b[key], np.int64) for b in batches])
  if kind == "cifar100-20":
    labels, names = cifar100_to_20(labels), CIFAR100_SUPERCLASSES
  return _array_source(f"{kind}:{root}[{split}]", images, labels, names)


def _stl10(root: str, split: str) -> ImageSource:
  if split not in ("train", "test", "unlabeled"):
    raise ValueError(f"stl10: split must be 'train', 'test' or 'unlabeled', got {split!r}")
  d = find_dir(root, "stl10_binary", "stl10")
  x_path = os.path.join(d, f"{split}_X.bin")
  if not os.path.exists(x_path):
    raise FileNotFoundError(f"stl10: no such file {x_path}")
  raw = np.fromfile(x_path, dtype=np.uint8)
  if raw.size % (3 * 96 * 96):
    raise ValueError(f"{x_path}: {raw.size} bytes is not a whole number of 3x96x96 images")
  images = raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)  # stored column-major -> [n, 96, 96, 3]
  labels = None
  if split != "unlabeled":
    y = np.fromfile(os.path.join(d, f"{split}_y.bin"), dtype=np.uint8).astype(np.int64) - 1  # 1..10 -> 0..9
    if len(y) != len(images):
      raise ValueError(f"stl10 {split}: {len(images)} images but {len(y)} labels")
    labels = y
  names_path = os.path.join(d, "class_names.txt")
  names = open(names_path).read().split() if os.path.exists(names_path) else None
  return _array_source(f"stl10:{root}[{split}]", images, labels, names)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _folder(path: str) -> ImageSource:
  """Class subfolders (sorted names = label order, as torchvision's ImageFolder), or a flat folder."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"folder: no such folder {path}")
  entries = sorted(os.listdir(path))
  flat = [e for e in entries if _is_image(e) and os.path.isfile(os.path.join(path, e))]
  classes = [e for e in entries if os.path.isdir(os.path.join(path, e)) and not e.startswith(".")]
  files: list[str] = []
  labels: list[int] = []
  if classes:
    if flat:
      raise ValueError(
        f"folder {path}: holds both image files ({flat[0]}, ...) and class subfolders "
        f"({classes[0]}, ...); put every image in a class subfolder, or none"
      )
    for label, c in enumerate(classes):
      for dirpath, dirnames, names in os.walk(os.path.join(path, c)):
        dirnames.sort()
        images = [os.path.join(dirpath, n) for n in sorted(names) if _is_image(n)]
        files += images
        labels += [label] * len(images)
  else:
    files = [os.path.join(path, e) for e in flat]
  if not files:
    raise ValueError(f"folder {path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")

  def get(i: int):
    from PIL import Image, UnidentifiedImageError

    try:
      with Image.open(files[i]) as im:
        return im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:  # a bomb: more pixels than PIL reads
      raise ValueError(f"folder: cannot read image {files[i]} ({' '.join(str(e).split())})") from None

  return ImageSource(
    f"folder:{path}",
    len(files),
    get,
    np.asarray(labels, np.int64) if classes else None,
    classes or None,
    sources=np.asarray([os.path.relpath(f, path) for f in files]),
    root=os.path.abspath(path),
  )


def _idx(kind: str, root: str | None, split: str) -> ImageSource:
  if kind == "fashion_mnist":
    images, labels = fashion_mnist(split, root)
    return _array_source(f"fashion_mnist[{split}]", images, labels, list(FASHION_MNIST_CLASSES))
  prefix = {"train": "train", "test": "t10k"}.get(split)
  if prefix is None:
    raise ValueError(f"{kind}: split must be 'train' or 'test', got {split!r}")
  if not root:
    raise ValueError(f"{kind}: give the folder of the IDX files, as {kind}:DIR")

  def find(stem: str) -> str:
    for name in (stem, stem + ".gz"):
      if os.path.exists(os.path.join(root, name)):
        return os.path.join(root, name)
    raise FileNotFoundError(f"{kind}: no {stem}[.gz] in {root}")

  images = load_idx_images(find(f"{prefix}-images-idx3-ubyte"))
  labels = load_idx_labels(find(f"{prefix}-labels-idx1-ubyte"))
  if len(images) != len(labels):
    raise ValueError(f"{kind} {split}: {len(images)} images but {len(labels)} labels")
  return _array_source(f"{kind}:{root}[{split}]", images, labels)


def _npy(path: str) -> ImageSource:
  if not os.path.exists(path):
    raise FileNotFoundError(f"npy: no such file {path}")
  loaded = np.load(path, allow_pickle=False, mmap_mode="r" if path.endswith(".npy") else None)
  labels = None
  if isinstance(loaded, np.lib.npyio.NpzFile):
    with loaded:
      if "images" not in loaded.files:
        raise KeyError(f"npy: {path} has no 'images' array; its keys are {loaded.files}")
      images = loaded["images"]
      labels = np.asarray(loaded["labels"], np.int64) if "labels" in loaded.files else None
  else:
    images = loaded
  if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
    raise ValueError(
      f"npy: {path}: expected uint8 images [n, h, w] or [n, h, w, 3], found {images.dtype} {images.shape}"
    )
  if labels is not None and len(labels) != len(images):
    raise ValueError(f"npy: {path}: {len(images)} images but {len(labels)} labels")
  return _array_source(f"npy:{path}", images, labels)


def _tfds(name: str, split: str, data_dir: str | None, label_key: str | None) -> ImageSource:
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError(f"tfds:{name} needs tensorflow-datasets: pip install tensorflow-datasets ({e})") from None
  ds = tfds.data_source(name, split=split, data_dir=data_dir)
  features = ds.dataset_info.features
  image_keys = [k for k in ("image", "img") if k in features]
  if not image_keys:
    raise ValueError(f"tfds:{name}: no 'image' feature; its features are {list(features)}")
  image_key = image_keys[0]
  label_key = label_key or ("label" if "label" in features else None)
  if label_key is not None and label_key not in features:
    raise ValueError(f"tfds:{name}: no feature {label_key!r} for --label-key; its features are {list(features)}")
  labels = names = None
  if label_key is not None:
    labels = np.asarray([ds[i][label_key] for i in range(len(ds))], np.int64)
    names = list(getattr(features[label_key], "names", None) or []) or None

  def get(i: int):
    return np.asarray(ds[i][image_key])

  return ImageSource(f"tfds:{name}[{split}]", len(ds), get, labels, names)


DATASET_KINDS = {
  "tfds": "tfds:NAME (tensorflow-datasets, any split string; --data-dir, --label-key)",
  "cifar10": "cifar10:ROOT (cifar-10-batches-py)",
  "cifar100": "cifar100:ROOT (cifar-100-python, 100 fine labels)",
  "cifar100-20": "cifar100-20:ROOT (cifar-100-python, 20 superclass labels)",
  "stl10": "stl10:ROOT (stl10_binary; train, test, unlabeled)",
  "folder": "folder:PATH (class subfolders, or a flat folder of images)",
  "fashion_mnist": "fashion_mnist[:DIR] (IDX files; default Debian's)",
  "mnist": "mnist:DIR (IDX files)",
  "idx": "idx:DIR (IDX files)",
  "npy": "npy:FILE (.npy uint8 images, or .npz with images and labels)",
}


def open_dataset(
  spec: str, split: str = "train", data_dir: str | None = None, label_key: str | None = None
) -> ImageSource:
  """Opens ``spec`` (see the module docstring) at ``split`` (parts joined by ``+``). An
  existing folder given without a kind is read as ``folder:PATH``."""
  if os.path.isdir(spec):
    spec = f"folder:{spec}"
  kind, _, arg = spec.partition(":")
  if kind not in DATASET_KINDS:
    raise ValueError(f"--dataset {spec!r}: unknown kind {kind!r}; expected one of " + "; ".join(DATASET_KINDS.values()))
  if kind == "tfds":
    if not arg:
      raise ValueError("--dataset tfds:NAME: give the dataset name, e.g. tfds:cifar10")
    return _tfds(arg, split, data_dir, label_key)
  if not arg and kind != "fashion_mnist":
    raise ValueError(f"--dataset {kind}: give the path, as {DATASET_KINDS[kind]}")
  if kind in ("folder", "npy"):  # one set of files; the split only names it
    return (_folder if kind == "folder" else _npy)(arg)
  parts = []
  for part in split.split("+"):
    if kind in ("cifar10", "cifar100", "cifar100-20"):
      parts.append(_cifar(kind, arg, part))
    elif kind == "stl10":
      parts.append(_stl10(arg, part))
    else:
      parts.append(_idx(kind, arg or None, part))
  return concat_sources(parts)
