"""Images -> representations for HUME, with PyTorch (and ONNX Runtime) models.

This subpackage is the only part of the project that imports torch. Its output is
what ``python -m hume_jax.train`` reads: an ``.npz`` whose ``features`` are ``float32
[n, d]``, one row per image, in dataset order, or those features alone as a memory-mappable
``.npy`` with the rest in its sidecar ``.meta.npz`` (``python -m extract_torch --help``).

    from extract_torch import open_dataset, build_model, run_extraction
    source = open_dataset("folder:my_images")
    run_extraction(source, build_model("dinov2_vitb14", device="auto"), "dino.npz",
                   dataset="folder:my_images", split="train")
"""

from extract_torch.datasets import (
  CIFAR100_COARSE,
  ImageSource,
  cifar100_to_20,
  fashion_mnist,
  load_idx_images,
  load_idx_labels,
  open_dataset,
)
from extract_torch.extract import run_extraction, write_official_layout
from extract_torch.models import MODELS, Extractor, build_model, extract_features, pick_device

__all__ = [
  "CIFAR100_COARSE",
  "Extractor",
  "ImageSource",
  "MODELS",
  "build_model",
  "cifar100_to_20",
  "extract_features",
  "fashion_mnist",
  "load_idx_images",
  "load_idx_labels",
  "open_dataset",
  "pick_device",
  "run_extraction",
  "write_official_layout",
]
