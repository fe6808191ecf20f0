"""The samples a report shows: where they come from (an image array, image files, texts) and their
thumbnails as ``data:`` URIs, so that the page needs no other file. PNGs are encoded here (zlib);
image files are decoded with Pillow when it is installed."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import zlib
from typing import NamedTuple

import numpy as np

THUMB = 112  # the longest side of a thumbnail, in pixels
IMAGE_FILES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class Media(NamedTuple):
  """What a report can show of the evaluated samples.

  Attributes:
    kind: ``"images"`` (``images`` array), ``"files"`` (image files ``root/sources[i]``), ``"texts"``
      (``sources[i]`` is the text) or ``"none"``.
    images: ``uint8 [n, h, w(, 3)]`` or None.
    sources: ``str [n]``: each sample's recorded source, or None.
    root: the folder of the image files, or None.
    note: how the samples were found, or why none are shown.
  """

  kind: str
  images: np.ndarray | None = None
  sources: np.ndarray | None = None
  root: str | None = None
  note: str = ""


def png(image: np.ndarray) -> bytes:
  """``uint8 [h, w]`` (grey) or ``[h, w, 3]`` (RGB) as PNG bytes."""
  image = np.ascontiguousarray(image, np.uint8)
  h, w = image.shape[:2]
  colour = 2 if image.ndim == 3 else 0
  rows = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, -1)], axis=1)  # filter byte 0 per row

  def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

  header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
  return (
    b"\x89PNG\r\n\x1a\n"
    + chunk(b"IHDR", header)
    + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
    + chunk(b"IEND", b"")
  )


def shrink(image: np.ndarray, side: int = THUMB) -> np.ndarray:
  """``image`` with its longest side at most ``side`` pixels (block averages; small images kept)."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  step = int(np.ceil(max(image.shape[:2]) / side))
  if step <= 1:
    return image.astype(np.uint8)
  h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
  blocks = image[:h, :w].reshape(h // step, step, w // step, step, *image.shape[2:]).astype(np.float32)
  return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def data_uri(mime: str, payload: bytes) -> str:
  return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def thumbnail(media: Media, i: int) -> str | None:
  """A ``data:`` URI of sample ``i``'s thumbnail, or None when it cannot be read."""
  if media.kind == "images":
    return data_uri("image/png", png(shrink(media.images[i])))
  if media.kind != "files":
    return None
  try:
    from PIL import Image

    with Image.open(os.path.join(media.root, str(media.sources[i]))) as im:
      im = im.convert("RGB")
      im.thumbnail((THUMB, THUMB))
      buffer = io.BytesIO()
      im.save(buffer, format="JPEG", quality=85)
    return data_uri("image/jpeg", buffer.getvalue())
  except (ImportError, OSError, ValueError):
    return None


def _array_images(dataset: str, indices: np.ndarray | None) -> np.ndarray | None:
  """The images of an ``npy:FILE`` extraction (uint8 ``[n, h, w(, 3)]``) at ``indices``, or None."""
  path = dataset[4:]
  if not os.path.isfile(path) or indices is None:
    return None
  try:
    loaded = np.load(path, allow_pickle=False, mmap_mode="r" if path.endswith(".npy") else None)
    images = loaded["images"] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
  except (OSError, ValueError, KeyError):
    return None
  if images.dtype != np.uint8 or images.ndim not in (3, 4) or indices.max(initial=0) >= len(images):
    return None
  return np.asarray(images[indices])


def recorded(features_file: str, root: str | None = None) -> Media | None:
  """The samples an extraction file (``python -m extract_torch``) records: image files under its
  ``sources_root`` (or ``root``), texts, or the images of an ``npy:`` dataset; None without a record.
  An ``.npy`` extraction keeps its record in the sidecar ``FILE.meta.npz``."""
  if features_file.endswith(".npy"):
    features_file = features_file[:-4] + ".meta.npz"
  if not features_file.endswith(".npz") or not os.path.isfile(features_file):
    return None
  with np.load(features_file, allow_pickle=False) as f:
    if "sources" not in f.files or "meta" not in f.files:
      return None
    sources, meta = f["sources"].astype(str), json.loads(str(f["meta"]))
    indices = f["indices"] if "indices" in f.files else None
  dataset = str(meta.get("dataset", ""))
  if dataset.startswith("texts:"):
    return Media("texts", sources=sources, note=f"texts recorded in {features_file}")
  if dataset.startswith("npy:"):
    images = _array_images(dataset, indices)
    if images is not None:
      return Media("images", images=images, note=f"images of {dataset}, as recorded in {features_file}")
  folder = root or meta.get("sources_root")
  if folder and sources.size and str(sources[0]).lower().endswith(IMAGE_FILES):
    if os.path.isdir(folder):
      return Media("files", sources=sources, root=folder, note=f"image files under {folder}")
    return Media(
      "none",
      sources=sources,
      note=f"{features_file} records image files under {folder}, which is not here; pass --root FOLDER",
    )
  return Media(
    "none", sources=sources, note=f"{features_file} records {dataset or 'its samples'} by index; pass --images FILE"
  )
