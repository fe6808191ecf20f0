"""Image datasets read from local files (no download at run time)."""

from __future__ import annotations

import gzip
import os

import numpy as np

# Where Debian's ``dataset-fashion-mnist`` package puts the original IDX files.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
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
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(magic & 0xFF))
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
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz")


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
