"""Images -> representations for HUME, with PyTorch (and ONNX Runtime) models.

This subpackage is the only part of the project that imports torch. Its output is
what ``python -m hume_jax.train`` reads: ``float32`` arrays ``[n, d]`` in ``.npy`` or
``.npz`` files, one row per image, in dataset order.
"""

from extract_torch.datasets import load_idx_images, load_idx_labels, fashion_mnist
from extract_torch.models import MODELS, build_model

__all__ = ["MODELS", "build_model", "fashion_mnist", "load_idx_images", "load_idx_labels"]
