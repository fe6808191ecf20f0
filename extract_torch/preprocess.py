"""Image preprocessing as the models' authors specify it, on PIL images, without torchvision.

``Preprocess(resize, crop, mean, std, interpolation)`` is torchvision's
``Compose([Resize(resize, interpolation), CenterCrop(crop), ToTensor(), Normalize(mean, std)])``
on a PIL image: the shorter side is resized to ``resize`` (the longer one to
``int(resize * long / short)``), the centre ``crop x crop`` is cut (offsets rounded as
torchvision rounds them), and the result is scaled to [0, 1] and standardised per channel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
  """A PIL RGB image from a PIL image or a ``uint8`` array ``[h, w]`` / ``[h, w, 3]`` (RGB)."""
  if isinstance(image, np.ndarray):
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
      raise ValueError(f"image: expected uint8 [h, w] or [h, w, 3], got {image.dtype} {image.shape}")
    image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
  return image if image.mode == "RGB" else image.convert("RGB")


def resize_shorter(image: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
  w, h = image.size
  short, long = min(w, h), max(w, h)
  new_short, new_long = size, int(size * long / short)
  new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
  if (new_w, new_h) == (w, h):
    return image
  return image.resize((new_w, new_h), _RESAMPLE[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
  w, h = image.size
  if w < size or h < size:  # torchvision pads with zeros; only reached when resize < crop
    padded = Image.new("RGB", (max(w, size), max(h, size)))
    padded.paste(image, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
    image, (w, h) = padded, padded.size
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  return image.crop((left, top, left + size, top + size))


class Preprocess(NamedTuple):
  """Resize the shorter side, centre-crop, scale to [0, 1], standardise; returns ``float32 [3, crop, crop]``."""

  resize: int
  crop: int
  mean: tuple[float, float, float] = IMAGENET_MEAN
  std: tuple[float, float, float] = IMAGENET_STD
  interpolation: str = "bilinear"

  def __call__(self, image: Image.Image | np.ndarray) -> np.ndarray:
    image = center_crop(resize_shorter(to_rgb(image), self.resize, self.interpolation), self.crop)
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))

  def describe(self) -> str:
    return (
      f"resize shorter side to {self.resize} ({self.interpolation}), centre crop {self.crop}, "
      f"RGB in [0, 1], mean {list(self.mean)}, std {list(self.std)}"
    )
